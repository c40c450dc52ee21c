/**
 * A pull's progress told to the requests waiting for it (src/docker/progress.ts): every sink
 * of a shared pull hears each step, a layer's byte counts are spaced out but a change of
 * status never held back, a sink that throws is dropped, and the sink set by
 * withPullProgress is the one found across awaits, and only there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type PullProgress,
  PullWatchers,
  progressSink,
  withPullProgress,
} from '../../../src/docker/progress';

describe('pull progress', () => {
  it('tells every sink; byte counts spaced out, status changes at once', () => {
    const w = new PullWatchers('app');
    const a: PullProgress[] = [];
    const b: PullProgress[] = [];
    w.add((p) => a.push(p));
    const stopB = w.add((p) => b.push(p));
    w.event({ id: 'l1', status: 'Downloading', progressDetail: { current: 1, total: 9 } });
    w.event({ id: 'l1', status: 'Downloading', progressDetail: { current: 2, total: 9 } }); // within 250 ms
    w.event({ id: 'l2', status: 'Downloading', progressDetail: { current: 1, total: 9 } });
    w.event({ id: 'l1', status: 'Download complete', progressDetail: {} });
    stopB();
    w.event({ status: 'Status: Downloaded newer image for app:latest' });
    assert.deepEqual(a, [
      { image: 'app', layer: 'l1', status: 'Downloading', current: 1, total: 9 },
      { image: 'app', layer: 'l2', status: 'Downloading', current: 1, total: 9 },
      { image: 'app', layer: 'l1', status: 'Download complete' },
      { image: 'app', status: 'Status: Downloaded newer image for app:latest' },
    ]);
    assert.deepEqual(b, a.slice(0, 3), 'a sink that stopped hears no more');
  });

  it('drops a sink that throws, and goes on with the others', () => {
    const w = new PullWatchers('app');
    let calls = 0;
    const heard: string[] = [];
    w.add(() => {
      calls++;
      throw new Error('client gone');
    });
    w.add((p) => heard.push(p.status));
    w.event({ id: 'l1', status: 'Pulling fs layer' });
    w.event({ id: 'l1', status: 'Pull complete' });
    assert.equal(calls, 1);
    assert.deepEqual(heard, ['Pulling fs layer', 'Pull complete']);
  });

  it("cuts the engine's texts to what a progress frame may carry", () => {
    const w = new PullWatchers('app');
    const heard: PullProgress[] = [];
    w.add((p) => heard.push(p));
    w.event({ id: 'l'.repeat(300), status: 's'.repeat(5000) });
    assert.equal(heard[0].layer?.length, 256);
    assert.equal(heard[0].status.length, 1024);
  });

  it('finds the sink of the request it runs for, across awaits', async () => {
    const sink = (): void => undefined;
    assert.equal(progressSink(), undefined);
    const found = await withPullProgress(sink, async () => {
      await new Promise((r) => setTimeout(r, 5));
      return progressSink();
    });
    assert.equal(found, sink);
    assert.equal(progressSink(), undefined);
  });
});
