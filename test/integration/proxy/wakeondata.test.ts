/**
 * `wake-on-data` (SPEC.md, "Smarter activation") through the real daemon and CLI, with both
 * movers: a port scan (connect and close, many at once) runs no trigger and is no activity
 * for `idle`; a client that speaks runs it and is served.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { forEachMover, moverOpts } from '../../helpers/movers';
import { suiteCleanup } from '../../helpers/netns';
import { exchange, freePort, startService } from '../../helpers/services';
import { eventually } from '../../helpers/wait';

/** `n` clients at once that connect and close without a byte (half with a FIN, half a reset). */
async function scan(port: number, n: number): Promise<void> {
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve) => {
          const c = net.connect({ port, host: '127.0.0.1' }, () => {
            if (i % 2) c.resetAndDestroy();
            else c.end();
          });
          c.on('error', () => resolve());
          c.on('close', () => resolve());
        }),
    ),
  );
}

forEachMover('wake-on-data', (mover) => {
  let d: TestDaemon;
  let echo: number;
  const suite = suiteCleanup(after);

  before(async () => {
    d = await startDaemon(suite, moverOpts(mover));
    echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
  });

  async function info(id: string): Promise<SegmentInfo> {
    const all = JSON.parse((await d.cli('list', '--json')).stdout) as SegmentInfo[];
    return all.find((s) => s.id === id)!;
  }

  it('runs no trigger for a port scan, and runs it for the first client that speaks', async () => {
    const head = await freePort();
    const seg = await d.create('url', `:${head}`, 'wake-on-data', 'trigger', 'url', `:${echo}`);
    await scan(head, 40);
    // (one more silent client, closed only after list: held all along, never counted)
    const silent = net.connect({ port: head, host: '127.0.0.1' });
    silent.on('error', () => undefined);
    await new Promise((r) => silent.once('connect', r));
    let s = await info(seg.id);
    assert.equal(s.trigger?.runs, 0, 'the scan woke nothing');
    assert.equal(s.trigger?.state, 'armed');
    assert.equal(s.traffic?.total, 0, 'no scanning connection counted');
    silent.destroy();
    assert.equal(await exchange(head, 'hello'), 'hellobye', 'a client that speaks is served');
    s = await info(seg.id);
    assert.equal(s.trigger?.runs, 1, 'and ran the trigger, once');
    assert.equal(s.traffic?.total, 1);
  });

  it('lets a segment idle while it is scanned all along', async () => {
    const head = await freePort();
    const seg = await d.create('url', `:${head}`, 'idle', '2s', 'wake-on-data', 'trigger', 'url', `:${echo}`);
    assert.equal(await exchange(head, 'up'), 'upbye');
    const s = await eventually(`segment ${seg.id} idle`, async () => {
      await scan(head, 10);
      const now = await info(seg.id);
      return now.state === 'idle' ? now : undefined;
    });
    assert.equal(s.trigger?.runs, 1, 'the scans after it ran no trigger either');
    assert.equal(await exchange(head, 'again'), 'againbye', 'and the next client wakes it again');
    assert.equal((await info(seg.id)).trigger?.runs, 2);
  });

  if (mover === 'engine')
    it('is refused without a trigger, in one line, making nothing', async () => {
      const r = await d.cli('create', 'url', ':7601', 'wake-on-data', 'tail', 'url', `:${echo}`);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /wake-on-data needs a trigger/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.ok(!(await d.cli('list')).stdout.includes(':7601'), 'nothing made');
    });
});
