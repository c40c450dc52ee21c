/**
 * The keeper is a journal the manager writes around each build: the record before it
 * (incomplete), again once built (complete), forgotten if a first build fails.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { tokenize } from '../../../src/api/grammar';
import { SegmentKeeper } from '../../../src/segment/keeper';
import { newRecord } from '../../../src/segment/records';
import { fakeContext } from '../../helpers/fakes';

const actions = tokenize(['url', ':0', 'tail', 'url', ':1']);

it('writes a record before the build and again, complete, with what was built', () => {
  const ctx = fakeContext();
  const keeper = new SegmentKeeper(ctx);
  const record = newRecord('web', 'local', actions);
  keeper.begin(record);
  assert.equal(ctx.store.records.get('web')?.complete, false, 'incomplete while it is built');
  keeper.commit(record, { url: 'tcp://127.0.0.1:4000', segments: [{ id: 'web', port: 4000 }] });
  assert.deepEqual(ctx.store.writes, ['save web', 'save web complete']);
  const kept = ctx.store.records.get('web')!;
  assert.deepEqual([kept.url, kept.built], ['tcp://127.0.0.1:4000', [{ id: 'web', port: 4000 }]]);
  assert.equal(keeper.record('web')?.complete, true);
});

it('forgets a new record whose build failed, and keeps one that was complete before', () => {
  const ctx = fakeContext();
  const keeper = new SegmentKeeper(ctx);
  const fresh = newRecord('fresh', 'local', actions);
  keeper.begin(fresh);
  keeper.abort(fresh);
  assert.ok(!ctx.store.records.has('fresh'), 'a create that failed leaves nothing to build again');

  const old = { ...newRecord('old', 'local', actions), complete: true };
  ctx.store.save(old); // (kept from an earlier run)
  keeper.begin(old);
  keeper.abort(old);
  assert.ok(ctx.store.records.has('old'), 'a rebuild that failed is kept, to be tried again');
});

it('builds a kept record again with its id and its heads ports, and lists one that failed', () => {
  const keeper = new SegmentKeeper(fakeContext());
  const record = {
    ...newRecord('web', 'local', actions),
    complete: true,
    url: 'tcp://127.0.0.1:4000',
    built: [{ id: 'web', port: 4000 }],
  };
  const { plan, ports } = keeper.rebuildPlan(record);
  assert.equal(plan.id, 'web');
  assert.equal(ports.get('web'), 4000);

  keeper.failedToBuild(record, new Error('address already in use'));
  const [failed] = keeper.failedInfos();
  assert.deepEqual([failed.id, failed.state, failed.error], ['web', 'failed', 'address already in use']);
  keeper.forget('web');
  assert.deepEqual(keeper.failedInfos(), []);
});

it('writes nothing for a kept segment built again as it was, and once when its ports changed', () => {
  const ctx = fakeContext();
  const keeper = new SegmentKeeper(ctx);
  const kept = {
    ...newRecord('web', 'local', actions),
    complete: true,
    url: 'tcp://127.0.0.1:4000',
    built: [{ id: 'web', port: 4000 }],
  };
  keeper.begin(kept);
  keeper.commit(kept, { url: 'tcp://127.0.0.1:4000', segments: [{ id: 'web', port: 4000 }] });
  assert.deepEqual(ctx.store.writes, [], 'a restart of 10,000 segments rewrites none of them');
  assert.equal(keeper.record('web')?.url, 'tcp://127.0.0.1:4000');

  keeper.begin(kept);
  keeper.commit(kept, { url: 'tcp://127.0.0.1:4001', segments: [{ id: 'web', port: 4001 }] });
  assert.deepEqual(ctx.store.writes, ['save web complete']);
  assert.deepEqual(ctx.store.records.get('web')?.built, [{ id: 'web', port: 4001 }]);
});
