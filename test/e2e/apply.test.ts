/**
 * `wormhole apply -f FILE` and `wormhole export` (issue 20) with real daemons: created,
 * changed, unchanged (a connection open across a second apply stays open), pruned (only what
 * an apply made), dry runs, all or nothing when a plan fails, bad files refused with their
 * line, and export applied on a fresh daemon making the same segments.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { exchange, freePort, startService } from '../helpers/services';
import { until } from '../helpers/wait';

/** Write `text` to a file in the daemon's test directory; its path. */
function file(d: TestDaemon, name: string, text: string): string {
  const p = path.join(d.dir, name);
  fs.writeFileSync(p, text);
  return p;
}

/** The daemon's segments: id -> head URL. */
async function heads(d: TestDaemon): Promise<Record<string, string>> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { id: string; url: string }[];
  return Object.fromEntries(rows.map((s) => [s.id, s.url]));
}

describe('apply and export', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let echo: number;
  let ports: number[] = [];

  before(async () => {
    d = await startDaemon(suite);
    echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
    ports = [await freePort(), await freePort(), await freePort()];
  });

  it('creates what is missing, then leaves what is the same alone (its connection open)', async () => {
    const f = file(
      d,
      'a.yaml',
      `segments:\n  web: url :${ports[0]} tail url :${echo}\n  db: url :${ports[1]} tail url :${echo}\n`,
    );
    const first = await d.cli('apply', '-f', f);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'created web\ncreated db\n2 created, 0 changed, 0 deleted, 0 unchanged\n');
    assert.equal(await exchange(ports[0], 'hello'), 'hellobye'); // (the echo says bye as it ends)
    // a connection held open through web across a second apply of the same file
    const held = net.connect(ports[0], '127.0.0.1');
    await new Promise<void>((resolve) => held.once('connect', () => resolve()));
    const again = await d.cli('apply', '-f', f);
    assert.equal(again.stdout, '0 created, 0 changed, 0 deleted, 2 unchanged\n');
    const echoed = new Promise<string>((resolve) => held.once('data', (b: Buffer) => resolve(b.toString())));
    held.write('still here');
    assert.equal(await echoed, 'still here');
    held.destroy();
  });

  it('builds again what changed; a dry run only says so', async () => {
    const f = file(
      d,
      'b.yaml',
      `segments:\n  web: url :${ports[2]} tail url :${echo}\n  db: url :${ports[1]} tail url :${echo}\n`,
    );
    const dry = await d.cli('apply', '--dry-run', '-f', f);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(
      dry.stdout,
      'would be changed web\n0 created, 1 changed, 0 deleted, 1 unchanged (dry run: nothing changed)\n',
    );
    assert.equal((await heads(d)).web, `tcp://127.0.0.1:${ports[0]}`);
    const r = await d.cli('apply', '--json', '-f', f);
    const doc = JSON.parse(r.stdout) as {
      changes: { id: string; change: string }[];
      changed: number;
      unchanged: number;
    };
    assert.deepEqual(doc.changes, [
      { id: 'web', change: 'changed' },
      { id: 'db', change: 'unchanged' },
    ]);
    assert.equal(doc.changed, 1);
    assert.equal((await heads(d)).web, `tcp://127.0.0.1:${ports[2]}`);
    assert.equal(await exchange(ports[2], 'moved'), 'movedbye'); // (the echo says bye as it ends)
  });

  it('prunes only what an apply made, never a segment made by create', async () => {
    const mine = await freePort();
    await d.create('id', 'manual', 'url', `:${mine}`, 'tail', 'url', `:${echo}`);
    const f = file(d, 'c.yaml', `segments:\n  db: url :${ports[1]} tail url :${echo}\n`);
    const kept = await d.cli('apply', '-f', f);
    assert.equal(kept.stdout, '0 created, 0 changed, 0 deleted, 1 unchanged\n', 'no --prune: web stays');
    assert.ok('web' in (await heads(d)));
    const pruned = await d.cli('apply', '--prune', '-f', f);
    assert.equal(pruned.stdout, 'deleted web\n0 created, 0 changed, 1 deleted, 1 unchanged\n');
    assert.deepEqual(Object.keys(await heads(d)).sort(), ['db', 'manual']);
  });

  it('applies whole or not at all: a plan that fails undoes the ones before it', async () => {
    const was = await heads(d);
    const fresh = await freePort();
    // x is new; db changes; y wants manual's port and fails: x goes again, db is as it was
    const f = file(
      d,
      'd.yaml',
      `segments:\n  db: url :${ports[1]} tail url :${echo} health off\n  x: url :${fresh} tail url :${echo}\n  y: url :${new URL(was.manual).port} tail url :${echo}\n`,
    );
    const r = await d.cli('apply', '-f', f);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^wormhole: segment y: .*address already in use \(nothing was changed\)\n$/);
    assert.deepEqual(await heads(d), was);
    assert.equal(await exchange(ports[1], 'db again'), 'db againbye'); // (the echo says bye as it ends)
    const plan = JSON.parse((await d.cli('export', '--json')).stdout) as { id: string; plan: string }[];
    assert.equal(
      plan.find((s) => s.id === 'db')?.plan,
      `url :${ports[1]} tail url :${echo}`,
      "db's old plan",
    );
  });

  it('refuses a bad file in one line naming the line, and changes nothing', async () => {
    const was = await heads(d);
    const cases: [string, RegExp][] = [
      ['segments: [\n', /^wormhole: apply: .*e\.yaml:\d+: not valid YAML: /],
      ['segments:\n  a: url :1\n  a: url :2\n', /e\.yaml:3: not valid YAML: Map keys must be unique/],
      [
        'segments:\n  ok: url :1\n  bad: url :1 tail nonsense\n',
        /e\.yaml:3: segment bad: "nonsense" is not an action/,
      ],
      ['segments:\n  "a b": url :1\n', /e\.yaml:2: "a b" is not a valid id/],
      ['segments:\n  z: id other url :1\n', /e\.yaml:2: segment z: its plan names another id \(other\)/],
      ['wiring:\n  a: url :1\n', /e\.yaml:1: expected "segments:"/],
      ['segments:\n  a: "url :1 tail url \'unclosed"\n', /e\.yaml:2: segment a: an unclosed ' quote/],
    ];
    for (const [text, want] of cases) {
      const r = await d.cli('apply', '-f', file(d, 'e.yaml', text));
      assert.equal(r.code, 2, `${text}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const missing = await d.cli('apply', '-f', path.join(d.dir, 'no-such.yaml'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*no-such\.yaml: ENOENT/);
    assert.deepEqual(await heads(d), was);
  });

  it('exports what apply on a fresh daemon makes again, the same', async () => {
    const exported = await d.cli('export');
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^segments:\n/);
    // the same heads on a fresh daemon: the first one's segments go first
    const f = file(d, 'export.yaml', exported.stdout);
    const ids = Object.keys(await heads(d));
    for (const id of ids) assert.equal((await d.cli('delete', id)).code, 0);
    const fresh = await startDaemon(suite);
    const r = await fresh.cli('apply', '-f', f);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await fresh.cli('export')).stdout, exported.stdout);
    assert.equal(await exchange(ports[1], 'round trip'), 'round tripbye'); // (the echo says bye as it ends)
  });
});

describe('apply of many segments', () => {
  const suite = suiteCleanup(after);
  const MANY = 300;

  it('shows its progress in plain lines through a pipe, and a restart keeps them all, records untouched', async () => {
    const d = await startDaemon(suite);
    // heads on port 0: the daemon picks free ports, so nothing here races other tests for one
    const lines = Array.from({ length: MANY }, (_, i) => `  m${i}: url :0 tail url :9`);
    const r = await d.cli('apply', '-f', file(d, 'many.yaml', `segments:\n${lines.join('\n')}\n`));
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n');
    const progress = out.filter((l) => l.startsWith('applying: '));
    assert.ok(progress.length >= 1, r.stdout.slice(0, 500));
    assert.equal(progress.at(-1), `applying: ${MANY}/${MANY}`, 'the last step is said');
    const counts = progress.map((l) => Number(/^applying: (\d+)\/300$/.exec(l)?.[1]));
    assert.deepEqual(
      counts,
      [...counts].sort((a, b) => a - b),
      'counts only go up',
    );
    assert.equal(out.at(-1), `${MANY} created, 0 changed, 0 deleted, 0 unchanged`);
    assert.equal(out.length, progress.length + MANY + 1, 'a line per change besides');

    const records = path.join(d.dir, 'state', 'segments');
    const before = new Map(
      fs.readdirSync(records).map((f) => [f, fs.statSync(path.join(records, f)).mtimeMs]),
    );
    assert.equal(before.size, MANY);
    await d.stop();
    const again = await startDaemon(suite, { dir: d.dir });
    // (the API answers while the kept segments are built)
    await until(
      'every segment built again',
      async () => JSON.parse((await again.cli('list', '--json')).stdout) as { state: string }[],
      (rows) => rows.length === MANY && rows.every((s) => s.state === 'ready'),
    );
    for (const [f, mtime] of before)
      assert.equal(fs.statSync(path.join(records, f)).mtimeMs, mtime, `${f} is not written again at start`);
  });

  it('gives the memory a bulk change left behind back to the system once it is over, and not after a small one', async () => {
    const d = await startDaemon(suite);
    const given = (): { changes: number; rssBeforeMiB: number; rssAfterMiB: number }[] =>
      d
        .log()
        .split('\n')
        .filter((l) => l.includes('memory given back after a bulk change'))
        .map((l) => JSON.parse(l) as { changes: number; rssBeforeMiB: number; rssAfterMiB: number });
    const plans = (n: number, prefix: string): string =>
      `segments:\n${Array.from({ length: n }, (_, i) => `  ${prefix}${i}: url :0 tail url :9`).join('\n')}\n`;
    // (500: src/daemon/memory.ts's BULK_CHANGES, segments made or removed)
    const r = await d.cli('apply', '-f', file(d, 'bulk.yaml', plans(500, 'b')));
    assert.equal(r.code, 0, r.stderr);
    const [once] = await until(
      'the collection after the apply',
      async () => given(),
      (g) => g.length === 1,
    );
    assert.equal(once.changes, 500);
    assert.ok(once.rssAfterMiB < once.rssBeforeMiB, JSON.stringify(once));
    // the daemon's RSS as ps shows it stays below what it was before the collection
    const rssMiB =
      Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))?.[1]) / 1024;
    assert.ok(rssMiB < once.rssBeforeMiB, `${rssMiB} MiB`);
    // a small change is left to V8's own collections
    assert.equal((await d.cli('apply', '-f', file(d, 'small.yaml', plans(3, 's')))).code, 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(given().length, 1);
  });
});
