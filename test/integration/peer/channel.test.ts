/**
 * The channel between two daemons (src/peer), as a user of a `remote` segment meets it: two
 * test hosts (namespaces joined by a veth pair), a daemon on each. The segment's head and
 * its tail on the peer live in this test's own namespace (/proc/PID/ns/net), so that the test
 * holds both ends of each connection while the leg between them crosses the link.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeFrame, FrameReader } from '../../../src/api/frame';
import { PROTOCOL_VERSION } from '../../../src/api/protocol';
import { Connection, connect } from '../../../src/client';
import { parseDaemonAddress } from '../../../src/common/address';
import { readKey } from '../../../src/common/key';
import { createLogger } from '../../../src/common/log';
import { Channel } from '../../../src/peer/channel';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { sh, suiteCleanup, withHostPair } from '../../helpers/netns';
import { freePort, parseCreate } from '../../helpers/services';
import { eventually, until } from '../../helpers/wait';

const HERE = `/proc/${process.pid}/ns/net`;

/** What a stream or socket sends until its end. */
function readAll(s: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks).toString());
}

/** The error a socket closed with (null: a clean close). */
function closed(s: net.Socket): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    let error: NodeJS.ErrnoException | null = null;
    s.on('error', (e) => (error = e));
    s.once('close', () => resolve(error));
  });
}

type Peer = {
  host: string;
  state: string;
  rttMs: number | null;
  streams: number;
  bytesUp: number;
  since: number;
};

describe('the channel between two daemons', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;
  let headPort: number;
  /** Connections that reached the tail, in order; each test says what its tail does. */
  const tails: net.Socket[] = [];
  let onTail: (s: net.Socket) => void = () => undefined;

  const client = async (): Promise<{ c: net.Socket; tail: net.Socket }> => {
    const seen = tails.length;
    const c = net.connect({ port: headPort, host: '127.0.0.1', allowHalfOpen: true });
    await once(c, 'connect');
    await eventually('the connection reaches the tail', async () => tails[seen]);
    return { c, tail: tails[seen] };
  };
  const peers = async (): Promise<Peer[]> => JSON.parse((await a.cli('peers', '--json')).stdout) as Peer[];

  before(async () => {
    hosts = withHostPair(suite);
    const key = randomBytes(20).toString('hex');
    a = await startDaemon(suite, { netns: hosts.a, key });
    b = await startDaemon(suite, { netns: hosts.b, key });
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      tails.push(s);
      s.on('error', () => undefined);
      onTail(s);
    });
    const tailPort = await freePort();
    server.listen(tailPort, '127.0.0.1');
    await once(server, 'listening');
    suite.after(() => server.close());
    headPort = await freePort();
    const r = await a.cli(
      'create',
      'url',
      `tcp://${HERE}@127.0.0.1:${headPort}`,
      'remote',
      hosts.ipB,
      'tail',
      'url',
      `tcp://${HERE}@127.0.0.1:${tailPort}`,
    );
    assert.equal(r.code, 0, r.stderr);
    suite.after(() => a.cli('delete', parseCreate(r.stdout).id));
  });

  it('carries half-close both ways', async () => {
    onTail = () => undefined;
    const one = await client();
    const upDone = readAll(one.tail);
    one.c.end('up');
    assert.equal(await upDone, 'up', 'the tail sees the client FIN after its bytes');
    const downDone = readAll(one.c);
    one.tail.end('down');
    assert.equal(await downDone, 'down', 'and still answers after it');

    const two = await client();
    const first = readAll(two.c);
    two.tail.end('first');
    assert.equal(await first, 'first', 'the tail ends first');
    const late = readAll(two.tail);
    two.c.end('late');
    assert.equal(await late, 'late', 'the client still writes after it');
  });

  it('turns a reset on either side into a reset on the other', async () => {
    // (one round trip first: the connection is joined end to end on both daemons. A client
    // that resets while the engine still holds its socket is seen as a close: the engine's)
    onTail = (s) => s.once('data', (d: Buffer) => s.write(d));
    const one = await client();
    const tailEnd = closed(one.tail);
    one.c.write('x');
    await once(one.c, 'data');
    one.c.resetAndDestroy();
    assert.equal((await tailEnd)?.code, 'ECONNRESET', 'the client reset: so is the tail');

    const two = await client();
    const clientEnd = closed(two.c);
    two.c.write('x');
    await once(two.c, 'data');
    two.tail.resetAndDestroy();
    assert.equal((await clientEnd)?.code, 'ECONNRESET', 'the tail reset: so is the client');
  });

  it('holds up only the stream whose reader stalls; the other goes on', async () => {
    onTail = () => undefined;
    const stalled = await client();
    stalled.tail.pause();
    const total = 32 * 1024 * 1024;
    for (let sent = 0; sent < total; sent += 1024 * 1024) stalled.c.write(Buffer.alloc(1024 * 1024, 9));
    stalled.c.end();
    const busy = await client();
    busy.tail.on('data', (d: Buffer) => busy.tail.write(d));
    for (let i = 0; i < 200; i++) {
      busy.c.write(String(i % 10));
      const [d] = (await once(busy.c, 'data')) as [Buffer];
      assert.equal(d.toString(), String(i % 10));
    }
    // the stalled reader reads again: every byte arrives
    let got = 0;
    stalled.tail.on('data', (d: Buffer) => (got += d.length));
    stalled.tail.resume();
    await once(stalled.tail, 'end');
    assert.equal(got, total);
    busy.c.destroy();
    stalled.tail.end();
  });

  it('carries many connections on one TCP connection between the hosts, and shows it in peers', async () => {
    for (const t of tails) t.destroy(); // what earlier tests left open
    onTail = (s) => s.on('end', () => s.end());
    const open: net.Socket[] = [];
    for (let i = 0; i < 100; i++) open.push((await client()).c);
    const links = sh(
      'ip',
      'netns',
      'exec',
      hosts.a,
      'ss',
      '-Htn',
      'state',
      'established',
      'dport',
      '=',
      ':9999',
    );
    assert.equal(links.trim().split('\n').length, 1, `one connection to the peer:\n${links}`);

    const all = await peers();
    // (each daemon's channel to itself at its start, which warms the paths, left no row)
    assert.equal(all.length, 1, JSON.stringify(all));
    assert.deepEqual(JSON.parse((await b.cli('peers', '--json')).stdout), [], 'b dialed no peer');
    const [p] = all;
    assert.equal(p.host, hosts.ipB);
    assert.equal(p.state, 'up');
    assert.ok(p.streams >= 100, `${p.streams} streams`);
    assert.ok(p.bytesUp > 0);
    const text = (await a.cli('peers')).stdout.trim().split('\n');
    assert.match(text[0], /^HOST\s+STATE\s+RTT\s+STREAMS\s+UP\s+DOWN\s+SINCE$/);
    assert.match(text[1], new RegExp(`^${hosts.ipB.replace(/\./g, '\\.')}\\s+up\\s+`));
    for (const c of open) c.destroy();
    await until('the streams are gone', peers, (ps) => ps[0].streams === 0);
    const rtt = await until('a keepalive answered', peers, (ps) => ps[0].rttMs !== null);
    assert.ok(rtt[0].rttMs! > 0);
  });

  it('gives back the memory a burst of remote connections left, once the burst is over', async () => {
    // (each tail reads what it is sent and answers the client's FIN with its own)
    onTail = (s) => s.resume().on('end', () => s.end());
    const given = (): { changes: number; rssBeforeMiB: number; rssAfterMiB: number }[] =>
      a
        .log()
        .split('\n')
        .filter((l) => l.includes('memory given back after a bulk change'))
        .map((l) => JSON.parse(l) as { changes: number; rssBeforeMiB: number; rssAfterMiB: number });
    const earlier = given().length;
    // (500: src/daemon/memory.ts's BULK_CHANGES; each client handed to the channel counts)
    const seen = tails.length;
    const open = Array.from({ length: 500 }, () => {
      const c = net.connect({ port: headPort, host: '127.0.0.1', allowHalfOpen: true });
      c.on('error', () => undefined);
      return c;
    });
    await until(
      'all 500 reach the tail',
      async () => tails.length - seen,
      (n) => n >= 500,
    );
    const [one] = await until(
      'the collection after the burst',
      async () => given().slice(earlier),
      (g) => g.length >= 1,
    );
    assert.ok(one.changes >= 500, JSON.stringify(one));
    // (under test/asan.sh the sanitizer's allocator keeps what is freed: no RSS to give back)
    if (!/libasan/.test(process.env.LD_PRELOAD ?? ''))
      assert.ok(one.rssAfterMiB < one.rssBeforeMiB, JSON.stringify(one));
    // the streams it was given back under still carry bytes
    const last = open[open.length - 1];
    const echoed = readAll(last);
    last.end('still here');
    assert.equal(await echoed, '', 'the tail answers the FIN with its own');
    for (const c of open) c.destroy();
    await until('the streams are gone', peers, (ps) => ps[0].streams === 0);
  });

  it('notices a peer gone silent (the link cut) by its keepalive, and comes back with the link', async () => {
    assert.equal((await peers())[0].state, 'up');
    // no FIN, no reset: the packets just stop
    sh('ip', '-n', hosts.a, 'link', 'set', hosts.vethA, 'down');
    try {
      await until('the channel is seen down', peers, (ps) => ps[0].state !== 'up');
      assert.match(a.log(), /"why":"nothing heard for \d+ s","msg":"peer channel lost/);
    } finally {
      sh('ip', '-n', hosts.a, 'link', 'set', hosts.vethA, 'up');
    }
    onTail = (s) => s.on('end', () => s.end('bye'));
    const { c } = await client();
    const answer = readAll(c);
    c.end();
    assert.equal(await answer, 'bye');
    assert.equal((await peers())[0].state, 'up');
  });

  it('sends new connections to the daemon that took the peer over; open ones finish on the old', async () => {
    onTail = (s) => s.on('data', (d: Buffer) => s.write(d)).on('end', () => s.end());
    const roundTrip = async (c: net.Socket, text: string): Promise<string> => {
      c.write(text);
      const [d] = (await once(c, 'data')) as [Buffer];
      return d.toString();
    };
    const held = (await client()).c;
    assert.equal(await roundTrip(held, 'held'), 'held');
    const old = b;
    b = await startDaemon(suite, { netns: hosts.b, dir: b.dir, takeover: true });
    // the old daemon drains the held connection; a new one is served by its successor
    const fresh = (await client()).c;
    assert.equal(await roundTrip(fresh, 'fresh'), 'fresh');
    assert.equal(await roundTrip(held, 'still'), 'still');
    const oldGone = old.exited();
    held.end();
    await oldGone;
    assert.equal(await roundTrip(fresh, 'after'), 'after', 'the new connection outlives the old daemon');
    fresh.destroy();
  });

  it('carries new connections again, with no command, once a killed peer is back', async () => {
    onTail = (s) => s.on('end', () => s.end('bye'));
    await b.stop('SIGKILL');
    await until('the channel is seen down', peers, (ps) => ps[0].state !== 'up');
    b = await startDaemon(suite, { netns: hosts.b, dir: b.dir });
    const { c } = await client();
    const answer = readAll(c);
    c.end();
    assert.equal(await answer, 'bye');
    assert.equal((await peers())[0].state, 'up');
  });

  it('opens the channel to the peer its kept segment names when it starts, with no command', async () => {
    await a.stop();
    a = await startDaemon(suite, { netns: hosts.a, dir: a.dir });
    // (restoring the segment asks the peer for its child again, on a new channel: the first
    // connection or ping after the start finds it open; `peers` itself opens nothing)
    const up = await until('the channel is up', peers, (ps) => ps.length === 1 && ps[0].state === 'up');
    assert.equal(up[0].host, hosts.ipB);
  });
});

describe('a daemon facing a peer that breaks the rules', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let key: Buffer;

  before(async () => {
    d = await startDaemon(suite);
    key = readKey(d.keyFile);
  });

  /** A ping call on a new stream of `channel`. */
  const ping = async (channel: Channel): Promise<void> => {
    const conn = new Connection(channel.open(), 'test');
    await conn.call('ping', {});
    conn.close();
  };

  it('refuses a peer on the old protocol with one line naming both versions', async () => {
    const conn = await connect(parseDaemonAddress(d.tcp), key);
    const reply = new Promise<{ error: { code: string; message: string } }>((resolve, reject) => {
      new FrameReader(conn.stream, (f) => resolve(f as { error: { code: string; message: string } }), reject);
    });
    conn.stream.write(encodeFrame({ v: PROTOCOL_VERSION - 1, id: 1, method: 'channel', params: {} }));
    const { error } = await reply;
    conn.close();
    assert.equal(error.code, 'VERSION_MISMATCH');
    assert.equal(error.message.split('\n').length, 1);
    assert.match(error.message, new RegExp(`\\b${PROTOCOL_VERSION - 1}\\b.*\\b${PROTOCOL_VERSION}\\b`));
  });

  it('closes a channel that sends garbage, with one log line; other channels go on', async () => {
    const log = createLogger('test', 'silent');
    const open = async (): Promise<Channel> =>
      new Channel(await (await connect(parseDaemonAddress(d.tcp), key)).channel(), {
        dialer: true,
        peer: 'd',
        log,
      });
    const good = await open();
    await ping(good);
    for (const bad of [Buffer.concat([Buffer.from([0xff]), randomBytes(100)]), Buffer.alloc(20, 0)]) {
      const socket = await (await connect(parseDaemonAddress(d.tcp), key)).channel();
      // (our side is half-open, as every peer connection is: the daemon's close is an end)
      const gone = new Promise((resolve) => socket.once('end', resolve).once('close', resolve));
      socket.write(bad);
      await gone;
      socket.destroy();
    }
    const lines = d
      .log()
      .split('\n')
      .filter((l) => l.includes('broke the channel protocol'));
    assert.equal(lines.length, 2, 'one line per bad channel');
    await ping(good);
    assert.equal((await d.cli('ping')).code, 0);
    good.close();
  });

  it('says which peer has another key, and shows it down in peers', async () => {
    const other = await startDaemon(suite);
    const host = other.tcp.replace('tcp://', '');
    const r = await d.cli('ping', host);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused us: its key differs/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const [p] = JSON.parse((await d.cli('peers', '--json')).stdout) as (Peer & { lastError: string })[];
    assert.deepEqual([p.host, p.state, p.streams], [host, 'down', 0]);
    assert.match(p.lastError, /key differs/);
  });
});
