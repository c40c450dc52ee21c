/**
 * A segment is made from a spec, checked when it is made, and its head accepts only once
 * told to (after its tail is set): a client that connects before waits, and is served.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, it } from 'node:test';
import { ContainerFollower } from '../../../src/segment/follow';
import { Segment } from '../../../src/segment/segment';
import type { SegmentDeps, SegmentSpec } from '../../../src/segment/spec';
import { DisposableStack } from '../../../src/common/disposable';
import { fakeContext } from '../../helpers/fakes';
import { exchange } from '../../helpers/services';

let echo: net.Server;
let echoPort = 0;
before(async () => {
  echo = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end('bye'));
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
});
after(() => echo.close());

function deps(): SegmentDeps {
  const ctx = fakeContext();
  return {
    ctx,
    runTrigger: () => Promise.reject(new Error('no trigger in this test')),
    follower: new ContainerFollower(ctx.containers, ctx.log),
  };
}

function spec(over: Partial<SegmentSpec> = {}): SegmentSpec {
  return {
    id: 'seg',
    parent: null,
    remote: false,
    head: { proto: 'tcp', ns: null, host: '127.0.0.1', port: 0 },
    headDraft: {},
    tailDrafts: [{}],
    balance: 'round-robin',
    healthMs: 5000,
    trigger: null,
    made: { scope: new DisposableStack(), containers: [] },
    ...over,
  };
}

it('refuses, when it is made, a spec no segment can be built from', () => {
  assert.throws(() => new Segment(spec({ tailDrafts: [] }), deps()), /no tail draft/);
  assert.throws(() => new Segment(spec({ idleMs: 1000 }), deps()), /idle needs a trigger/);
  assert.throws(() => new Segment(spec({ healthMs: 0 }), deps()), /health interval must be positive/);
});

it('accepts once told to: a client that connected before its tail was set is served', async () => {
  const seg = new Segment(spec(), deps());
  await seg.open();
  assert.ok(seg.boundPort > 0, 'the head is bound');
  const early = exchange(seg.boundPort, 'early');
  // (let the client reach the backlog before the tail is set)
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seg.info().state, 'waiting');
  await seg.setTail({ kind: 'local', ep: { proto: 'tcp', ns: null, host: '127.0.0.1', port: echoPort } });
  seg.accept();
  assert.equal(await early, 'earlybye');
  assert.equal(seg.info().state, 'ready');
  await seg.close();
  assert.equal(seg.info().state, 'closed');
});

it('releases what its create-time steps made when it closes', async () => {
  const made = { scope: new DisposableStack(), containers: ['c1'] };
  const released: string[] = [];
  made.scope.defer(() => void released.push('c1'));
  const seg = new Segment(spec({ made }), deps());
  assert.deepEqual(seg.info().containers, ['c1']);
  await seg.close();
  assert.deepEqual(released, ['c1']);
});
