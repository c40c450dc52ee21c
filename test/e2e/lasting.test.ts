/**
 * Segments that last: a restart builds every kind of segment again (same ids, same ports,
 * triggers armed again), a crash too, a bad record is skipped with its reason, a segment that
 * cannot be built is listed as failed and tried at the next start, and a takeover hands every
 * socket to the new daemon without refusing a connection.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { SegmentInfo } from '../../src/api/protocol';
import { type TestDaemon, WORMHOLED, runCmd, startDaemon, writeKey } from '../helpers/daemon';
import { sh, suiteCleanup, withNetns } from '../helpers/netns';
import {
  echoChecksums,
  exchange,
  freePort,
  parseCreate,
  startService,
  udpExchange,
} from '../helpers/services';
import { until } from '../helpers/wait';

async function list(d: TestDaemon): Promise<SegmentInfo[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SegmentInfo[];
}

async function create(d: TestDaemon, ...actions: string[]): Promise<{ id: string; port: number }> {
  const r = await d.cli('create', ...actions);
  assert.equal(r.code, 0, r.stderr);
  return parseCreate(r.stdout);
}

/** The API port a test daemon listens on (a successor must listen on the same). */
function apiPort(d: TestDaemon): number {
  return Number(d.tcp.split(':').pop());
}

describe('segments that last a restart', () => {
  const suite = suiteCleanup(after);

  it('builds every kind of segment again: same ids and ports, triggers armed again, traffic after', async (t) => {
    const echo = await freePort();
    const udpEcho = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    await startService(t, null, 'udp-echo', '127.0.0.1', udpEcho);
    const d = await startDaemon(suite);
    const plain = await create(d, 'url', 'tcp://:0', 'tail', 'url', `:${echo}`);
    const udp = await create(
      d,
      'id',
      'dns',
      'url',
      `udp://:${await freePort()}`,
      'tail',
      'url',
      `:${udpEcho}`,
    );
    const armed = await create(d, 'url', `:${await freePort()}`, 'trigger', 'url', `:${echo}`);
    const ran = await create(d, 'url', `:${await freePort()}`, 'trigger', 'url', `:${echo}`);
    assert.equal(await exchange(ran.port, 'first'), 'firstbye', 'the trigger ran before the restart');
    const chain = await create(
      d,
      'url',
      `:${await freePort()}`,
      'chain',
      'url',
      `:${await freePort()}`,
      'tail',
      'url',
      `:${echo}`,
    );
    const before = await list(d);
    assert.equal(before.length, 6, 'five segments and the chain child');

    assert.equal((await d.stop()).code, 0);
    const again = await startDaemon(suite, { dir: d.dir });
    const after = await list(again);
    const view = (l: SegmentInfo[]): string[] => l.map((s) => `${s.id} ${s.url} ${s.parent}`).sort();
    assert.deepEqual(view(after), view(before), 'the same ids, heads and parents');
    const state = (id: string): string => after.find((s) => s.id === id)!.state;
    assert.equal(state(armed.id), 'waiting');
    assert.equal(state(ran.id), 'waiting', 'a trigger that ran is armed again');
    assert.equal(state(plain.id), 'ready');

    assert.equal(await exchange(plain.port, 'plain'), 'plainbye');
    assert.equal(await udpExchange(udp.port, 'udp'), 'udp');
    assert.equal(await exchange(armed.port, 'armed'), 'armedbye');
    assert.equal(await exchange(ran.port, 'ran'), 'ranbye');
    assert.equal(await exchange(chain.port, 'chain'), 'chainbye');
    assert.match(again.log(), /"restored":5,"failed":0/);

    // delete is what forgets: a deleted segment does not come back
    assert.equal((await again.cli('delete', plain.id)).code, 0);
    assert.equal((await again.stop()).code, 0);
    const third = await startDaemon(suite, { dir: d.dir });
    const ids = (await list(third)).map((s) => s.id);
    assert.ok(!ids.includes(plain.id), 'the deleted segment stays deleted');
    assert.ok(ids.includes(udp.id));
  });

  it('comes back once after SIGKILL, and a half-built create is cleaned', async (t) => {
    const echo = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    const d = await startDaemon(suite);
    const seg = await create(d, 'url', `:${await freePort()}`, 'tail', 'url', `:${echo}`);
    await d.stop('SIGKILL');
    // a create the crash cut short: written before its build, never completed
    const half = {
      version: 1,
      id: 'half',
      kind: 'local',
      actions: [{ verb: 'url', args: [`:${await freePort()}`] }],
      built: [],
      complete: false,
      url: '',
      createdAt: Date.now(),
    };
    fs.writeFileSync(path.join(d.dir, 'state/segments/half.json'), JSON.stringify(half));
    const again = await startDaemon(suite, { dir: d.dir });
    const l = await list(again);
    assert.deepEqual(
      l.map((s) => s.id),
      [seg.id],
    );
    assert.equal(await exchange(seg.port, 'x'), 'xbye');
    assert.match(again.log(), /cleaned a segment a crash left half-built/);
    assert.ok(!fs.existsSync(path.join(d.dir, 'state/segments/half.json')));
  });

  it('skips a corrupt or half-written record, saying which and why, and builds the rest', async (t) => {
    const echo = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    const d = await startDaemon(suite);
    const seg = await create(d, 'url', `:${await freePort()}`, 'tail', 'url', `:${echo}`);
    const other = await create(d, 'id', 'other', 'url', `:${await freePort()}`, 'tail', 'url', `:${echo}`);
    assert.equal((await d.stop()).code, 0);
    const dir = path.join(d.dir, 'state/segments');
    const text = fs.readFileSync(path.join(dir, 'other.json'), 'utf8');
    fs.writeFileSync(path.join(dir, 'other.json'), text.slice(0, text.length / 2)); // cut in half
    fs.writeFileSync(path.join(dir, 'junk.json'), '{"version":1,"id":"junk"}');
    fs.writeFileSync(path.join(dir, `${seg.id}.json.123.tmp`), '{"partial'); // an interrupted write
    const again = await startDaemon(suite, { dir: d.dir });
    assert.deepEqual(
      (await list(again)).map((s) => s.id),
      [seg.id],
    );
    assert.equal(await exchange(seg.port, 'x'), 'xbye');
    const log = again.log();
    assert.match(log, /other\.json","why":"[^"]*JSON[^"]*","msg":"segment record skipped"/);
    assert.match(log, /junk\.json","why":"not a segment record/);
    assert.ok(!fs.readdirSync(dir).some((f) => f.endsWith('.tmp')), 'the interrupted write is removed');
    assert.ok(other.port > 0);
  });

  it('lists a segment it cannot build again as failed with why, and builds it when it can', async (t) => {
    const echo = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    const ns = withNetns(t);
    const d = await startDaemon(suite);
    const inNs = await create(d, 'url', `tcp://${ns}@127.0.0.1:7400`, 'tail', 'url', `tcp://:${echo}`);
    const taken = await freePort();
    const busy = await create(d, 'url', `:${taken}`, 'tail', 'url', `:${echo}`);
    assert.equal((await d.stop()).code, 0);

    sh('ip', 'netns', 'delete', ns);
    const squatter = net.createServer().listen(taken, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    t.after(() => squatter.close());
    const again = await startDaemon(suite, { dir: d.dir, args: ['--retry-failed', '0.5'] });
    // (the API answers while the kept segments are still being built again: listed, not failed yet)
    const l = await until(
      'both segments tried again',
      () => list(again),
      (xs) => [inNs.id, busy.id].every((id) => xs.find((s) => s.id === id)?.state === 'failed'),
    ).catch(() => list(again));
    const failed = (id: string): SegmentInfo => l.find((s) => s.id === id)!;
    assert.equal(failed(inNs.id).state, 'failed');
    assert.match(failed(inNs.id).error ?? '', /does not exist/);
    assert.equal(failed(busy.id).state, 'failed');
    assert.match(failed(busy.id).error ?? '', /address already in use/);
    const text = await again.cli('list');
    assert.match(
      text.stdout,
      new RegExp(`^${busy.id} +tcp://127.0.0.1:${taken} +- +failed .* error: .*address already in use`, 'm'),
    );
    assert.equal(
      (await again.cli('create', 'id', busy.id, 'url', ':0', 'tail', 'url', ':1')).code,
      1,
      'its id stays taken',
    );

    // deleting a failed one forgets it; the other is built once its namespace is there
    assert.equal((await again.cli('delete', busy.id)).code, 0);
    withNetns(t, undefined, ns);
    const deadline = Date.now() + 10_000;
    let l2 = await list(again);
    while (l2[0]?.state !== 'ready' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      l2 = await list(again);
    }
    assert.deepEqual(
      l2.map((s) => [s.id, s.state]),
      [[inNs.id, 'ready']],
      'built on a later try, without a restart',
    );
    assert.equal((await again.stop()).code, 0);
    const third = await startDaemon(suite, { dir: d.dir });
    assert.deepEqual(
      (await list(third)).map((s) => [s.id, s.state]),
      [[inNs.id, 'ready']],
      'and kept',
    );
  });
});

describe('takeover', () => {
  const suite = suiteCleanup(after);

  it('hands every socket over: a client every 10 ms is never refused, a transfer in flight ends intact', async (t) => {
    const echo = await freePort();
    const udpEcho = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    await startService(t, null, 'udp-echo', '127.0.0.1', udpEcho);
    const old = await startDaemon(suite);
    const seg = await create(old, 'url', `:${await freePort()}`, 'tail', 'url', `:${echo}`);
    const udp = await create(old, 'url', `udp://:${await freePort()}`, 'tail', 'url', `:${udpEcho}`);

    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const clients = (async () => {
      while (running) {
        await exchange(seg.port, 'ping').then(
          (answer) => (answer === 'pingbye' ? ok++ : failures.push(`answer ${answer}`)),
          (err: Error) => failures.push(err.message),
        );
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const transfer = echoChecksums(seg.port, 256 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 300));
    const okBefore = ok;

    const next = await startDaemon(suite, { dir: old.dir, port: apiPort(old), takeover: true });
    assert.equal(await old.exited(), 0, 'the old daemon exits by itself, 0');
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await clients;
    const moved = await transfer;

    assert.deepEqual(failures, [], 'no connection refused or cut');
    assert.ok(ok > okBefore, 'clients were served after the takeover');
    assert.equal(moved.got, moved.sent, 'the transfer in flight ended intact');
    assert.match(old.log(), /taken over: no longer accepting/);
    assert.match(next.log(), /"handedOver":true/);
    assert.equal(await udpExchange(udp.port, 'dgram'), 'dgram');
    // the API answers on both of its addresses, now from the new daemon
    const byTcp = await next.cliTcp(next.keyFile, 'list', '--json');
    assert.equal(byTcp.code, 0, byTcp.stderr);
    assert.equal((JSON.parse(byTcp.stdout) as SegmentInfo[]).length, 2);
    assert.equal(
      fs.readFileSync(path.join(old.dir, 'state/wormholed.pid'), 'utf8').trim(),
      String(next.proc.pid),
    );
    // and a second takeover works as the first
    const third = await startDaemon(suite, { dir: old.dir, port: apiPort(old), takeover: true });
    assert.equal(await next.exited(), 0);
    assert.equal(await exchange(seg.port, 'again'), 'againbye');
    assert.equal((await list(third)).length, 2);
  });

  it('refuses --takeover when no daemon runs on the state directory, in one line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whd-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const key = path.join(dir, 'key.secret');
    writeKey(key); // (with no -K the daemon would make /etc/wormhole/key.secret, and say so first)
    const r = await runCmd(process.execPath, [
      WORMHOLED,
      '--state-dir',
      path.join(dir, 'state'),
      '-H',
      `unix://${dir}/s`,
      '-K',
      key,
      '--takeover',
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^wormholed: no wormholed runs on the state directory .*: start without --takeover\n$/,
    );
  });
});
