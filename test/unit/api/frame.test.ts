import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nestsDeeperThan } from '../../../src/api/frame';

describe('nestsDeeperThan', () => {
  const cases: [string, number, boolean][] = [
    ['{"a":[1,{"b":[]}]}', 4, false],
    ['{"a":[1,{"b":[]}]}', 3, true],
    ['"[[[[[[" ', 1, false],
    ['{"s":"\\"[[[["}', 1, false],
    [`${'['.repeat(40)}${']'.repeat(40)}`, 32, true],
  ];
  for (const [text, max, deeper] of cases)
    it(`${text.slice(0, 24)} deeper than ${max}: ${deeper}`, () =>
      assert.equal(nestsDeeperThan(Buffer.from(text), max), deeper));
});
