/**
 * The tail pick is one implementation (native/pick.c) for both movers: a client reaches the
 * same tail whether the splice engine or JavaScript carries its connection, and least-conn in
 * JavaScript counts the connections the engine carries for the same head. On loopback
 * sockets, no namespace: the engine dials tails in its own.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { native } from '../../../src/native';
import { Balancer } from '../../../src/proxy/balance';
import { Engine } from '../../../src/proxy/engine';
import type { TcpHead } from '../../../src/proxy/head';
import { loopbackHead, loopbackTarget as target, nameServer, whoAnswers } from '../../helpers/heads';
import { until } from '../../helpers/wait';

/** A head on a fresh loopback port with the tails a, b, c (keyed by name), picking by source. */
async function sourceHead(
  engine: Engine | null,
  tails: { name: string; port: number }[],
): Promise<{ head: TcpHead; port: number }> {
  const { head, port } = await loopbackHead(engine);
  head.setBalance('source');
  await Promise.all(tails.map((t, i) => head.setTailSlot(i, target(t.name, t.port), t.name)));
  head.accept(); // (a head accepts once its tails are set)
  return { head, port };
}

describe('one pick for both movers', () => {
  const servers: net.Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  it('sends each client address to the same tail with the engine and with JavaScript', async () => {
    const tails = await Promise.all(['a', 'b', 'c'].map((name) => nameServer(name)));
    servers.push(...tails.map((t) => t.server));
    const clients = Array.from({ length: 30 }, (_, i) => `127.0.0.${i + 2}`);
    const engine = new Engine(() => undefined);
    const mapped: Record<string, string[]> = {};
    try {
      for (const [mover, e] of [
        ['engine', engine],
        ['javascript', null],
      ] as const) {
        const { head, port } = await sourceHead(e, tails);
        mapped[mover] = [];
        for (const from of clients) mapped[mover].push(await whoAnswers(port, from));
        await head.close();
      }
    } finally {
      engine.stop();
    }
    assert.deepEqual(mapped.engine, mapped.javascript);
    assert.equal(
      new Set(mapped.engine).size,
      3,
      `30 clients spread over the 3 tails: ${mapped.engine.join('')}`,
    );
    // and the pure pick agrees with both, for the same addresses
    const b = new Balancer<string>();
    b.policy = 'source';
    tails.forEach((t, i) => b.set(i, t.name, t.name));
    assert.deepEqual(
      clients.map((c) => b.slots[b.pick(new Set(), c)]),
      mapped.engine,
    );
  });
});

describe('least-conn on a head the engine serves', () => {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];
  after(() => {
    sockets.forEach((s) => s.destroy());
    servers.forEach((s) => s.close());
  });

  /** A tail that says its name and keeps the connection open. */
  async function holdingServer(name: string): Promise<{ name: string; port: number }> {
    const server = net.createServer((s) => {
      sockets.push(s);
      s.write(name);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { name, port: (server.address() as net.AddressInfo).port };
  }

  /** The first bytes a stream says (the tail's name); the stream stays open. */
  function firstWord(s: Duplex): Promise<string> {
    return new Promise((resolve, reject) => {
      s.once('data', (d: Buffer) => resolve(d.toString()));
      s.once('error', reject);
    });
  }

  it("counts the connections JavaScript carries (a peer's attach) with the engine's", async () => {
    const tails = [await holdingServer('a'), await holdingServer('b')];
    const engine = new Engine(() => undefined);
    const { head, port } = await loopbackHead(engine);
    const open = (port: number): Promise<string> => {
      const c = net.connect({ port, host: '127.0.0.1' });
      sockets.push(c);
      return firstWord(c);
    };
    try {
      head.setBalance('least-conn');
      await Promise.all(tails.map((t, i) => head.setTailSlot(i, target(t.name, t.port), t.name)));
      head.accept();
      // the engine: one to each
      assert.deepEqual([await open(port), await open(port)], ['a', 'b']);
      // a stream JavaScript carries (as a peer's attach is): a tie, it takes a
      const pair = await streamPair();
      const client = head.adopt(pair.inner);
      assert.ok(client);
      await client.toTail();
      assert.equal(await firstWord(pair.outer), 'a');
      await until(
        'the engine counts it',
        async () => head.tailStats()[0]?.open,
        (n) => n === 2,
      );
      // the engine's next connection goes to b: a has two open, one of them JavaScript's
      assert.equal(await open(port), 'b');
      assert.deepEqual(
        head.tailStats().map((t) => t?.open),
        [2, 2],
      );
    } finally {
      await head.close();
      engine.stop();
    }
  });
});

/** Two connected sockets: `inner` for the head to adopt, `outer` the client's end. */
async function streamPair(): Promise<{ inner: net.Socket; outer: net.Socket }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const outer = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  const inner = await accepted;
  server.close();
  return { inner, outer };
}

describe('Balancer (the pick as JavaScript asks it)', () => {
  function three(policy: 'round-robin' | 'least-conn' | 'source'): Balancer<string> {
    const b = new Balancer<string>();
    b.policy = policy;
    ['a', 'b', 'c'].forEach((name, i) => b.set(i, name, name));
    return b;
  }

  it('round-robin goes round, skipping tried and unhealthy tails', () => {
    const b = three('round-robin');
    assert.deepEqual(
      [0, 1, 2, 3].map(() => b.pick(new Set())),
      [0, 1, 2, 0],
    );
    b.setHealth(1, false);
    assert.deepEqual(
      [0, 1].map(() => b.pick(new Set())),
      [2, 0],
    );
    assert.equal(b.pick(new Set([0, 2])), 1, 'an unhealthy tail when no healthy one is left');
    assert.equal(b.pick(new Set([0, 1, 2])), -1);
  });

  it('least-conn counts the connections another mover carries for the head', () => {
    const b = three('least-conn');
    b.opened(0);
    assert.equal(b.pick(new Set()), 1);
    assert.equal(
      b.pick(new Set(), '', { openElsewhere: () => [0, 5, 1] }),
      2,
      'a: 1 here, b: 5 there, c: 1 there, ties go round',
    );
    assert.equal(b.pick(new Set(), '', { openElsewhere: () => [0, 5, 2] }), 0);
  });

  it('source: a client keeps its tail, and only the clients of a tail that goes move', () => {
    const b = three('source');
    const clients = Array.from({ length: 50 }, (_, i) => `10.0.${i}.1`);
    const before = clients.map((c) => b.pick(new Set(), c));
    assert.deepEqual(
      clients.map((c) => b.pick(new Set(), c)),
      before,
    );
    assert.deepEqual(
      clients.map((c) => b.pick(new Set(), `[::ffff:${c}]`)),
      clients.map((c) => b.pick(new Set(), `::ffff:${c}`)),
      'an IPv6 address in brackets is the same address',
    );
    b.set(1, null);
    const afterGone = clients.map((c) => b.pick(new Set(), c));
    before.forEach((slot, i) => {
      if (slot !== 1) assert.equal(afterGone[i], slot, `client ${clients[i]} stays on its tail`);
      else assert.notEqual(afterGone[i], 1);
    });
  });

  it('refuses a malformed question in one line', () => {
    assert.throws(() => native().pickTail({ policy: 7, cursor: 0, tails: [] }), {
      code: 'EINVAL',
      message: 'pickTail: policy must be a number from 0 to 2',
    });
    assert.throws(() => native().pickTail({ policy: 0, cursor: 0, tails: new Array(65).fill(null) }), {
      code: 'EINVAL',
    });
  });
});
