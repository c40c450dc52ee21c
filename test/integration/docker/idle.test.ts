/**
 * Scale to zero (SPEC.md, "Scale to zero") against a real dockerd: `idle DURATION` stops the
 * container a trigger started once the segment is unused for that long (stopped, not
 * removed: its files stay), never under an open connection however quiet, and the next
 * connection starts the same container again and waits for it; UDP likewise, the datagram
 * that arrives meanwhile delivered; a takeover finds the stopped container; across two test
 * hosts the remote child (and its container) is deleted at idle and made again.
 *
 * No timing is asserted: everything is polled with a deadline far above what it needs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, listed, runCmd, startDaemon } from '../../helpers/daemon';
import { DB_IMAGE, DB_VALUE, ECHO_IMAGE, containers, run } from '../../helpers/docker';
import { suiteCleanup, withHostPair, withNetns } from '../../helpers/netns';
import { freePort, parseCreate, seed } from '../../helpers/services';
import { eventually, sleep } from '../../helpers/wait';

/** The echo image, stopped within a second (echo-server, as PID 1, ignores SIGTERM). */
const ECHO_RUN = `--stop-timeout 1 ${ECHO_IMAGE} echo-server 9001`;
/** A UDP echo in a container: socat in the database image (which has it), on 127.0.0.1:9002. */
const UDP_ECHO_RUN = `--stop-timeout 1 ${DB_IMAGE} socat UDP4-RECVFROM:9002,bind=127.0.0.1,fork PIPE`;

function owner(d: TestDaemon): string {
  return `label=wormhole.owner=${fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim()}`;
}

/** A segment as list --json shows it. */
const segment = listed;

/**
 * `create url :HEAD idle IDLE trigger docker-run ECHO_RUN url :9001` on `d`, which must
 * succeed: the new segment's id.
 */
async function idleEcho(d: TestDaemon, head: number, idle: string): Promise<string> {
  const c = await d.cli(
    'create',
    'url',
    `:${head}`,
    'idle',
    idle,
    'trigger',
    'docker-run',
    ECHO_RUN,
    'url',
    ':9001',
  );
  assert.equal(c.code, 0, c.stderr);
  return parseCreate(c.stdout).id;
}

/** Wait until `list` shows the segment idle; its info then. */
function idled(d: TestDaemon, id: string): Promise<SegmentInfo> {
  return eventually(`segment ${id} idle`, async () => {
    const s = await segment(d, id);
    return s.state === 'idle' ? s : undefined;
  });
}

/** A container's state as docker inspect says it ("running", "exited"), or "gone". */
async function status(id: string): Promise<string> {
  return run('docker', ['inspect', '--format', '{{.State.Status}}', id]).then(
    (s) => s.trim(),
    () => 'gone',
  );
}

/** An echo exchange, bounded: send, half-close, read everything until the other side closes. */
function exchange(port: number, data: string, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end(data));
    c.setTimeout(ms, () => c.destroy(new Error(`no answer within ${ms / 1000} s`)));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', reject);
  });
}

/** A connection that stays open: write, and read what comes back. */
async function openConnection(port: number): Promise<{ say(text: string): Promise<string>; close(): void }> {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return {
    say: (text) =>
      new Promise((resolve, reject) => {
        let got = '';
        const timer = setTimeout(() => reject(new Error(`no echo of ${text}`)), 20_000);
        const onData = (d: Buffer): void => {
          got += d.toString();
          if (got.length >= text.length) {
            clearTimeout(timer);
            c.off('data', onData);
            resolve(got);
          }
        };
        c.on('data', onData);
        c.write(text);
      }),
    close: () => c.destroy(),
  };
}

/** A UDP client on one address: each datagram sent from it, and the answer. */
function udpClient(port: number): { ask(text: string, ms?: number): Promise<string>; close(): void } {
  const s = dgram.createSocket('udp4');
  return {
    ask: (text, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          s.off('message', onMessage);
          reject(new Error(`no answer to ${text} within ${ms / 1000} s`));
        }, ms);
        const onMessage = (m: Buffer): void => {
          clearTimeout(timer);
          s.off('message', onMessage);
          resolve(m.toString());
        };
        s.on('message', onMessage);
        s.send(text, port, '127.0.0.1');
      }),
    close: () => s.close(),
  };
}

describe('idle: scale to zero', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite, { args: ['--dial-timeout', '10'] });
  });

  it('stops the container after idling (not removed), and starts the same one for 20 first connections', async () => {
    const head = await freePort();
    const id = await idleEcho(d, head, '2s');
    assert.equal(await exchange(head, 'first'), 'first');
    const [cid] = await containers(owner(d));
    assert.equal(await status(cid), 'running');
    assert.equal((await segment(d, id)).state, 'ready');

    const idle = await idled(d, id);
    assert.equal(idle.trigger?.idleMs, 2000);
    assert.ok(idle.trigger?.idledAt, 'list says when it idled');
    assert.equal(idle.trigger?.state, 'armed', 'the trigger is armed again');
    assert.equal(
      await eventually('the container stopped', async () =>
        (await status(cid)) === 'exited' ? true : undefined,
      ),
      true,
    );
    assert.deepEqual(await containers(owner(d)), [cid], 'stopped, not removed');
    const line = (await d.cli('list')).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
    assert.match(line, / idle .* idle=2s idled \d+s ago/);
    assert.match(
      d.log(),
      new RegExp(`"segment":"${id}".*"idleForMs":\\d+.*idle: released what the trigger made`),
    );

    // 20 first connections at once after idling: one container (the same), every one answered
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => exchange(head, `n${i}`)));
    assert.deepEqual(
      answers,
      Array.from({ length: 20 }, (_, i) => `n${i}`),
    );
    assert.deepEqual(await containers(owner(d)), [cid], 'the same container, started again');
    assert.equal(await status(cid), 'running');
    const again = await segment(d, id);
    assert.equal(again.state, 'ready');
    assert.equal(again.trigger?.runs, 2);

    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await containers(owner(d)), [], 'removed with the segment');
  });

  it('pauses the container with idle-action pause, and thaws the same process for the next connections', async () => {
    const head = await freePort();
    const { id } = await d.create(
      'url',
      `:${head}`,
      'idle',
      '2s',
      'idle-action',
      'pause',
      'trigger',
      'docker-run',
      ECHO_RUN,
      'url',
      ':9001',
    );
    assert.equal(await exchange(head, 'first'), 'first');
    const [cid] = await containers(owner(d));
    const pid = async (): Promise<string> =>
      (await run('docker', ['inspect', '--format', '{{.State.Pid}}', cid])).trim();
    const before = await pid();
    const idle = await idled(d, id);
    assert.equal(idle.trigger?.idleAction, 'pause');
    assert.equal(
      await eventually('the container paused', async () =>
        (await status(cid)) === 'paused' ? true : undefined,
      ),
      true,
    );
    const line = (await d.cli('list')).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
    assert.match(line, / idle .* idle=2s \(pause\) idled \d+s ago/);
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => exchange(head, `p${i}`)));
    assert.deepEqual(answers, ['p0', 'p1', 'p2', 'p3', 'p4']);
    assert.equal(await status(cid), 'running');
    assert.equal(await pid(), before, 'the same process, thawed (not started again)');
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await containers(owner(d)), [], 'removed with the segment');
  });

  it('refuses idle-action without idle, and an action it does not know, in one line', async () => {
    for (const [words, want] of [
      [['url', ':1', 'idle-action', 'pause', 'trigger', 'url', ':2'], /idle-action needs idle/],
      [
        ['url', ':1', 'idle', '1m', 'idle-action', 'sleep', 'trigger', 'url', ':2'],
        /idle-action "sleep": expected stop or pause/,
      ],
    ] as const) {
      const r = await d.cli('create', ...words);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });

  it('keeps the container while a quiet connection is open, and idles once it closes', async () => {
    const head = await freePort();
    const id = await idleEcho(d, head, '1');
    const conn = await openConnection(head);
    assert.equal(await conn.say('hello'), 'hello');
    const [cid] = await containers(owner(d));
    // quiet, and open: well past the idle time
    await sleep(4000);
    assert.equal(await status(cid), 'running', 'never stopped under an open connection');
    assert.equal((await segment(d, id)).state, 'ready');
    assert.equal(await conn.say('still there'), 'still there');
    conn.close();
    await idled(d, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.equal(await status(cid), 'gone');
  });

  it("keeps the container's files across an idle cycle", async () => {
    const head = await freePort();
    const id = await idleEcho(d, head, '1s');
    assert.equal(await exchange(head, 'one'), 'one');
    const [cid] = await containers(owner(d));
    const marker = randomBytes(8).toString('hex');
    await run('docker', ['exec', cid, 'sh', '-c', `echo ${marker} > /kept`]);
    await idled(d, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    assert.equal(await exchange(head, 'two'), 'two');
    assert.deepEqual(await containers(owner(d)), [cid], 'the same container');
    assert.equal(
      (await run('docker', ['exec', cid, 'cat', '/kept'])).trim(),
      marker,
      'its file is still there',
    );
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('UDP: the datagram sent while the container starts again is answered, from a known client too', async () => {
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `udp://:${head}`,
      'idle',
      '2s',
      'trigger',
      'docker-run',
      UDP_ECHO_RUN,
      'url',
      ':9002',
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const client = udpClient(head);
    suite.after(() => client.close());
    // each ask is one datagram, never sent again: held while the trigger runs, then delivered
    assert.equal(await client.ask('first'), 'first');
    const [cid] = await containers(owner(d));
    await idled(d, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    // the same client address: its session ended at idle, so this datagram runs the trigger
    assert.equal(await client.ask('after idle'), 'after idle');
    assert.deepEqual(await containers(owner(d)), [cid], 'the same container');
    assert.equal(await status(cid), 'running');
    const other = udpClient(head);
    assert.equal(await other.ask('another client'), 'another client');
    other.close();
    const s = await segment(d, id);
    assert.equal(s.state, 'ready');
    assert.equal(s.trigger?.runs, 2);
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await containers(owner(d)), []);
  });

  it('deletes the local child its trigger made at idle, and makes it again with the next run', async () => {
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `:${head}`,
      'idle',
      '1s',
      'trigger',
      'docker-run',
      ECHO_RUN,
      'url',
      ':9001',
      'child',
      'url',
      ':7001',
      'trigger',
      'url',
      ':9001',
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const children = async (): Promise<string[]> =>
      (JSON.parse((await d.cli('list', '--json')).stdout) as SegmentInfo[])
        .filter((s) => s.parent === id)
        .map((s) => s.id);
    assert.deepEqual(await children(), []);
    assert.equal(await exchange(head, 'one'), 'one');
    const [child] = await children();
    assert.ok(child, 'the trigger made the child');
    await idled(d, id);
    assert.deepEqual(await children(), [], 'deleted at idle');
    assert.equal(await exchange(head, 'two'), 'two');
    assert.deepEqual(await children(), [child], 'made again, the same id');
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await children(), []);
  });

  it('stops every container of several tails behind a trigger, and starts the same ones again', async () => {
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `:${head}`,
      'idle',
      '1s',
      'trigger',
      'docker-run',
      ECHO_RUN,
      'url',
      ':9001',
      'also',
      'docker-run',
      ECHO_RUN,
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => exchange(head, `a${i}`)));
    assert.deepEqual(
      answers,
      Array.from({ length: 6 }, (_, i) => `a${i}`),
    );
    const both = (await containers(owner(d))).sort();
    assert.equal(both.length, 2, 'two tails, two containers');
    assert.equal((await segment(d, id)).tails?.length, 2);
    await idled(d, id);
    for (const cid of both)
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined));
    const again = await Promise.all(Array.from({ length: 6 }, (_, i) => exchange(head, `b${i}`)));
    assert.deepEqual(
      again,
      Array.from({ length: 6 }, (_, i) => `b${i}`),
    );
    assert.deepEqual((await containers(owner(d))).sort(), both, 'the same two, started again');
    for (const cid of both) assert.equal(await status(cid), 'running');
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await containers(owner(d)), []);
  });

  it('keeps idle across a daemon restart (it is in the actions)', async () => {
    const r = await startDaemon(suite);
    const head = await freePort();
    const id = await idleEcho(r, head, '1s');
    assert.equal(await exchange(head, 'before'), 'before');
    assert.equal((await r.stop()).code, 0);
    assert.deepEqual(await containers(owner(r)), [], 'a stop removes the containers, as always');
    const again = await startDaemon(suite, { dir: r.dir });
    const s = await segment(again, id);
    assert.equal(s.state, 'waiting');
    assert.equal(s.trigger?.idleMs, 1000);
    assert.equal(await exchange(head, 'after'), 'after');
    const [cid] = await containers(owner(again));
    await idled(again, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    assert.equal((await again.cli('delete', id)).code, 0);
  });

  it('refuses idle without a trigger, in one line', async () => {
    const r = await d.cli('create', 'url', `:${await freePort()}`, 'idle', '10m', 'tail', 'url', ':9');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /idle needs a trigger/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const bad = await d.cli('create', 'url', ':1', 'idle', '10x', 'trigger', 'url', ':2');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /idle "10x" is not a duration/);
  });
});

describe('idle with a real database, across a takeover, and across hosts', () => {
  const suite = suiteCleanup(after);

  it("runs the SPEC's example as written, and MariaDB keeps its rows across an idle cycle", async () => {
    const host = withNetns(suite, 'whi');
    const d = await startDaemon(suite, { netns: host, seedStyle: {} });
    const mysql = (...args: string[]) =>
      runCmd(
        'ip',
        ['netns', 'exec', host, 'mysql', '-u', 'root', '-h', '127.0.0.1', '-N', '-B', '-e', ...args],
        {
          timeoutMs: 60_000,
        },
      );
    const c = await d.asWritten('create', ...seed('url :3306 idle 10m trigger docker-run wormhole/mysql'));
    assert.equal(c.code, 0, c.stderr);
    const q = await mysql('SELECT v FROM wormhole.t');
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), DB_VALUE);
    assert.equal((await d.asWritten('delete', parseCreate(c.stdout).id)).code, 0);

    // the same with a short idle: a row written before it idles is read after
    const short = await d.asWritten('create', ...seed('url :3306 idle 2s trigger docker-run wormhole/mysql'));
    assert.equal(short.code, 0, short.stderr);
    const { id } = parseCreate(short.stdout);
    const w = await mysql("INSERT INTO wormhole.t VALUES ('written before idle')");
    assert.equal(w.code, 0, w.stderr);
    const [cid] = await containers(owner(d));
    await idled(d, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    const r = await mysql('SELECT v FROM wormhole.t ORDER BY v');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [DB_VALUE, 'written before idle']);
    assert.deepEqual(await containers(owner(d)), [cid], 'the same container');
    assert.equal((await d.asWritten('delete', id)).code, 0);
  });

  it('a takeover finds the container idle stopped and starts it again: not a second one', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    const id = await idleEcho(d, head, '1s');
    assert.equal(await exchange(head, 'before'), 'before');
    const [cid] = await containers(owner(d));
    await idled(d, id);
    assert.equal(
      await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    const next = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':').pop()),
      takeover: true,
    });
    assert.equal(await d.exited(), 0);
    assert.equal(await status(cid), 'exited', 'the handover leaves it as it was');
    assert.equal(await exchange(head, 'after'), 'after');
    assert.deepEqual(await containers(owner(next)), [cid], 'the same container, started again');
    assert.equal(await status(cid), 'running');
    // and it idles again under the new daemon
    await idled(next, id);
    assert.equal(
      await eventually('stopped again', async () => ((await status(cid)) === 'exited' ? true : undefined)),
      true,
    );
    assert.equal((await next.cli('delete', id)).code, 0);
    assert.deepEqual(await containers(owner(next)), [], 'removed with the segment');
  });

  it('a segment deleted after a takeover, before its next run, takes its stopped container along', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    const id = await idleEcho(d, head, '1s');
    assert.equal(await exchange(head, 'x'), 'x');
    const [cid] = await containers(owner(d));
    await idled(d, id);
    await eventually('stopped', async () => ((await status(cid)) === 'exited' ? true : undefined));
    const next = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':').pop()),
      takeover: true,
    });
    assert.equal(await d.exited(), 0);
    assert.equal((await next.cli('delete', id)).code, 0);
    assert.equal(await status(cid), 'gone');
  });

  it('across two hosts: the remote child and its container go at idle and come back with the next connection', async () => {
    const hosts = withHostPair(suite);
    const key = randomBytes(20).toString('hex');
    const a = await startDaemon(suite, { netns: hosts.a, key });
    const b = await startDaemon(suite, { netns: hosts.b, key });
    const c = await a.cli(
      'create',
      'url',
      ':6550',
      'idle',
      '2s',
      'trigger',
      'remote',
      hosts.ipB,
      'tail',
      'docker-run',
      ECHO_RUN,
      'url',
      ':9001',
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.deepEqual(await containers(owner(b)), [], 'nothing runs before the first connection');
    assert.equal(await exchangeIn(hosts.a, 6550, 'one'), 'one');
    const [first] = await containers(owner(b));
    assert.ok(first, 'the remote child runs its container on b');
    const onB = JSON.parse((await b.cli('list', '--json')).stdout) as SegmentInfo[];
    assert.equal(onB.length, 1, JSON.stringify(onB.map((x) => `${x.id} ${x.url} ${x.state}`)));

    await idled(a, id);
    await eventually('the remote child deleted', async () =>
      (JSON.parse((await b.cli('list', '--json')).stdout) as SegmentInfo[]).length === 0 ? true : undefined,
    );
    await eventually('the remote container removed', async () =>
      (await containers(owner(b))).length === 0 ? true : undefined,
    );

    assert.equal(await exchangeIn(hosts.a, 6550, 'two'), 'two');
    const now = await containers(owner(b));
    assert.equal(now.length, 1, 'made again by the next connection');
    assert.notEqual(now[0], first);
    assert.equal((await segment(a, id)).state, 'ready');
    assert.equal((await a.cli('delete', id)).code, 0);
    await eventually('deleted on b too', async () =>
      (await containers(owner(b))).length === 0 ? true : undefined,
    );
  });
});

/** A TCP exchange from inside a namespace (socat: send, half-close, read all). */
function exchangeIn(netns: string, port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      'ip',
      ['netns', 'exec', netns, 'socat', '-t', '5', '-T', '20', '-', `TCP:127.0.0.1:${port}`],
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
    p.stdin?.end(data);
  });
}
