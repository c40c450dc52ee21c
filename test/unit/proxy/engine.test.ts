/**
 * The engine's JavaScript face checks what it is given before anything reaches the engine
 * thread: a tail that is not one is refused in one line (code EINVAL), and the slot keeps
 * what it had. On a loopback tail, no namespace.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { native } from '../../../src/native';
import { Engine, type EngineGroup } from '../../../src/proxy/engine';

/** A group of up to 10 connections, a 5 s dial timeout, that tells no one of anything. */
function quietGroup(engine: Engine): EngineGroup {
  return engine.group(
    10,
    undefined,
    {
      handoff: () => undefined,
      dialed: () => undefined,
      refused: () => undefined,
      acceptError: () => undefined,
    },
    5000,
  );
}

describe('groupTail refuses what is not a tail', () => {
  let engine: Engine;
  let group: EngineGroup;
  let server: net.Server;
  let port: number;

  before(async () => {
    server = net.createServer((s) => s.end('tail'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    engine = new Engine(() => undefined);
    group = quietGroup(engine);
    await group.setTail(0, { nsFd: -1, host: '127.0.0.1', port });
  });
  after(async () => {
    await group.close();
    engine.stop();
    server.close();
  });

  const bad: [string, unknown, RegExp][] = [
    [
      'a host name',
      { host: 'localhost', port: 80 },
      /^groupTail: host and port must be a numeric IP address/,
    ],
    ['no port', { host: '127.0.0.1' }, /^groupTail: host and port must be/],
    [
      'a port out of range',
      { host: '127.0.0.1', port: 70000 },
      /^groupTail: port must be a number from 0 to 65535$/,
    ],
    [
      'a relative unix path',
      { path: 'run/app.sock', rootFd: 0 },
      /^groupTail: path must be @name, or \/path with a rootFd$/,
    ],
    [
      'a unix path without its root',
      { path: '/run/app.sock' },
      /^groupTail: path must be @name, or \/path with a rootFd$/,
    ],
    [
      'an empty abstract name',
      { path: '@' },
      /^groupTail: path must be @name with a name of 1 to 107 bytes$/,
    ],
    [
      'PROXY protocol v3',
      { host: '127.0.0.1', port: 80, proxy: 3 },
      /^groupTail: proxy must be a number from 0 to 2$/,
    ],
    ['a key that is no string', { host: '127.0.0.1', port: 80, key: 7 }, /^groupTail: key must be a string/],
    ['positional arguments', -1, /^groupTail: the tail must be an object, or null to empty the slot$/],
  ];
  for (const [what, tail, message] of bad)
    it(`refuses ${what}`, () => {
      assert.throws(
        () => native().groupTail(engine.handle, group.handle, 0, tail as never),
        (err: NodeJS.ErrnoException) => err.code === 'EINVAL' && message.test(err.message),
      );
    });

  it('refuses a slot out of range', () => {
    assert.throws(() => group.setTail(64, { nsFd: -1, host: '127.0.0.1', port }), { code: 'EINVAL' });
  });

  it('and the slot keeps its tail: the engine still dials it', async () => {
    assert.deepEqual(
      group.tailStats().map((t) => t !== null),
      [true],
    );
    const [fd, head] = await native().listenIn(null, 4, 'tcp', '127.0.0.1', 0, 16);
    group.listen([fd]);
    const said = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ port: head, host: '127.0.0.1' });
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString()));
      c.on('end', () => resolve(text));
      c.on('error', reject);
    });
    assert.equal(said, 'tail');
  });
});

describe('a group listening on a port range (one listener per port, in port order)', () => {
  // (loopback addresses of this test's own: the three ports are free on them whatever else runs)
  const a = 2 + Math.floor(Math.random() * 250);
  const headHost = `127.81.${a}.1`;
  const tailHost = `127.81.${a}.2`;
  const first = 41000;
  let engine: Engine;
  let group: EngineGroup;
  const servers: net.Server[] = [];

  /** What the head's port at `i` answers. */
  function said(i: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const c = net.connect({ port: first + i, host: headHost });
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString()));
      c.on('end', () => resolve(text));
      c.on('error', reject);
    });
  }

  before(async () => {
    // tail port first + i answers "tail i"
    for (let i = 0; i < 3; i++) {
      const s = net.createServer((c) => c.end(`tail ${i}`));
      await new Promise<void>((resolve) => s.listen(first + i, tailHost, resolve));
      servers.push(s);
    }
    engine = new Engine(() => undefined);
    group = quietGroup(engine);
    const fds: number[] = [];
    for (let i = 0; i < 3; i++)
      fds.push((await native().listenIn(null, 4, 'tcp', headHost, first + i, 16))[0]);
    group.listen(fds);
  });
  after(async () => {
    await group.close();
    engine.stop();
    for (const s of servers) s.close();
  });

  it('takes head port i to tail port i with a span tail', async () => {
    await group.setTail(0, { nsFd: -1, host: tailHost, port: first, span: true });
    assert.deepEqual([await said(0), await said(1), await said(2)], ['tail 0', 'tail 1', 'tail 2']);
  });

  it('takes every head port to the one tail port without span', async () => {
    await group.setTail(0, { nsFd: -1, host: tailHost, port: first + 1 });
    assert.deepEqual([await said(0), await said(2)], ['tail 1', 'tail 1']);
    assert.equal(group.stats().total, 5, 'one group counts the connections of every port');
  });

  it('frees every port at unlisten', async () => {
    group.unlisten();
    for (let i = 0; i < 3; i++) {
      let fd = -1;
      for (let tries = 0; fd < 0 && tries < 50; tries++)
        fd = await native()
          .listenIn(null, 4, 'tcp', headHost, first + i, 16)
          .then(([f]) => f)
          .catch(() => new Promise<number>((resolve) => setTimeout(() => resolve(-1), 20)));
      assert.ok(fd >= 0, `port ${first + i} free again`);
      fs.closeSync(fd);
    }
  });

  it('refuses an fd list that is empty or not fds', () => {
    assert.throws(() => native().groupListen(engine.handle, group.handle, []), { code: 'EINVAL' });
    assert.throws(() => native().groupListen(engine.handle, group.handle, [-1]), { code: 'EINVAL' });
  });
});
