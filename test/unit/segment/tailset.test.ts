/**
 * Several tails without a TCP head (a UDP segment's): the set finds its endpoints, and picks
 * one per new session by the balance policy.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TailSet } from '../../../src/segment/tailset';
import { fakeContext } from '../../helpers/fakes';

function set(policy: 'round-robin' | 'source'): TailSet {
  const ctx = fakeContext();
  const drafts = [
    { proto: 'udp' as const, port: 5301 },
    { proto: 'udp' as const, port: 5302 },
  ];
  return new TailSet(
    { log: ctx.log, containers: ctx.containers, segment: 's' },
    undefined,
    drafts,
    {},
    policy,
    null,
  );
}

it('finds every tail, and takes turns between them for new sessions', async () => {
  const tails = set('round-robin');
  await tails.start();
  assert.deepEqual(
    tails.endpointsNow.map((e) => e.port),
    [5301, 5302],
  );
  const picks = ['a', 'b', 'c', 'd'].map((client) => tails.pickUdp(client)?.port);
  assert.deepEqual(picks.sort(), [5301, 5301, 5302, 5302]);
  assert.deepEqual(
    tails.info([]).map((t) => [t.url, t.health]),
    [
      ['udp://127.0.0.1:5301', 'unknown'],
      ['udp://127.0.0.1:5302', 'unknown'],
    ],
  );
  tails.dispose();
});

it('sends a client to the same tail each time by source', async () => {
  const tails = set('source');
  await tails.start();
  const first = tails.pickUdp('10.0.0.7')?.port;
  for (let i = 0; i < 5; i++) assert.equal(tails.pickUdp('10.0.0.7')?.port, first);
  tails.dispose();
});
