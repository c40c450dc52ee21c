import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ago, duration, size, table } from '../../../src/cli/format';

it('writes sizes in binary units, three figures at most', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [71001, '69.3 KiB'],
    [150 * 1024 * 1024, '150.0 MiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
    [1024 * 1024 - 1, '1.0 MiB'],
  ];
  for (const [n, text] of cases) assert.equal(size(n), text, String(n));
});

it('writes ages and durations in the shortest unit that says them', () => {
  const now = 1_000_000_000;
  assert.equal(ago(null, now), '-');
  assert.equal(ago(now - 4_000, now), '4s');
  assert.equal(ago(now - 125_000, now), '2m');
  assert.equal(ago(now - 7_300_000, now), '2h');
  assert.equal(ago(now - 3 * 86_400_000, now), '3d');
  assert.equal(ago(now + 5_000, now), '0s', 'a clock a little ahead is now');
  assert.deepEqual(
    [duration(850), duration(1200), duration(3000), duration(180_000)],
    ['850ms', '1.2s', '3s', '3m'],
  );
});

it('pads columns to their widest cell, leaving the last one unpadded', () => {
  assert.deepEqual(
    table(
      ['A', 'BB', 'C'],
      [
        ['xxx', 'y', ''],
        ['1', '22', 'note'],
      ],
    ),
    ['A    BB  C', 'xxx  y', '1    22  note'],
  );
});
