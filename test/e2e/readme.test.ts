/**
 * The README's examples, run as written (issue 10): what a newcomer pastes into a root shell
 * after ./setup.sh must work.
 *
 * Which blocks run: a ```sh fence right after the line `<!-- test: run GROUP -->`. The blocks of
 * one GROUP, in README order, are one shell session, as if pasted into one shell (variables and
 * background jobs carry from block to block); each group is a session of its own. A block
 * without the mark is not run (a setup step, or lines that need a second machine).
 *
 * How a session runs: `bash -euxo pipefail -c SCRIPT`, SCRIPT being README.md itself with every
 * line outside the group's blocks left blank: only the README's own text runs, and bash's
 * $LINENO is the README's line number. No shell text is built from anything else. The shell
 * runs as root in the repository's root with a clean environment (a standard PATH, a fresh
 * HOME), in a sandbox (test/fixtures/readme-sandbox.sh under `unshare --mount --net`): a
 * network namespace of its own, so that the daemon's default `tcp://0.0.0.0:9999` and the
 * examples' ports collide with nothing else on the machine, and private tmpfs mounts on
 * /run/netns (the namespaces the README makes are the sandbox's own), /var/lib/wormhole and
 * /etc/wormhole (the daemon's default state and key: the README's `wormholed &` is a fresh
 * daemon with default paths; a mount point the machine did not have is made for the session
 * and removed after it, empty, so that nothing of the README's daemon stays). Docker is the
 * machine's: the test images are built first (ensureTestImages), as `npm run images` in the
 * README does.
 *
 * What is checked:
 * - the session exits 0: with `-e`, every command of every block succeeded (else the failure
 *   names the README line of the last command traced);
 * - the expected outputs. Convention: `# -> TEXT` at the end of a command's line, or alone on
 *   the lines right under it, is a line that command prints (stdout or stderr). TEXT must match
 *   a whole line of what that README line printed, `...` standing for any text and a run of
 *   spaces for any run of spaces; several for one command are found in their order. Other
 *   comments are prose. What a README line printed is known from bash's xtrace (`set -x`,
 *   PS4 `+ README.md:LINE: ` from test/fixtures/readme-bashenv.sh through BASH_ENV, bash as
 *   root taking no PS4 from the environment): output belongs to the line traced last;
 * - the README cleans up after itself: no process of the session is left running once it
 *   exits, and no container whose id the README kept in a variable (`mysql=$(docker run ...)`,
 *   read from the trace) is left.
 * Whatever happens, the test then ends every process of the session (its process group:
 * SIGTERM, which lets wormholed remove the containers it started, then SIGKILL) and removes
 * those containers; the sandbox's namespaces and mounts go with its last process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/daemon';
import { ensureDockerd, ensureTestImages, run, stopDockerdIfStarted } from '../helpers/docker';
import { sleep } from '../helpers/wait';

const README = path.join(ROOT, 'README.md');
const SANDBOX = path.join(ROOT, 'test/fixtures/readme-sandbox.sh');
/** Where the sandbox mounts its own tmpfs (the same list as in readme-sandbox.sh). */
const MOUNT_POINTS = ['/run/netns', '/var/lib/wormhole', '/etc/wormhole'];
const BASH_ENV = path.join(ROOT, 'test/fixtures/readme-bashenv.sh');
const MARK = /^<!-- test: run ([A-Za-z0-9_-]+) -->$/;
const FENCE = /^```(sh|bash)$/;
/** An xtrace line of the session (any depth): `+ README.md:LINE: command`. */
const TRACE = /\++ README\.md:(\d+): /;
const SESSION_MS = 150_000;

/** A line the README says a command prints. */
interface Expectation {
  /** README line number of the command. */
  line: number;
  text: string;
}

/** The blocks of one group, as the script a session runs and what it must print. */
interface Group {
  name: string;
  /** README line numbers of each block's first and last line. */
  blocks: { first: number; last: number }[];
  script: string;
  expectations: Expectation[];
  /** README line number -> the command on it. */
  commands: Map<number, string>;
}

const EXPECT_ALONE = /^\s*# -> (.*)$/;
const EXPECT_AFTER = /\s# -> (.*)$/;

/** The README's groups of runnable blocks, in the order they first appear. */
function readmeGroups(text: string): Group[] {
  const lines = text.split('\n');
  const groups = new Map<string, { blocks: { first: number; last: number }[] }>();
  for (let i = 0; i < lines.length; i++) {
    const mark = MARK.exec(lines[i].trim());
    if (!mark) {
      if (lines[i].trim().startsWith('<!-- test:'))
        throw new Error(`README.md:${i + 1}: not a mark: ${lines[i]}`);
      continue;
    }
    if (!FENCE.test(lines[i + 1] ?? '')) {
      throw new Error(`README.md:${i + 1}: a "test: run" mark must stand right before a \`\`\`sh fence`);
    }
    let end = i + 2;
    while (end < lines.length && lines[end] !== '```') end++;
    if (end === lines.length) throw new Error(`README.md:${i + 2}: the block is not closed`);
    const group = groups.get(mark[1]) ?? { blocks: [] };
    group.blocks.push({ first: i + 3, last: end });
    groups.set(mark[1], group);
    i = end;
  }
  return [...groups].map(([name, { blocks }]) => {
    const script: string[] = lines.map(() => '');
    const expectations: Expectation[] = [];
    const commands = new Map<number, string>();
    for (const { first, last } of blocks) {
      let command = 0;
      for (let n = first; n <= last; n++) {
        const line = lines[n - 1];
        script[n - 1] = line;
        const alone = EXPECT_ALONE.exec(line);
        if (alone) {
          if (command === 0) throw new Error(`README.md:${n}: an expected output under no command`);
          expectations.push({ line: command, text: alone[1] });
        } else if (line.trim() !== '' && !line.trim().startsWith('#')) {
          command = n;
          commands.set(n, line.replace(/\s#\s.*$/, '').trim());
          const trailing = EXPECT_AFTER.exec(line);
          if (trailing) expectations.push({ line: n, text: trailing[1] });
        }
      }
    }
    const lastLine = Math.max(...blocks.map((b) => b.last));
    return { name, blocks, script: script.slice(0, lastLine).join('\n'), expectations, commands };
  });
}

/** An expected line as a pattern: `...` is any text, a run of spaces any run of spaces. */
function expectedLine(text: string): RegExp {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const parts = text
    .trim()
    .split('...')
    .map((part) => part.split(/\s+/).map(escape).join('\\s+'));
  return new RegExp(`^${parts.join('.*')}$`);
}

/**
 * What each README line printed: the session's output cut at its xtrace lines. A background
 * command's trace (`... &`) is written by its own process whenever that starts, so it may come
 * after the next command's: such lines (`background`) take no output.
 */
function outputByLine(output: string, background: Set<number> = new Set()): Map<number, string[]> {
  const byLine = new Map<number, string[]>();
  let current = 0;
  const add = (text: string) => {
    if (text.trim() === '') return;
    byLine.set(current, [...(byLine.get(current) ?? []), text.replace(/\r$/, '').trimEnd()]);
  };
  for (const line of output.split('\n')) {
    const trace = TRACE.exec(line);
    if (!trace) {
      add(line);
      continue;
    }
    add(line.slice(0, trace.index)); // output that did not end its line before the trace
    if (!background.has(Number(trace[1]))) current = Number(trace[1]);
  }
  return byLine;
}

/** The expectations not met, each said in one line. */
function unmet(group: Group, byLine: Map<number, string[]>, before = Infinity): string[] {
  const failures: string[] = [];
  const byCommand = new Map<number, Expectation[]>();
  for (const e of group.expectations.filter((x) => x.line < before))
    byCommand.set(e.line, [...(byCommand.get(e.line) ?? []), e]);
  for (const [line, expected] of byCommand) {
    const printed = byLine.get(line) ?? [];
    let from = 0;
    for (const e of expected) {
      const re = expectedLine(e.text);
      const at = printed.findIndex((p, i) => i >= from && re.test(p));
      if (at < 0) {
        const shown = printed.length
          ? printed
              .slice(0, 12)
              .map((p) => `\n      | ${p}`)
              .join('')
          : ' nothing';
        failures.push(
          `README.md:${line}: \`${group.commands.get(line)}\` should print "${e.text}"; it printed:${shown}`,
        );
      } else {
        from = at + 1;
      }
    }
  }
  return failures;
}

/** The live (not zombie) processes of a process group, as "PID COMMAND LINE". */
function groupProcesses(pgid: number): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || Number(fields[2]) !== pgid) continue;
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      found.push(`${entry} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** SIGTERM to a process group, time to stop (wormholed removes its containers), then SIGKILL. */
async function endGroup(pgid: number): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pgid, s);
    } catch {
      // no process left
    }
  };
  signal('SIGTERM');
  for (let i = 0; i < 150 && groupProcesses(pgid).length > 0; i++) await sleep(100);
  signal('SIGKILL');
  for (let i = 0; i < 50 && groupProcesses(pgid).length > 0; i++) await sleep(100);
}

/** The environment of a fresh root login shell, HOME aside. */
function cleanEnv(home: string): NodeJS.ProcessEnv {
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const nodeDir = path.dirname(process.execPath);
  if (!dirs.includes(nodeDir)) dirs.push(nodeDir); // node where it was installed
  return {
    PATH: dirs.join(':'),
    HOME: home,
    USER: 'root',
    LOGNAME: 'root',
    SHELL: '/bin/bash',
    LANG: 'C.UTF-8',
    BASH_ENV,
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
  };
}

/** Run one group's session in its sandbox, check it, and clean up after it whatever happened. */
async function runGroup(group: Group): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-readme-'));
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  const outFile = path.join(dir, 'output');
  // the sandbox's mount points this machine did not have: removed after (empty), so that the
  // session leaves no /etc/wormhole or /var/lib/wormhole behind on the host
  const made = MOUNT_POINTS.filter((point) => !fs.existsSync(point));
  const out = fs.openSync(outFile, 'a');
  // the sandbox, then bash: one process (unshare and the sandbox script exec), the leader of
  // a process group that every background job of the session stays in
  const shell = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--net', '--', SANDBOX, group.script],
    {
      cwd: ROOT,
      env: cleanEnv(home),
      stdio: ['ignore', out, out],
      detached: true,
    },
  );
  fs.closeSync(out);
  const pgid = shell.pid as number;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void endGroup(pgid);
  }, SESSION_MS);
  const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    shell.on('exit', (c, s) => resolve({ code: c, signal: s }));
    shell.on('error', (err) => resolve({ code: null, signal: err.message })); // no unshare
  });
  clearTimeout(timer);

  const failures: string[] = [];
  const left = groupProcesses(pgid);
  await endGroup(pgid);
  const output = fs.readFileSync(outFile, 'utf8');
  const containerIds = [...output.matchAll(/^\+ README\.md:\d+: \w+=([0-9a-f]{64})$/gm)].map((m) => m[1]);
  const leftContainers: string[] = [];
  for (const id of containerIds) {
    const there = (await run('docker', ['ps', '-aq', '--no-trunc', '--filter', `id=${id}`])).trim();
    if (there) {
      leftContainers.push(id.slice(0, 12));
      await run('docker', ['rm', '-f', id]).catch(() => undefined);
    }
  }
  for (const point of made) {
    try {
      fs.rmdirSync(point); // made for the sandbox's mount point, empty
    } catch {
      // something put a file there meanwhile (or mounted it): not ours to remove
    }
  }

  const background = new Set([...group.commands].filter(([, c]) => /&$/.test(c)).map(([n]) => n));
  let checkedUpTo = Infinity; // after a failure, what did not run is not looked at
  if (code !== 0) {
    const traced = [...output.matchAll(new RegExp(`^${TRACE.source}`, 'gm'))].pop();
    const line = traced ? Number(traced[1]) : 0;
    checkedUpTo = line;
    const why = timedOut ? `did not end within ${SESSION_MS / 1000} s` : `exited with ${code ?? signal}`;
    const block = group.blocks.find((b) => line >= b.first && line <= b.last);
    failures.push(
      `the session ${why}` +
        (traced
          ? `, at README.md:${line} (the block at line ${block?.first ?? '?'}): \`${group.commands.get(line) ?? ''}\``
          : ''),
    );
  }
  failures.push(...unmet(group, outputByLine(output, background), checkedUpTo));
  if (code === 0 && left.length > 0)
    failures.push(`the README left processes running:\n  ${left.join('\n  ')}`);
  if (code === 0 && leftContainers.length > 0)
    failures.push(`the README left containers: ${leftContainers.join(' ')}`);
  if (failures.length > 0) {
    const tail = output.trimEnd().split('\n').slice(-60).join('\n');
    fs.rmSync(dir, { recursive: true, force: true });
    assert.fail(`${failures.join('\n')}\n--- the session's last lines:\n${tail}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

describe("the README's examples, as written", () => {
  const groups = readmeGroups(fs.readFileSync(README, 'utf8'));
  const needsDocker = groups.some((g) => /\bdocker\b/.test(g.script));

  before(async () => {
    if (!needsDocker) return;
    await ensureDockerd();
    await ensureTestImages();
  });
  after(async () => {
    if (needsDocker) await stopDockerdIfStarted();
  });

  it('marks the quick start and the examples to run, and checks every output it shows', () => {
    const lines = fs.readFileSync(README, 'utf8').split('\n');
    /** The heading (## or ###) a README line is under. */
    const sectionOf = (line: number) =>
      lines
        .slice(0, line)
        .filter((l) => /^#{2,3} /.test(l))
        .pop();
    const all = groups.flatMap((g) => g.blocks);
    assert.ok(
      all.some((b) => sectionOf(b.first) === '## Quick start'),
      'a block of the quick start runs',
    );
    assert.ok(
      all.some((b) => sectionOf(b.first) === '### Examples'),
      'a block of the examples runs',
    );
    assert.ok(groups.flatMap((g) => g.expectations).length >= 10, 'outputs are checked');
    // an output shown in a block that does not run would be a promise nothing keeps
    const checked = new Set(groups.flatMap((g) => g.blocks.flatMap((b) => range(b.first, b.last))));
    let inFence = false;
    lines.forEach((l, i) => {
      if (l.startsWith('```')) inFence = !inFence;
      else if (inFence && /# -> /.test(l)) {
        assert.ok(checked.has(i + 1), `README.md:${i + 1}: "# -> " in a block that does not run`);
      }
    });
  });

  it('reads the convention: expected lines, and output cut at the trace', () => {
    assert.ok(expectedLine('... tcp://127.0.0.1:8080').test('6f1c-aa tcp://127.0.0.1:8080'));
    assert.ok(!expectedLine('... tcp://127.0.0.1:8080').test('6f1c tcp://127.0.0.1:80801'));
    assert.ok(expectedLine('a  b').test('a b'));
    assert.ok(!expectedLine('200').test('2000'));
    const byLine = outputByLine(
      '+ PS4=x\n+ README.md:3: echo a\na\nb++ README.md:4: echo c\n+ README.md:4: x=c\n',
    );
    assert.deepEqual(byLine.get(3), ['a', 'b']);
    assert.equal(byLine.get(4), undefined);
    const late = outputByLine(
      '+ README.md:1: sleep 1\n+ README.md:2: echo a\n+ README.md:1: sleep\na\n',
      new Set([1]),
    );
    assert.deepEqual(late.get(2), ['a']);
    const [g] = readmeGroups(
      ['x', '<!-- test: run g -->', '```sh', 'echo a   # -> a', 'echo b c', '# -> b ...', '```'].join('\n'),
    );
    assert.deepEqual(g.expectations, [
      { line: 4, text: 'a' },
      { line: 5, text: 'b ...' },
    ]);
    assert.equal(g.script, ['', '', '', 'echo a   # -> a', 'echo b c', '# -> b ...'].join('\n'));
  });

  for (const group of groups) {
    it(
      `runs the "${group.name}" blocks (README.md lines ${group.blocks.map((b) => b.first).join(', ')})`,
      {
        timeout: SESSION_MS + 25_000,
      },
      () => runGroup(group),
    );
  }
});

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}
