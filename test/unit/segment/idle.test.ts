/**
 * Scale to zero without Docker: the duration words, `idle` in the grammar, the idle decision,
 * and the watch against a fake segment (what it reads, when it lets go, when it keeps the tail).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../../src/api/duration';
import { parsePlan, tokenize } from '../../../src/api/grammar';
import { createLogger } from '../../../src/common/log';
import { type Activity, IdleWatch, checkEvery, isIdle } from '../../../src/segment/idle';

describe('durations', () => {
  const good: [string, number][] = [
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['45', 45_000],
    ['2', 2000],
    ['0.5', 500],
    ['1.5m', 90_000],
    ['.25s', 250],
    ['596h', 596 * 3_600_000],
    ['250ms', 250],
  ];
  for (const [text, ms] of good)
    it(`reads ${text} as ${ms} ms`, () => assert.equal(parseDuration(text, 'idle'), ms));

  const bad: [string, RegExp][] = [
    ['', /is not a duration/],
    ['s', /is not a duration/],
    ['10x', /idle "10x" is not a duration: write it as 30s, 5m, 1h or a number of seconds/],
    ['-5', /is not a duration/],
    ['1e3', /is not a duration/],
    ['5 m', /is not a duration/],
    ['5 ms', /is not a duration/],
    ['0.4ms', /must be longer than zero/],
    ['1d', /is not a duration/],
    ['0', /must be longer than zero/],
    ['0s', /must be longer than zero/],
    ['0.0001', /must be longer than zero/],
    ['597h', /is too long/],
  ];
  for (const [text, msg] of bad)
    it(`refuses "${text}"`, () => assert.throws(() => parseDuration(text, 'idle'), msg));
});

describe('idle in the create grammar', () => {
  const plan = (words: string) => parsePlan(tokenize(words.split(' ')));

  it('belongs to the segment wherever it is written, with a trigger', () => {
    assert.equal(plan('url :3306 idle 10m trigger docker-run wormhole/mysql').idle, 600_000);
    assert.equal(plan('url :3306 trigger docker-run wormhole/mysql idle 30').idle, 30_000);
    assert.equal(plan('url :1 trigger url :2').idle, undefined);
  });

  it("a child's idle is the child's", () => {
    const p = plan('url :80 trigger docker-run app child url :3306 idle 5m trigger docker-run db');
    assert.equal(p.idle, undefined);
    const child = p.trigger?.[1];
    assert.equal(child?.op, 'child');
    if (child?.op === 'child') assert.equal(child.plan.idle, 300_000);
  });

  const bad: [string, RegExp][] = [
    ['url :1 idle 10m tail url :2', /: idle needs a trigger: what the trigger runs is what idle releases/],
    ['url :1 idle 10m', /idle needs a trigger/],
    // the child (on the peer) has no trigger: refused here, before anything is made
    ['url :1 trigger remote host idle 1m tail url :2', /idle needs a trigger/],
    ['url :1 idle 1m idle 2m trigger url :2', /idle is given twice/],
    ['url :1 idle soon trigger url :2', /idle "soon" is not a duration/],
  ];
  for (const [words, msg] of bad) it(`refuses "${words}"`, () => assert.throws(() => plan(words), msg));

  it('needs its argument', () => {
    assert.throws(() => tokenize(['url', ':1', 'idle']), /idle needs an argument/);
    assert.throws(() => tokenize(['url', ':1', 'idle', 'trigger']), /idle needs an argument/);
    assert.throws(() => parsePlan([{ verb: 'idle', args: [] }]), /idle was given 0 argument/);
  });
});

describe('the idle decision', () => {
  const now = 1_000_000;
  const cases: [string, number, number, number, boolean][] = [
    // what, open, lastActive, idleMs, idle?
    ['nothing open, quiet for longer', 0, now - 10_000, 5000, true],
    ['nothing open, quiet for exactly that long', 0, now - 5000, 5000, true],
    ['nothing open, a byte moved a moment ago', 0, now - 4999, 5000, false],
    ['a connection open, quiet for an hour', 1, now - 3_600_000, 5000, false],
    ['many open', 20, now - 60_000, 1000, false],
    ['never used since the tail came (lastActive is then when it came)', 0, now - 6000, 5000, true],
  ];
  for (const [what, open, last, idleMs, want] of cases)
    it(`${what}: ${want ? 'idle' : 'not idle'}`, () => assert.equal(isIdle(open, last, now, idleMs), want));

  it('reads the counters often enough, never too often', () => {
    assert.equal(checkEvery(600_000), 5000);
    assert.equal(checkEvery(10_000), 1000);
    assert.equal(checkEvery(500), 100);
  });
});

/** A segment whose counters the test sets, recording what the watch does. */
function fakeSegment() {
  const seg = {
    id: 'fake',
    now: { open: 0, total: 0, lastActive: 0 } as Activity,
    calls: [] as string[],
    releaseMs: 20,
    /** What "arrives" while the mover takes the hold (before holdTail resolves). */
    duringHold: undefined as (() => void) | undefined,
    activity: () => ({ ...seg.now }),
    holdTail: async () => {
      seg.calls.push('hold');
      await new Promise((r) => setImmediate(r)); // (the mover's acknowledgement, on a later turn)
      seg.duringHold?.();
    },
    resumeTail: async () => void seg.calls.push('resume'),
    releaseTail: async () => {
      seg.calls.push('release');
      await new Promise((r) => setTimeout(r, seg.releaseMs));
    },
  };
  return seg;
}

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the idle watch', () => {
  const log = createLogger('test', 'silent');

  it('lets go once, after the idle time, and says when', async () => {
    const seg = fakeSegment();
    const w = new IdleWatch(200, seg, log);
    w.watch();
    await until('released', () => seg.calls.includes('release'));
    await until('settled', () => w.pending() === undefined);
    assert.deepEqual(seg.calls, ['hold', 'release']);
    assert.equal(w.idle, true);
    assert.ok(w.idledAt);
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(seg.calls, ['hold', 'release'], 'not again until the trigger runs again');
    w.running();
    assert.equal(w.idle, false);
    w.stop();
  });

  it('never lets go under an open connection, and counts from its close', async () => {
    const seg = fakeSegment();
    seg.now = { open: 1, total: 1, lastActive: Date.now() };
    const w = new IdleWatch(150, seg, log);
    w.watch();
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(seg.calls, [], 'quiet, but open');
    seg.now = { ...seg.now, open: 0 };
    const closed = Date.now();
    await until('released', () => seg.calls.includes('release'));
    assert.ok(Date.now() - closed >= 150, 'not before the idle time after the close');
    w.stop();
  });

  it('a connection that comes and goes between two looks is activity', async () => {
    const seg = fakeSegment();
    const w = new IdleWatch(300, seg, log);
    w.watch();
    const bump = setInterval(() => (seg.now = { ...seg.now, total: seg.now.total + 1 }), 50);
    await new Promise((r) => setTimeout(r, 800));
    assert.deepEqual(seg.calls, []);
    clearInterval(bump);
    await until('released', () => seg.calls.includes('release'));
    w.stop();
  });

  it('keeps the tail when a connection reached it as the hold was taking effect', async () => {
    const seg = fakeSegment();
    seg.duringHold = () => (seg.now = { ...seg.now, total: seg.now.total + 1 });
    const w = new IdleWatch(100, seg, log);
    w.watch();
    await until('resumed', () => seg.calls.includes('resume'));
    assert.deepEqual(seg.calls.slice(0, 2), ['hold', 'resume']);
    assert.equal(w.idle, false);
    // watched again: with nothing more, it lets go the next time
    seg.duringHold = undefined;
    await until('released', () => seg.calls.includes('release'));
    w.stop();
  });

  it('a run waits for a release under way', async () => {
    const seg = fakeSegment();
    seg.releaseMs = 500;
    const w = new IdleWatch(100, seg, log);
    w.watch();
    await until('releasing', () => w.pending() !== undefined);
    let waited = false;
    await w.pending()?.then(() => (waited = seg.calls.includes('release')));
    assert.ok(waited, 'pending() resolves once the release is done');
    w.stop();
  });

  it('stops watching when stopped', async () => {
    const seg = fakeSegment();
    const w = new IdleWatch(100, seg, log);
    w.watch();
    w.stop();
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(seg.calls, []);
    w.watch();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seg.calls, [], 'a stopped watch does not start again');
  });
});
