/**
 * When the daemon gives memory back (src/daemon/memory.ts): once after a burst of changes, once
 * the burst is over, and never for a trickle of them. The collection itself is a stand-in
 * here (the addon's is exercised by e2e/apply and integration/peer/channel).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { createLogger } from '../../../src/common/log';
import { BULK_CHANGES, BULK_WINDOW_MS, MemoryGiveBack } from '../../../src/daemon/memory';

describe('memory given back after a bulk change', () => {
  let collections: number;
  let memory: MemoryGiveBack;
  const change = (n: number): void => {
    for (let i = 0; i < n; i++) memory.changed();
  };

  beforeEach(() => {
    mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 1_000_000 });
    collections = 0;
    memory = new MemoryGiveBack(createLogger('test', 'silent'), () => collections++);
  });
  afterEach(() => mock.timers.reset());

  it('collects once after a burst, when it is over, and not in the middle of it', () => {
    change(BULK_CHANGES);
    for (let i = 0; i < 10; i++) {
      change(1); // (still going: each check sees a change since the one before)
      mock.timers.tick(100);
    }
    assert.equal(collections, 0, 'not while changes go on');
    mock.timers.tick(100);
    assert.equal(collections, 1, 'once they stopped');
    mock.timers.tick(10_000);
    assert.equal(collections, 1, 'and only once');
  });

  it('never collects for a trickle of changes, however many in all', () => {
    for (let i = 0; i < 4 * BULK_CHANGES; i++) {
      change(1);
      mock.timers.tick(BULK_WINDOW_MS / (BULK_CHANGES / 2)); // half the bulk in each window
    }
    mock.timers.tick(10_000);
    assert.equal(collections, 0);
  });

  it('counts a burst again after a collection', () => {
    change(BULK_CHANGES);
    mock.timers.tick(200);
    assert.equal(collections, 1);
    change(BULK_CHANGES - 1);
    mock.timers.tick(200);
    assert.equal(collections, 1, 'one short of a bulk change');
    change(1);
    mock.timers.tick(200);
    assert.equal(collections, 2);
  });
});
