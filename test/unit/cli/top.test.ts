/**
 * `wormhole top`'s model and layout, without a daemon: rates from two samples (none from
 * one, none across a counter that went back), the order (most active first), sizes for
 * people, ids cut to unique prefixes, and frames that fit every width from 10 to 200 columns.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import {
  type Sample,
  formatBytes,
  formatRate,
  frame,
  layout,
  topRows,
  uniquePrefixLengths,
} from '../../../src/cli/commands/top';
import { printable } from '../../../src/cli/format';
import { ellipsis, ellipsisMiddle } from '../../../src/cli/terminal';

function segment(
  id: string,
  traffic?: Partial<NonNullable<SegmentInfo['traffic']>>,
  port = 8080,
): SegmentInfo {
  return {
    id,
    url: `tcp://127.0.0.1:${port}`,
    head: { proto: 'tcp', ns: null, host: '127.0.0.1', port },
    tail: { proto: 'tcp', ns: null, host: '10.0.0.2', port: 3306 },
    state: 'ready',
    parent: null,
    remote: false,
    connections: traffic?.open ?? 0,
    traffic: traffic && {
      open: 0,
      total: 0,
      refused: 0,
      bytesUp: 0,
      bytesDown: 0,
      dialFailures: 0,
      lastActive: null,
      ...traffic,
    },
    containers: [],
  };
}

const text = (lines: ReturnType<typeof frame>): string[] =>
  lines.map((l) => (typeof l === 'string' ? l : l.text));

describe('top: rates', () => {
  it('has none from one sample, and the differences per second from two', () => {
    const a: Sample = { at: 1000, segments: [segment('s', { total: 10, bytesUp: 1000, bytesDown: 0 })] };
    const b: Sample = {
      at: 3000,
      segments: [segment('s', { total: 14, bytesUp: 5000, bytesDown: 2048, open: 2 })],
    };
    const [first] = topRows(undefined, a);
    assert.equal(first.bytesUpPerSec, null);
    assert.equal(first.connectionsPerSec, null);
    assert.equal(first.total, 10);
    const [r] = topRows(a, b);
    assert.equal(r.bytesUpPerSec, 2000);
    assert.equal(r.bytesDownPerSec, 1024);
    assert.equal(r.connectionsPerSec, 2);
    assert.equal(r.open, 2);
  });

  it('has none for a counter that went back (a daemon that restarted), nor for a new segment', () => {
    const a: Sample = { at: 0, segments: [segment('s', { bytesUp: 5000 })] };
    const b: Sample = {
      at: 1000,
      segments: [segment('s', { bytesUp: 10 }), segment('new', { bytesUp: 99 })],
    };
    const rows = topRows(a, b);
    assert.deepEqual(
      rows.map((r) => [r.id, r.bytesUpPerSec]),
      [
        ['new', null],
        ['s', null],
      ],
    );
  });

  it('carries datagram rates for UDP segments only', () => {
    const a: Sample = {
      at: 0,
      segments: [segment('u', { datagramsUp: 1, datagramsDown: 1 }), segment('t', {})],
    };
    const b: Sample = {
      at: 500,
      segments: [segment('u', { datagramsUp: 11, datagramsDown: 6 }), segment('t', {})],
    };
    const [t, u] = topRows(a, b);
    assert.equal(t.datagramsUpPerSec, undefined);
    assert.equal(u.datagramsUpPerSec, 20);
    assert.equal(u.datagramsDownPerSec, 10);
  });

  it('sorts by byte rate, then open connections, then id', () => {
    const a: Sample = {
      at: 0,
      segments: ['a', 'b', 'c', 'd', 'e'].map((id) => segment(id, {})),
    };
    const b: Sample = {
      at: 1000,
      segments: [
        segment('a', {}),
        segment('b', { open: 3 }),
        segment('c', { bytesUp: 10 }),
        segment('d', { bytesDown: 500 }),
        segment('e', { open: 3 }),
      ],
    };
    assert.deepEqual(
      topRows(a, b).map((r) => r.id),
      ['d', 'c', 'b', 'e', 'a'],
    );
  });
});

describe('top: sizes for people', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1.2 * 1024 * 1024, '1.2 MiB'],
    [1024 * 1024 - 1, '1.0 MiB'],
    [340 * 1024 ** 3, '340.0 GiB'],
  ];
  for (const [n, s] of cases) it(`${n} is ${s}`, () => assert.equal(formatBytes(n), s));
  it('rates: per second, - when none', () => {
    assert.equal(formatRate(1.25 * 1024 * 1024), '1.3 MiB/s');
    assert.equal(formatRate(null), '-');
  });
});

describe('top: ids and text that fit', () => {
  it('gives each id its shortest unique prefix (an id that starts another: all of it)', () => {
    const m = uniquePrefixLengths(['web-1', 'web-2', 'db', 'api', 'api-2', 'x']);
    assert.deepEqual(Object.fromEntries(m), { 'web-1': 5, 'web-2': 5, db: 1, api: 3, 'api-2': 4, x: 1 });
  });

  it('cuts with an ellipsis, at the end or in the middle, and shows no control character', () => {
    assert.equal(ellipsis('abcdef', 4), 'abc…');
    assert.equal(ellipsis('abc', 4), 'abc');
    assert.equal(ellipsisMiddle('tcp://127.0.0.1:8080', 11), 'tcp:/…:8080');
    assert.equal(printable('a\x1b[2Jb\n'), 'a?[2Jb?');
  });
});

describe('top: frames fit the terminal', () => {
  const ids = [
    '3f2a9c1e-7b1d-4f00-8000-00000000000a',
    '3f2a0d44-0000-4000-8000-00000000000b',
    'db',
    'a-segment-with-a-rather-long-name',
  ];
  const before: Sample = { at: 0, segments: ids.map((id, i) => segment(id, {}, 10000 + i)) };
  const after: Sample = {
    at: 1000,
    segments: ids.map((id, i) =>
      segment(id, { open: i, total: 7 * i, bytesUp: 1234567 * i, bytesDown: 7654321 * i }, 10000 + i),
    ),
  };
  const rows = topRows(before, after);
  const now = new Date(2026, 0, 2, 3, 4, 5);
  const address = 'unix:///run/wormhole/a-rather-long-directory-name/api.sock';

  it('keeps everything whole where it is not a terminal', () => {
    const lines = text(frame({ address, now, rows }));
    assert.equal(lines[0], `wormhole top  ${address}  4 segments  03:04:05`);
    assert.match(lines[1], /^ID +STATE +OPEN +CONN\/S +UP\/S +DOWN\/S +CONNS +UP +DOWN +HEAD +TAIL$/);
    for (const id of ids)
      assert.ok(
        lines.some((l) => l.startsWith(`${id} `)),
        id,
      );
    assert.match(lines[3], /^db +ready +2 +14 +2\.4 MiB\/s +14\.6 MiB\/s /);
  });

  for (let columns = 10; columns <= 200; columns += 1) {
    it(`fits ${columns} columns, ids shown as unique prefixes`, () => {
      const lines = text(frame({ address, now, rows }, { columns, rows: 30 }));
      for (const l of lines) assert.ok(l.length <= columns, `${JSON.stringify(l)} is longer than ${columns}`);
      if (columns >= 8) assert.match(lines[0], /03:04:05/, 'the time stays');
      if (columns < 11) return; // not even the unique prefixes and OPEN
      const shown = lines.slice(2).map((l) => l.split(' ')[0]);
      assert.equal(shown.length, ids.length);
      for (const [i, p] of shown.entries()) {
        const matches = ids.filter((id) => id.startsWith(p));
        assert.deepEqual(matches, [rows[i].id], `${p} names ${rows[i].id} alone`);
      }
    });
  }

  it('gives way in order: the totals, then the URLs, the state, then the rates', () => {
    const keysAt = (columns: number): string[] => layout(rows, columns).keys;
    assert.deepEqual(keysAt(200), [
      'id',
      'state',
      'open',
      'connRate',
      'upRate',
      'downRate',
      'total',
      'up',
      'down',
      'head',
      'tail',
    ]);
    assert.deepEqual(keysAt(100), ['id', 'state', 'open', 'connRate', 'upRate', 'downRate', 'head', 'tail']);
    assert.deepEqual(keysAt(60), ['id', 'state', 'open', 'connRate', 'upRate', 'downRate']);
    assert.deepEqual(keysAt(40), ['id', 'open', 'upRate', 'downRate']);
    assert.deepEqual(keysAt(30), ['id', 'open', 'upRate']);
  });

  it('counts the segments that do not fit the height', () => {
    const lines = text(frame({ address, now, rows }, { columns: 80, rows: 5 }));
    assert.equal(lines.length, 5);
    assert.equal(lines[4], '… 2 more');
  });

  it('says when the daemon cannot be reached', () => {
    const lines = text(frame({ address, now, problem: 'cannot reach the daemon' }, { columns: 80, rows: 5 }));
    assert.deepEqual(lines.slice(1), ['', 'daemon not reachable, retrying', 'cannot reach the daemon']);
  });
});
