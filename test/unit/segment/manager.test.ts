/**
 * The manager with fakes (no namespaces, Docker or peers; the JavaScript mover on the host's
 * loopback): a segment built from a plan carries bytes, its record is journaled around the
 * build, a failed build leaves nothing, and a head accepts only once its tail is set.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { tokenize } from '../../../src/api/grammar';
import { SegmentManager } from '../../../src/segment/manager';
import { fakeContext } from '../../helpers/fakes';
import { exchange, freePort } from '../../helpers/services';
import { eventually, sleep } from '../../helpers/wait';

/** An echo server on the loopback that answers "bye" after the client's FIN. */
function echoServer(): Promise<{ port: number; close(): void }> {
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end('bye'));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() }),
    ),
  );
}

describe('the segment manager, with fakes', () => {
  let echo: { port: number; close(): void };
  before(async () => (echo = await echoServer()));
  after(() => echo.close());

  it('builds a segment from its actions, carries bytes, and journals its record around the build', async () => {
    const ctx = fakeContext();
    const manager = new SegmentManager(ctx);
    const [seg] = await manager.create(tokenize(['id', 'web', 'url', ':0', 'tail', 'url', `:${echo.port}`]));
    assert.equal(await exchange(seg.boundPort, 'hi'), 'hibye');
    assert.deepEqual(ctx.store.writes, ['save web', 'save web complete']);
    assert.deepEqual(ctx.store.records.get('web')?.built, [{ id: 'web', port: seg.boundPort }]);
    assert.deepEqual(await manager.delete('web'), ['web']);
    assert.deepEqual(ctx.store.writes.slice(2), ['forget web']);
    assert.deepEqual(manager.list(), []);
  });

  it('leaves nothing of a create that fails: no segment, no record, the id free again', async () => {
    const ctx = fakeContext();
    const manager = new SegmentManager(ctx);
    const port = await freePort();
    // a tail that is the head itself is refused
    const words = ['id', 'loop', 'url', `:${port}`, 'tail', 'url', `:${port}`];
    await assert.rejects(manager.create(tokenize(words)), /itself|same|loop/i);
    assert.deepEqual(ctx.store.writes, ['save loop', 'forget loop']);
    assert.deepEqual(manager.list(), []);
    const [seg] = await manager.create(tokenize(['id', 'loop', 'url', ':0', 'tail', 'url', `:${echo.port}`]));
    assert.equal(seg.id, 'loop', 'the id can be taken again');
    await manager.closeAll();
  });

  it('does not accept before the tail is set: a client that connects while a remote child is made is served', async () => {
    const ctx = fakeContext();
    const manager = new SegmentManager(ctx);
    const port = await freePort();
    // the peer answers the create only when told to
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const createChild = ctx.peers.createChild.bind(ctx.peers);
    let asked = false;
    ctx.peers.createChild = async (host, params) => {
      asked = true;
      await answered;
      return createChild(host, params);
    };
    const created = manager.create(tokenize(['url', `:${port}`, 'remote', 'peer.test', 'tail', 'url', ':7']));
    await eventually('the peer is asked', async () => (asked ? true : undefined), 10);
    // the head is bound: the client is in its backlog, not served yet
    const early = exchange(port, 'early');
    // (time for a head that accepts too soon to take the client, and drop it)
    await sleep(100);
    answer();
    await created;
    // (the fake peer's attach stream is a PassThrough: it echoes)
    assert.equal(await early, 'early', 'served once the tail was set, not dropped');
    assert.deepEqual(ctx.peers.calls, ['create on peer.test', 'attach child1 on peer.test']);
    await manager.closeAll();
  });
});
