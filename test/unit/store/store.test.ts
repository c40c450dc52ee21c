/**
 * Segment records on disk (src/store) and the ids a rebuild must find again
 * (src/segment/records): round trips, bad files skipped with their reason, derived ids.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parsePlan, tokenize } from '../../../src/api/grammar';
import { parseDaemonOptions } from '../../../src/daemon/options';
import {
  childId,
  derivedId,
  newRecord,
  peerChildId,
  peerChildren,
  peerKey,
} from '../../../src/segment/records';
import { ChangeGate } from '../../../src/segment/gate';
import { native } from '../../../src/native';
import { SegmentStore } from '../../../src/store';

function tmpStore(): { dir: string; store: SegmentStore } {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'whstore-')), 'segments');
  return { dir, store: new SegmentStore(dir) };
}

describe('SegmentStore', () => {
  it('keeps records across instances, oldest first, and forgets them', () => {
    const { dir, store } = tmpStore();
    const a = { ...newRecord('a', 'local', [{ verb: 'url', args: [':1'] }]), createdAt: 2 };
    const b = {
      ...newRecord('b', 'peer', [], { key: 'o/x', head: { proto: 'tcp' as const, port: 5 } }),
      createdAt: 1,
    };
    store.save(a);
    store.save(b);
    store.save({ ...a, complete: true, url: 'tcp://127.0.0.1:1' }); // replaced, not added
    const { records, skipped } = new SegmentStore(dir).load();
    assert.deepEqual(skipped, []);
    assert.deepEqual(
      records.map((r) => [r.id, r.complete]),
      [
        ['b', false],
        ['a', true],
      ],
    );
    assert.deepEqual(records[0].head, { proto: 'tcp', port: 5 });
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'b.json'], 'no temporary file left');
    store.forget('a');
    store.forget('a');
    assert.deepEqual(
      store.load().records.map((r) => r.id),
      ['b'],
    );
  });

  it('writes a batch of records and syncs them once, at its end, also when it fails', async () => {
    const { dir, store } = tmpStore();
    const synced: number[] = [];
    const syncAll = (fd: number): void => {
      native().syncFs(fd); // (the addon's syncfs: it must take the directory's fd)
      synced.push(store.load().records.length);
    };
    await store.batch(async () => {
      for (let i = 0; i < 50; i++) store.save(newRecord(`s${i}`, 'local', [{ verb: 'url', args: [':1'] }]));
      await store.batch(async () => store.forget('s0'), syncAll); // (nested: synced with the outer one)
      assert.deepEqual(synced, [], 'nothing synced while the batch runs');
    }, syncAll);
    assert.deepEqual(synced, [49], 'one sync, after every write');
    await assert.rejects(
      store.batch(async () => {
        store.forget('s1');
        throw new Error('a step failed');
      }, syncAll),
      /a step failed/,
    );
    assert.deepEqual(synced, [49, 48], 'what was written before the failure is synced too');
    await store.batch(async () => store.load(), syncAll);
    assert.deepEqual(synced, [49, 48], 'a batch that wrote nothing does not sync');
    assert.equal(fs.readdirSync(dir).length, 48, 'no temporary file left');
  });

  it('skips what it cannot read, saying which file and why, and removes interrupted writes', () => {
    const { dir, store } = tmpStore();
    store.save(newRecord('good', 'local', []));
    fs.writeFileSync(path.join(dir, 'cut.json'), '{"version":1,"id":"cu');
    fs.writeFileSync(
      path.join(dir, 'old.json'),
      JSON.stringify({ ...newRecord('old', 'local', []), version: 0 }),
    );
    fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify(newRecord('good2', 'local', [])));
    // an interrupted write whose writer is dead: a pid above the kernel's pid_max, which no
    // process can have (a small fixed pid was once another process's, alive: the file stayed)
    const dead = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
    const tmp = path.join(dir, `good.json.${dead}.tmp`);
    fs.writeFileSync(tmp, 'partial');
    fs.writeFileSync(path.join(dir, 'README'), 'not a record');
    const { records, skipped } = store.load();
    assert.deepEqual(
      records.map((r) => r.id),
      ['good'],
    );
    const why = Object.fromEntries(skipped.map((s) => [path.basename(s.file), s.why]));
    assert.deepEqual(Object.keys(why).sort(), ['cut.json', 'old.json', 'other.json']);
    assert.match(why['cut.json'], /JSON/);
    assert.match(why['old.json'], /not a segment record \(version/);
    assert.match(why['other.json'], /holds segment good2/);
    assert.ok(!fs.existsSync(tmp));
  });
});

describe('ids a rebuild finds again', () => {
  it('derives the same UUID-shaped id from the same seed, another from another', () => {
    assert.equal(derivedId('x'), derivedId('x'));
    assert.notEqual(derivedId('x'), derivedId('y'));
    assert.match(derivedId('x'), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('a child takes the id the user gave, else one that follows from its parent', () => {
    const named = parsePlan(tokenize(['id', 'kid', 'url', ':1']));
    const unnamed = parsePlan(tokenize(['url', ':1']));
    assert.equal(childId('p', named), 'kid');
    assert.equal(childId('p', unnamed), childId('p', unnamed));
    assert.notEqual(childId('p', unnamed), childId('q', unnamed));
    assert.equal(peerChildId(peerKey('owner', 'p'), unnamed), derivedId('owner/p'));
  });

  it('finds every peer child of a plan, through local children and triggers', () => {
    const named = parsePlan(
      tokenize([
        'url',
        ':1',
        'chain',
        'url',
        ':2',
        'trigger',
        'remote',
        'hostb',
        'id',
        'named',
        'tail',
        'url',
        ':3',
      ]),
    );
    assert.deepEqual(peerChildren('own', 'top', named), [['hostb', 'named']]);
    const nested = parsePlan(
      tokenize(['url', ':1', 'chain', 'url', ':2', 'remote', 'hostc', 'tail', 'url', ':3']),
    );
    const chain = nested.init.find((s) => s.op === 'chain');
    assert.ok(chain?.op === 'chain');
    // the chain child's id follows from the top's, and the peer child's from the chain child's
    assert.deepEqual(peerChildren('own', 'top', nested), [
      ['hostc', derivedId(`own/${childId('top', chain.plan)}`)],
    ]);
  });
});

describe('takeover flags', () => {
  it('reads --takeover, --drain-timeout and --retry-failed, with their defaults', () => {
    const d = parseDaemonOptions([]);
    assert.deepEqual([d.takeover, d.drainTimeoutMs, d.retryFailedMs], [false, 10_000, 30_000]);
    const o = parseDaemonOptions(['--takeover', '--drain-timeout', '2.5', '--retry-failed', '5']);
    assert.deepEqual([o.takeover, o.drainTimeoutMs, o.retryFailedMs], [true, 2500, 5000]);
    assert.throws(
      () => parseDaemonOptions(['--drain-timeout', 'soon']),
      /--drain-timeout "soon" is not a number of seconds/,
    );
    assert.throws(() => parseDaemonOptions(['--takeover=yes']), /takes no value/);
  });
});

describe('hole 5: a takeover, and the temporary files of a write in flight', () => {
  it("removes a dead writer's temporary file, never a live one's (a daemon handing over)", () => {
    const { dir, store } = tmpStore();
    store.save(newRecord('a', 'local', []));
    const dead = spawnSync('true').pid; // (exited, reaped)
    const live = process.ppid; // (the test runner)
    fs.writeFileSync(path.join(dir, `a.json.${dead}.tmp`), 'partial');
    fs.writeFileSync(path.join(dir, `a.json.${live}.tmp`), 'being written');
    assert.deepEqual(
      store.load().records.map((r) => r.id),
      ['a'],
    );
    assert.ok(!fs.existsSync(path.join(dir, `a.json.${dead}.tmp`)), "the dead writer's file is removed");
    assert.equal(fs.readFileSync(path.join(dir, `a.json.${live}.tmp`), 'utf8'), 'being written');
  });
});

describe('hole 5: the gate of changes around a takeover', () => {
  it('refuses changes while shut, in one line, and waits for those in flight', async () => {
    const gate = new ChangeGate();
    let finish = (): void => undefined;
    const inFlight = gate.run(() => new Promise<string>((resolve) => (finish = () => resolve('done'))));
    const closed = gate.close(5000);
    await assert.rejects(
      gate.run(() => Promise.resolve('late')),
      {
        code: 'TAKEOVER_UNDER_WAY',
        message: 'a takeover is under way: try again in a moment',
      },
    );
    let settled = false;
    void closed.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'the gate waits for the change in flight');
    finish();
    assert.equal(await inFlight, 'done');
    assert.equal(await closed, true);
    gate.open();
    assert.equal(await gate.run(() => Promise.resolve('again')), 'again');
  });

  it('says when the changes in flight did not end in time', async () => {
    const gate = new ChangeGate();
    void gate.run(() => new Promise<void>(() => undefined));
    assert.equal(await gate.close(10), false);
  });
});
