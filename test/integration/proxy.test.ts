/**
 * Segments across real network namespaces, driven through the real daemon and CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { after, before, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { forEachMover, moverOpts } from '../helpers/movers';
import { suiteCleanup, withNetns } from '../helpers/netns';
import {
  echoChecksums,
  exchange,
  freePort,
  parseCreate,
  startService,
  udpExchange,
} from '../helpers/services';

// Every test runs twice: bytes moved by the splice engine, and by the JavaScript mover the
// daemon falls back to when the engine cannot start.
forEachMover('segments across namespaces', (mover) => {
  let d: TestDaemon;
  let ns: string;
  const suite = suiteCleanup(after);

  before(async () => {
    d = await startDaemon(suite, moverOpts(mover));
    ns = withNetns(suite);
  });

  it('says which mover moves the bytes', () => {
    const log = d.log();
    if (mover === 'engine') assert.match(log, /splice engine started/);
    else assert.equal(log.match(/JavaScript moves the bytes/g)?.length, 1, 'said once');
  });

  async function create(...args: string[]): Promise<{ id: string; url: string; port: number }> {
    const r = await d.cli('create', ...args);
    assert.equal(r.code, 0, r.stderr);
    return parseCreate(r.stdout);
  }

  it('reaches a service on 127.0.0.1 inside a namespace from the host', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 7100);
    const head = await freePort();
    const seg = await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:7100`);
    assert.equal(seg.url, `tcp://127.0.0.1:${head}`);
    assert.equal(await exchange(head, 'ping'), 'pingbye');
    const list = await d.cli('list');
    assert.match(
      list.stdout,
      new RegExp(
        `^${seg.id} +tcp://127.0.0.1:${head} +tcp://${ns}@127.0.0.1:7100 +ready +\\d+ +1 +4 B +7 B +\\d+s +0`,
        'm',
      ),
    );
  });

  it('puts a head inside a namespace that reaches a service on the host', async (t) => {
    const port = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', port);
    await create('url', `tcp://${ns}@:7200`, 'tail', 'url', `:${port}`);
    // A client inside the namespace, on its own localhost.
    const got = await new Promise<string>((resolve, reject) => {
      execFile('ip', ['netns', 'exec', ns, 'socat', '-t', '2', '-', 'TCP:127.0.0.1:7200'], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ).stdin?.end('inside');
    });
    assert.equal(got, 'insidebye');
  });

  it('chains two segments: traffic flows through both', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 7300);
    const [a, b] = [await freePort(), await freePort()];
    const seg = await create('url', `:${a}`, 'chain', 'url', `:${b}`, 'tail', 'url', `tcp://${ns}@:7300`);
    assert.equal(await exchange(a, 'through'), 'throughbye');
    const all = JSON.parse((await d.cli('list', '--json')).stdout) as {
      id: string;
      parent: string | null;
      head: { port: number };
      tail: { port: number };
      connections: number;
    }[];
    const parent = all.find((s) => s.id === seg.id)!;
    const child = all.find((s) => s.parent === seg.id)!;
    assert.equal(parent.tail.port, b, 'the parent tail is the child head');
    assert.equal(child.head.port, b);
    assert.equal(child.tail.port, 7300);
    assert.equal(child.connections, 1, 'the connection went through the child');
    // delete removes the child too
    assert.equal((await d.cli('delete', seg.id)).code, 0);
    const left = JSON.parse((await d.cli('list', '--json')).stdout) as { id: string }[];
    assert.ok(!left.some((s) => s.id === seg.id || s.id === child.id));
    await assert.rejects(exchange(b, 'x'), /ECONNREFUSED/);
  });

  it('relays UDP both ways, one session per client', async (t) => {
    await startService(t, ns, 'udp-echo', '127.0.0.1', 7400);
    const head = await freePort();
    await create('url', `udp://:${head}`, 'tail', 'url', `udp://${ns}@:7400`);
    assert.equal(await udpExchange(head, 'u1'), 'u1');
    assert.equal(await udpExchange(head, 'u2'), 'u2');
  });

  it('keeps one UDP session per client and closes it when idle', async (t) => {
    const quick = await startDaemon(t, { args: ['--udp-idle', '0.5'] });
    await startService(t, ns, 'udp-whoami', '127.0.0.1', 7450);
    const head = await freePort();
    const c = await quick.cli('create', 'url', `udp://:${head}`, 'tail', 'url', `udp://${ns}@:7450`);
    assert.equal(c.code, 0, c.stderr);
    const client = dgram.createSocket('udp4');
    t.after(() => client.close());
    const ask = (): Promise<string> =>
      new Promise((resolve) => {
        client.once('message', (m) => resolve(m.toString()));
        client.send('who', head, '127.0.0.1');
      });
    const first = await ask();
    assert.equal(await ask(), first, 'the same upstream socket for the same client');
    const other = dgram.createSocket('udp4');
    t.after(() => other.close());
    const fromOther = await new Promise<string>((resolve) => {
      other.once('message', (m) => resolve(m.toString()));
      other.send('who', head, '127.0.0.1');
    });
    assert.notEqual(fromOther, first, 'another client gets its own upstream socket');
    await new Promise((r) => setTimeout(r, 1500));
    assert.notEqual(await ask(), first, 'after the idle time the session was closed and a new one made');
  });

  it('runs a trigger once for 50 simultaneous first connections, all answered', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 7500);
    const head = await freePort();
    await create('url', `:${head}`, 'trigger', 'url', `tcp://${ns}@:7500`);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => exchange(head, `c${i}`)));
    assert.deepEqual(
      answers,
      Array.from({ length: 50 }, (_, i) => `c${i}bye`),
    );
    const runs = d
      .log()
      .split('\n')
      .filter((l) => l.includes('"trigger ran"'));
    assert.equal(runs.length, 1, 'the trigger ran exactly once');
  });

  it('retries a failed trigger on the next connection', async (t) => {
    const late = `whl-${randomBytes(3).toString('hex')}`;
    const head = await freePort();
    // The namespace does not exist yet: the first connection's trigger fails.
    await create('url', `:${head}`, 'trigger', 'url', `tcp://${late}@:7600`);
    const first = await exchange(head, 'early').catch((e: Error) => e);
    assert.ok(first instanceof Error || first === '', 'the waiting connection is closed without an answer');
    assert.match(d.log(), new RegExp(`trigger failed.*|${late}`));
    // Now it exists, with the service: the next connection runs the trigger again and gets through.
    withNetns(t, 'whl', late);
    await startService(t, late, 'tcp-echo', '127.0.0.1', 7600);
    assert.equal(await exchange(head, 'again'), 'againbye');
  });

  it('reaches a tail that starts listening a second late', async (t) => {
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:7700`);
    const answer = exchange(head, 'patience');
    await new Promise((r) => setTimeout(r, 1000));
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 7700);
    assert.equal(await answer, 'patiencebye');
  });

  it('UDP: a datagram to a tail that starts listening late is sent again until it answers', async (t) => {
    const head = await freePort();
    await create('url', `udp://:${head}`, 'tail', 'url', `udp://${ns}@:7750`);
    // one datagram, never sent again by the client: the tail refuses it (port unreachable)
    const answer = udpExchange(head, 'early', '127.0.0.1', 10_000);
    await new Promise((r) => setTimeout(r, 500));
    await startService(t, ns, 'udp-echo', '127.0.0.1', 7750);
    assert.equal(await answer, 'early');
  });

  it('passes half-close through: a reply sent after the client FIN arrives', async (t) => {
    await startService(t, ns, 'tcp-sha', '127.0.0.1', 7800);
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:7800`);
    const data = Buffer.from('half-close works');
    const want = `${data.length} ${createHash('sha256').update(data).digest('hex')}`;
    assert.equal(await exchange(head, data), want);
  });

  it('passes a reset through as a reset, not a clean close', async (t) => {
    await startService(t, ns, 'tcp-reset', '127.0.0.1', 7900);
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:7900`);
    const err = await new Promise<Error | string>((resolve) => {
      const c = net.connect(head, '127.0.0.1', () => c.write('boom'));
      c.on('error', (e) => resolve(e));
      c.on('end', () => resolve('clean end'));
    });
    assert.ok(err instanceof Error, `expected a reset, got ${String(err)}`);
    assert.equal((err as NodeJS.ErrnoException).code, 'ECONNRESET');
  });

  it('respects backpressure: a tail that does not read stops the client, not the daemon', async (t) => {
    await startService(t, ns, 'tcp-stall', '127.0.0.1', 8100);
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8100`);
    const limit = 64 * 1024 * 1024;
    const accepted = await new Promise<number>((resolve, reject) => {
      const c = net.connect(head, '127.0.0.1');
      c.on('error', reject);
      let written = 0;
      let stalled: NodeJS.Timeout | undefined;
      const block = Buffer.alloc(256 * 1024);
      const done = (): void => {
        c.destroy();
        resolve(written);
      };
      // write whenever the socket lets us; once it has not let us for a second, stop
      const pump = (): void => {
        clearTimeout(stalled);
        while (written < limit && c.write(block)) written += block.length;
        if (written >= limit) return done();
        written += block.length;
        stalled = setTimeout(done, 1000);
      };
      c.on('drain', pump);
      c.on('connect', pump);
    });
    // kernel socket buffers on three sockets plus the proxy's stream buffers: a few MiB at most
    assert.ok(accepted < 32 * 1024 * 1024, `the client could write ${accepted} bytes into a stalled tail`);
  });

  it('moves 64 MiB both ways intact', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 8000);
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8000`);
    const total = 64 * 1024 * 1024;
    const r = await echoChecksums(head, total, 1024 * 1024);
    assert.equal(r.received, total);
    assert.equal(r.got, r.sent);
  });
});
