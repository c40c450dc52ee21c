/**
 * The CLI as an operator used to docker expects it (issue 10, item 5), with real daemons:
 * --version, id prefixes, WORMHOLE_HOST / WORMHOLE_KEY_FILE, --json on every command that
 * prints (errors too, with the daemon's code), COMMAND --help, one-line usage errors, and
 * the bash completion script run in bash.
 */
import { VERBS } from '../../src/api/grammar';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type CmdResult,
  ROOT,
  type TestDaemon,
  WORMHOLE,
  WORMHOLED,
  runCmd,
  startDaemon,
} from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { freePort } from '../helpers/services';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

/** bin/wormhole with no -H: the environment (or the default) names the daemon. */
function bare(args: string[], env: Record<string, string> = {}): Promise<CmdResult> {
  return runCmd(process.execPath, [WORMHOLE, ...args], { env });
}

/** A --json error: one line on stdout, {code, message} and nothing else, stderr empty. */
function jsonError(r: CmdResult): { code: string; message: string } {
  assert.equal(r.stderr, '', 'nothing on stderr');
  assert.equal(r.stdout.split('\n').length, 2, `one line: ${r.stdout}`);
  const doc = JSON.parse(r.stdout) as { code: string; message: string };
  assert.deepEqual(Object.keys(doc).sort(), ['code', 'message']);
  return doc;
}

describe('the CLI fits operators’ habits', () => {
  let d: TestDaemon;
  const suite = suiteCleanup(after);

  before(async () => {
    d = await startDaemon(suite);
  });

  /** A segment with this id (a tail nobody listens on), `more` actions before its tail. */
  async function make(id: string, ...more: string[]): Promise<void> {
    const head = more.length > 0 ? `:${await freePort()}` : ':0'; // a parent's tail needs a port
    const r = await d.cli('create', 'id', id, 'url', head, ...more, 'tail', 'url', ':9');
    assert.equal(r.code, 0, r.stderr);
  }

  async function ids(): Promise<string[]> {
    const r = await d.cli('list', '--json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id).sort();
  }

  it('prints its version, wormhole and wormholed alike, with no daemon', async () => {
    const gone = path.join(d.dir, 'never');
    const cases: [string, string[], string][] = [
      ['wormhole', [WORMHOLE, '--version'], `wormhole ${VERSION} (protocol 2)\n`],
      [
        'wormhole, a daemon that is not there',
        [WORMHOLE, '-H', `unix://${gone}.sock`, '--version'],
        `wormhole ${VERSION} (protocol 2)\n`,
      ],
      ['wormholed', [WORMHOLED, '--version', '--state-dir', gone], `wormholed ${VERSION} (protocol 2)\n`],
    ];
    for (const [what, argv, expected] of cases) {
      const r = await runCmd(process.execPath, argv);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, expected, what);
      assert.equal(r.stderr, '', what);
    }
    assert.ok(!fs.existsSync(gone), 'wormholed --version started nothing (no state directory)');
  });

  it('takes any unique prefix of a segment id, as docker does', async () => {
    await make('web-1');
    await make('web-2');
    await make('db');
    await make('api');
    await make('api-2');
    await make('top', 'chain', 'id', 'kid', 'url', `:${await freePort()}`);
    const cases: { args: string[]; code: number; stderr: string; gone: string[] }[] = [
      {
        args: ['web'],
        code: 1,
        stderr: `wormhole: "web" matches 2 segments: web-1, web-2: give more of the id\n`,
        gone: [],
      },
      {
        args: ['zz'],
        code: 1,
        stderr: `wormhole: no segment with id or prefix "zz": 'wormhole list' shows them\n`,
        gone: [],
      },
      // the daemon's refusal, as the daemon says it, once the prefix is resolved
      {
        args: ['ki'],
        code: 1,
        stderr:
          'wormhole: segment kid is a child of top, which needs it: delete top (its children go with it)\n',
        gone: [],
      },
      { args: ['d'], code: 0, stderr: '', gone: ['db'] },
      // an exact id wins over the longer ids it is a prefix of
      { args: ['api'], code: 0, stderr: '', gone: ['api'] },
      { args: ['api'], code: 0, stderr: '', gone: ['api-2'] },
      { args: ['web-2'], code: 0, stderr: '', gone: ['web-2'] },
      { args: ['w'], code: 0, stderr: '', gone: ['web-1'] },
      { args: ['t'], code: 0, stderr: '', gone: ['kid', 'top'] },
    ];
    for (const { args, code, stderr, gone } of cases) {
      const before = await ids();
      const r = await d.cli('delete', ...args);
      assert.equal(r.code, code, `delete ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, stderr, `delete ${args.join(' ')}`);
      assert.equal(r.stdout, '');
      assert.deepEqual(
        await ids(),
        before.filter((id) => !gone.includes(id)),
        `delete ${args.join(' ')} removed ${gone.join(', ') || 'nothing'}`,
      );
    }
  });

  it('names the daemon from WORMHOLE_HOST (and the key from WORMHOLE_KEY_FILE); -H and -K win', async () => {
    await make('env-1');
    const nowhere = `unix://${path.join(d.dir, 'nowhere.sock')}`;
    const otherKey = path.join(d.dir, 'other.key');
    fs.writeFileSync(otherKey, 'a-different-key-of-some-length\n', { mode: 0o600 });
    const cases: {
      what: string;
      args: string[];
      env: Record<string, string>;
      code: number;
      out?: RegExp;
      err?: RegExp;
    }[] = [
      {
        what: 'WORMHOLE_HOST',
        args: ['list'],
        env: { WORMHOLE_HOST: `unix://${d.socket}` },
        code: 0,
        out: /^env-1 /m,
      },
      {
        what: 'WORMHOLE_HOST is the one asked',
        args: ['ping'],
        env: { WORMHOLE_HOST: nowhere },
        code: 1,
        err: new RegExp(`cannot reach the daemon at ${nowhere} `),
      },
      {
        what: '-H wins',
        args: ['-H', `unix://${d.socket}`, 'list'],
        env: { WORMHOLE_HOST: nowhere },
        code: 0,
        out: /^env-1 /m,
      },
      {
        what: 'TCP with WORMHOLE_KEY_FILE',
        args: ['ping'],
        env: { WORMHOLE_HOST: d.tcp, WORMHOLE_KEY_FILE: d.keyFile },
        code: 0,
        out: /^\d+\.\d{3}$/,
      },
      {
        what: 'WORMHOLE_KEY_FILE is the one read',
        args: ['ping'],
        env: { WORMHOLE_HOST: d.tcp, WORMHOLE_KEY_FILE: otherKey },
        code: 1,
        err: /key differs/,
      },
      {
        what: '-K wins',
        args: ['-K', d.keyFile, 'ping'],
        env: { WORMHOLE_HOST: d.tcp, WORMHOLE_KEY_FILE: otherKey },
        code: 0,
        out: /^\d+\.\d{3}$/,
      },
      {
        what: 'a bad WORMHOLE_HOST is named',
        args: ['list'],
        env: { WORMHOLE_HOST: 'ftp://x' },
        code: 2,
        err: /^wormhole: WORMHOLE_HOST "ftp:\/\/x": use tcp:\/\/HOST:PORT or unix:\/\/\/PATH \(see 'wormhole help'\)$/,
      },
    ];
    for (const { what, args, env, code, out, err } of cases) {
      const r = await bare(args, env);
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      if (out) assert.match(r.stdout.trim(), out, what);
      if (err) assert.match(r.stderr.trim(), err, what);
    }
    assert.equal((await d.cli('delete', 'env-1')).code, 0);
  });

  it('answers --json on every command that prints, errors with the daemon’s code', async () => {
    const peer = await startDaemon(suite, { key: fs.readFileSync(d.keyFile, 'utf8').trim() });
    const peerHost = peer.tcp.replace('tcp://', '');
    // without --json, the daemons' round trip alone: one number of milliseconds
    const text = await d.cli('ping', peerHost);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^\d+\.\d{3}\n$/);
    const url = /^tcp:\/\/127\.0\.0\.1:\d+$/;
    await make('dup');
    await make('js-a');
    await make('js-b');
    await make('js-c');
    const ok: { args: string[]; check(doc: unknown): void }[] = [
      {
        args: ['ping', '--json'],
        check: (doc) => {
          assert.deepEqual(Object.keys(doc as object), ['ms']);
          assert.equal(typeof (doc as { ms: unknown }).ms, 'number');
        },
      },
      {
        args: ['ping', '--json', peerHost],
        check: (doc) => {
          const p = doc as { host: string; ms: number; peerMs: number };
          assert.deepEqual(Object.keys(p), ['host', 'ms', 'peerMs']);
          assert.equal(p.host, peerHost);
          assert.ok(p.ms >= p.peerMs && p.peerMs > 0, JSON.stringify(p));
        },
      },
      {
        args: [
          'create',
          '--json',
          'id',
          'js-top',
          'url',
          `:${await freePort()}`,
          'chain',
          'id',
          'js-kid',
          'url',
          `:${await freePort()}`,
          'tail',
          'url',
          ':9',
        ],
        check: (doc) => {
          const c = doc as { id: string; url: string; segments: { id: string; url: string }[] };
          assert.deepEqual(Object.keys(c), ['id', 'url', 'segments']);
          assert.equal(c.id, 'js-top');
          assert.match(c.url, url);
          assert.deepEqual(
            c.segments.map((s) => s.id),
            ['js-top', 'js-kid'],
          );
          assert.equal(c.segments[0].url, c.url);
          assert.match(c.segments[1].url, url);
        },
      },
      {
        args: ['list', '--json'],
        check: (doc) => {
          assert.ok(Array.isArray(doc));
          const top = (doc as { id: string; state: string; head: { port: number } }[]).find(
            (s) => s.id === 'js-top',
          );
          assert.equal(top?.state, 'ready');
          assert.equal(typeof top?.head.port, 'number');
        },
      },
      // a prefix, resolved: the id and every id deleted with it
      {
        args: ['delete', '--json', 'js-t'],
        check: (doc) => assert.deepEqual(doc, { id: 'js-top', deleted: ['js-top', 'js-kid'] }),
      },
      {
        args: ['delete', 'js-a', '--json'],
        check: (doc) => assert.deepEqual(doc, { id: 'js-a', deleted: ['js-a'] }),
      },
      { args: ['tunnel-list', '--json'], check: (doc) => assert.deepEqual(doc, []) },
      {
        // the peer pinged above: its channel is up
        args: ['peers', '--json'],
        check: (doc) => {
          const ps = doc as { host: string; state: string; streams: number }[];
          assert.deepEqual(
            ps.map((p) => [p.host, p.state]),
            [[peerHost, 'up']],
          );
          assert.deepEqual(Object.keys(ps[0]), [
            'host',
            'state',
            'rttMs',
            'streams',
            'bytesUp',
            'bytesDown',
            'since',
          ]);
        },
      },
    ];
    for (const { args, check } of ok) {
      const r = await d.cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, '');
      check(JSON.parse(r.stdout));
    }
    const refused: { args: string[]; exit: number; code: string; message: RegExp }[] = [
      {
        // a daemon started without --ui
        args: ['ui', '--json'],
        exit: 1,
        code: 'UI_OFF',
        message: /^this daemon serves no web view: start wormholed with --ui tcp:\/\/127\.0\.0\.1:PORT/,
      },
      {
        args: ['delete', '--json', 'zz'],
        exit: 1,
        code: 'NOT_FOUND',
        message: /^no segment with id or prefix "zz"/,
      },
      {
        args: ['delete', '--json', 'js'],
        exit: 1,
        code: 'AMBIGUOUS_ID',
        message: /^"js" matches 2 segments: js-b, js-c: give more of the id$/,
      },
      {
        args: ['create', '--json', 'id', 'dup', 'url', ':0', 'tail', 'url', ':9'],
        exit: 1,
        code: 'ID_EXISTS',
        message: /exists already/,
      },
      { args: ['create', '--json', 'url', ':4444'], exit: 1, code: 'SELF_PROXY', message: /proxy to itself/ },
      {
        args: ['create', '--json', 'url'],
        exit: 2,
        code: 'USAGE',
        message: /^create: url needs an argument$/,
      },
      { args: ['list', '--json', 'x'], exit: 2, code: 'USAGE', message: /^list: unexpected "x"$/ },
      { args: ['ping', '--json', 'a', 'b'], exit: 2, code: 'USAGE', message: /^ping: unexpected "b"$/ },
      {
        args: ['tunnel-delete', '--json', '10.9.9.9'],
        exit: 1,
        code: 'NOT_FOUND',
        message: /no tunnel to 10\.9\.9\.9/,
      },
      {
        args: ['tunnel-create', '--json', 'not a host'],
        exit: 2,
        code: 'USAGE',
        message: /expected a host name/,
      },
      { args: ['nonsense', '--json'], exit: 2, code: 'USAGE', message: /^unknown command "nonsense"$/ },
    ];
    for (const { args, exit, code, message } of refused) {
      const r = await d.cli(...args);
      assert.equal(r.code, exit, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      const doc = jsonError(r);
      assert.equal(doc.code, code, args.join(' '));
      assert.match(doc.message, message, args.join(' '));
    }
    const unreachable = await bare(['ping', '--json'], {
      WORMHOLE_HOST: `unix://${path.join(d.dir, 'no.sock')}`,
    });
    assert.equal(unreachable.code, 1);
    assert.equal(jsonError(unreachable).code, 'DAEMON_UNREACHABLE');
    assert.deepEqual(
      (await ids()).filter((id) => id.startsWith('js') || id === 'dup'),
      ['dup', 'js-b', 'js-c'],
      'nothing refused was made or deleted',
    );
    for (const id of ['dup', 'js-b', 'js-c']) assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('prints a command’s help for COMMAND --help, -h and help COMMAND', async () => {
    const names = [
      'ping',
      'create',
      'delete',
      'list',
      'apply',
      'export',
      'peers',
      'top',
      'ui',
      'tunnel-create',
      'tunnel-delete',
      'tunnel-list',
      'completion',
    ];
    for (const name of names) {
      const help = await d.cli('help', name);
      assert.equal(help.code, 0, name);
      assert.match(help.stdout, new RegExp(`^usage: wormhole ${name}( |\\n)`));
      const forms = [
        [name, '--help'],
        [name, '-h'],
        ['-h', name],
      ];
      if (name !== 'completion') forms.push([name, '--json', '--help']);
      for (const form of forms) {
        const r = await d.cli(...form);
        assert.equal(r.code, 0, form.join(' '));
        assert.equal(r.stdout, help.stdout, form.join(' '));
        assert.equal(r.stderr, '');
      }
    }
    // create: only right after the command name; among the actions it is an action's word
    const late = await d.cli('create', 'url', ':0', 'tail', 'url', ':9', '--help');
    assert.equal(late.code, 2);
    assert.match(late.stderr, /^wormhole: create: "--help" is not an action/);
    // after docker-run, -h is the container's: the create goes to the daemon, which refuses
    // it for the image nobody has (or for an engine that is not running), not as a usage
    const dockerWords = await d.cli(
      'create',
      '--json',
      'url',
      ':0',
      'trigger',
      'docker-run',
      '-e',
      'X=1',
      'wormhole-test/no-such-image',
      'sh',
      '-h',
    );
    assert.equal(dockerWords.code, 1, dockerWords.stdout);
    assert.doesNotMatch(dockerWords.stdout, /usage:/);
    assert.notEqual(jsonError(dockerWords).code, 'USAGE');
  });

  it('answers a usage error with one line and where the usage is, exit 2', async () => {
    const cases: [string[], string][] = [
      [['list', 'x'], `list: unexpected "x" (see 'wormhole help list')`],
      [['list', '--yaml'], `list: unexpected "--yaml" (see 'wormhole help list')`],
      [['delete'], `delete: needs a segment ID (or a unique prefix of one) (see 'wormhole help delete')`],
      [['delete', 'a', 'b'], `delete: unexpected "b" (see 'wormhole help delete')`],
      [['ping', '--bogus'], `ping: unexpected "--bogus" (see 'wormhole help ping')`],
      [['tunnel-create'], `tunnel-create: needs a HOST (see 'wormhole help tunnel-create')`],
      [['create', 'bogus'], `create: "bogus" is not an action`],
      [['completion', 'zsh'], `completion: no script for "zsh": bash only (see 'wormhole help completion')`],
      [['completion', '--json', 'bash'], `completion: unexpected "--json" (see 'wormhole help completion')`],
      [['nonsense'], `unknown command "nonsense" (see 'wormhole help')`],
      [['help', 'nonsense'], `no command "nonsense" (see 'wormhole help')`],
      [['--bogus', 'list'], `unknown flag --bogus (see 'wormhole help')`],
    ];
    for (const [args, line] of cases) {
      const r = await d.cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`wormhole: ${line}`), `${args.join(' ')}: ${r.stderr}`);
    }
    const none = await bare([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^usage: wormhole .*\n\nCommands:\n {2}ping /);
  });

  describe('bash completion', () => {
    let script: string;
    let tmp: string;

    before(async () => {
      const r = await d.cli('completion', 'bash');
      assert.equal(r.code, 0, r.stderr);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'whc-'));
      suite.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
      script = path.join(tmp, 'wormhole.bash');
      fs.writeFileSync(script, r.stdout);
    });

    /** Source the script, set what bash sets for `line` (cursor at its end), complete. */
    async function complete(line: string, env: Record<string, string> = {}): Promise<string[]> {
      const r = await runCmd(
        'bash',
        [
          '-c',
          `source "$1" || exit 9
COMP_LINE=$2 COMP_POINT=\${#2}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$((\${#COMP_WORDS[@]} - 1))
_wormhole
printf '%s\\n' "\${COMPREPLY[@]}"`,
          'bash',
          script,
          line,
        ],
        { env: { PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...env } },
      );
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter((w) => w !== '');
    }

    it('is registered for wormhole and passes bash -n', async () => {
      const r = await runCmd('bash', [
        '-c',
        'bash -n "$1" && source "$1" && complete -p wormhole',
        'bash',
        script,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'complete -F _wormhole wormhole');
    });

    it('completes commands, flags, create’s actions and segment ids from the daemon', async () => {
      await make('cmp-1');
      await make('cmp-2');
      await make('other');
      const all = [
        'ping',
        'create',
        'delete',
        'list',
        'apply',
        'export',
        'peers',
        'top',
        'ui',
        'tunnel-create',
        'tunnel-delete',
        'tunnel-list',
        'completion',
        'help',
      ];
      const cases: [string, string[], Record<string, string>?][] = [
        ['wormhole ', all],
        ['wormhole de', ['delete']],
        ['wormhole -', ['-H', '--host', '-K', '--key', '-h', '--help', '--version']],
        ['wormhole help tunnel-', ['tunnel-create', 'tunnel-delete', 'tunnel-list']],
        ['wormhole tunnel-create --', ['--help', '--json', '--udp']],
        ['wormhole top -', ['--help', '--json', '--once']],
        ['wormhole apply -', ['--help', '--json', '-f', '--dry-run', '--prune']],
        ['wormhole completion ', ['bash']],
        // every action word of the grammar, in its order
        ['wormhole create ', [...VERBS]],
        ['wormhole create url :8080 t', ['tail', 'trigger', 'tunnel', 'transparent']],
        ['wormhole create url ', []],
        ['wormhole create url :80 --', [], undefined], // flags only before the actions
        [`${WORMHOLE} -H unix://${d.socket} delete cmp`, ['cmp-1', 'cmp-2']],
        [`${WORMHOLE} -H unix://${d.socket} delete --json o`, ['other']],
        [`${WORMHOLE} -H unix://${d.socket} delete cmp-1 `, []],
        [`${WORMHOLE} delete cm`, ['cmp-1', 'cmp-2'], { WORMHOLE_HOST: `unix://${d.socket}` }],
        [`${WORMHOLE} -H unix://${path.join(tmp, 'none.sock')} delete cm`, []],
      ];
      for (const [line, expected, env] of cases) assert.deepEqual(await complete(line, env), expected, line);
      for (const id of ['cmp-1', 'cmp-2', 'other']) assert.equal((await d.cli('delete', id)).code, 0);
    });

    it('evaluates nothing the daemon says: only id-shaped words become candidates', async () => {
      const marker = path.join(tmp, 'evaluated');
      const fake = path.join(tmp, 'fake-wormhole');
      // a "daemon" answering with ids that are shell code
      fs.writeFileSync(
        fake,
        `#!/bin/sh
cat <<'EOF'
[{"id": "ok-1"}, {"id": "$(touch ${marker})"}, {"id": "\`touch ${marker}\`"},
 {"id": "ok-2 ok-3"}, {"id": "ok-*"}, {"id":"ok-4"}]
EOF
`,
        { mode: 0o755 },
      );
      assert.deepEqual(await complete(`${fake} delete `), ['ok-1', 'ok-4']);
      assert.deepEqual(await complete(`${fake} delete ok-`), ['ok-1', 'ok-4']);
      assert.ok(!fs.existsSync(marker), 'no candidate was evaluated');
    });
  });
});
