/**
 * A head's setTail resolves once its mover has applied the change: the very next connection
 * reaches the new tail, never the old, with the splice engine (which takes the change on its
 * own thread and says so) as with the JavaScript mover. The tail is switched many times, each
 * switch followed by one connection that must land on it, while other clients keep the head
 * busy: if setTail resolved before the engine had the change, the engine would sooner or
 * later accept one of them ahead of it and send it where the slot pointed before. On
 * loopback sockets, no namespace.
 */
import assert from 'node:assert/strict';
import type * as net from 'node:net';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Engine } from '../../../src/proxy/engine';
import { loopbackHead, loopbackTarget as target, nameServer, whoAnswers } from '../../helpers/heads';

/**
 * Clients connecting to the port all the time, on a thread of their own (four at once, each
 * closing as soon as it is answered): the head always has a connection to accept.
 */
function busyClients(port: number): Worker {
  return new Worker(
    `
    const net = require('node:net');
    const { workerData } = require('node:worker_threads');
    const one = () => {
      const c = net.connect({ port: workerData, host: '127.0.0.1' });
      c.on('data', () => undefined);
      c.on('close', one);
      c.on('error', () => undefined);
    };
    for (let i = 0; i < 4; i++) one();
    `,
    { eval: true, workerData: port },
  );
}

for (const mover of ['engine', 'javascript'] as const)
  describe(`setTail, then connect (${mover} mover)`, () => {
    const servers: net.Server[] = [];
    after(() => servers.forEach((s) => s.close()));

    it('reaches the tail just set, every time, never the one before', async () => {
      const tails = [await nameServer('x'), await nameServer('y')];
      servers.push(...tails.map((t) => t.server));
      const engine = mover === 'engine' ? new Engine(() => undefined) : null;
      const { head, port } = await loopbackHead(engine);
      const busy = busyClients(port);
      const landed: string[] = [];
      try {
        await head.setTail(target('x', tails[0].port));
        head.accept();
        for (let i = 0; i < 300; i++) {
          const t = tails[(i + 1) % 2];
          await head.setTail(target(t.name, t.port));
          landed.push(await whoAnswers(port));
        }
      } finally {
        await busy.terminate();
        await head.close();
        engine?.stop();
      }
      const expected = landed.map((_, i) => tails[(i + 1) % 2].name);
      const wrong = landed.flatMap((got, i) => (got === expected[i] ? [] : [i]));
      assert.deepEqual(wrong, [], 'connections that reached the tail before the one just set');
    });
  });
