/**
 * The CLI's shared word handling: which words ask for help or JSON (create's only before its
 * actions), a command's flags and the words it refuses, and id prefixes as docker reads them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Command, commandArgs, matchId, scanArgs } from '../../../src/cli/command';
import { WormholeError } from '../../../src/common/errors';

const run = async (): Promise<number> => 0;
const plain: Command = { name: 'plain', summary: '', usage: '', json: true, flags: ['--udp'], run };
const first: Command = { name: 'first', summary: '', usage: '', json: true, flagsFirst: true, run };
const quiet: Command = { name: 'quiet', summary: '', usage: '', json: false, run };

describe('scanArgs', () => {
  const cases: [Command, string[], { help: boolean; json: boolean }][] = [
    [plain, [], { help: false, json: false }],
    [plain, ['x', '--help'], { help: true, json: false }],
    [plain, ['-h'], { help: true, json: false }],
    [plain, ['x', '--json'], { help: false, json: true }],
    [plain, ['--', '--json', '-h'], { help: false, json: false }],
    [first, ['--json', '-h', 'url', ':80'], { help: true, json: true }],
    [first, ['url', ':80', 'docker-run', '-e', 'X', 'img', '-h', '--json'], { help: false, json: false }],
    [first, ['--help', 'url'], { help: true, json: false }],
    [quiet, ['--json'], { help: false, json: false }],
  ];
  for (const [c, args, expected] of cases)
    it(`${c.name} ${args.join(' ')}`, () => assert.deepEqual(scanArgs(c, args), expected));
});

describe('commandArgs', () => {
  const cases: [Command, string[], number, string[] | RegExp, string[]?][] = [
    [plain, ['--udp', 'host', '--json'], 1, ['host'], ['--udp', '--json']],
    [plain, ['host', 'more'], 1, /^unexpected "more"$/],
    [plain, ['--yaml'], 1, /^unexpected "--yaml"$/],
    [plain, ['--', '-x'], 1, ['-x'], []],
    [
      first,
      ['--json', 'url', ':80', 'docker-run', '-e', 'X', 'img'],
      Infinity,
      ['url', ':80', 'docker-run', '-e', 'X', 'img'],
    ],
    [first, ['-x', 'url'], Infinity, /^unexpected "-x"$/],
    [quiet, ['--json'], 1, /^unexpected "--json"$/],
    [quiet, ['-'], 1, ['-'], []],
  ];
  for (const [c, args, max, expected, flags] of cases)
    it(`${c.name} ${args.join(' ')}`, () => {
      if (expected instanceof RegExp) {
        assert.throws(
          () => commandArgs(c, args, max),
          (e: WormholeError) => e.code === 'USAGE' && expected.test(e.message),
        );
        return;
      }
      const got = commandArgs(c, args, max);
      assert.deepEqual(got.positional, expected);
      if (flags) assert.deepEqual([...got.flags].sort(), [...flags].sort());
    });
});

describe('matchId', () => {
  const ids = ['web-1', 'web-2', 'web', 'db', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
  const cases: [string, string | [string, RegExp]][] = [
    ['web', 'web'], // an exact id wins over the ids it begins
    ['web-1', 'web-1'],
    ['d', 'db'],
    ['web-', ['AMBIGUOUS_ID', /^"web-" matches 2 segments: web-1, web-2: give more of the id$/]],
    ['a', ['AMBIGUOUS_ID', /^"a" matches 6 segments: a1, a2, a3, a4, a5, \.\.\.: give more of the id$/]],
    ['zz', ['NOT_FOUND', /^no segment with id or prefix "zz": 'wormhole list' shows them$/]],
    ['WEB', ['NOT_FOUND', /"WEB"/]], // ids are compared as they are written
    ['', ['USAGE', /empty/]],
  ];
  for (const [text, expected] of cases)
    it(`"${text}"`, () => {
      if (typeof expected === 'string') {
        assert.equal(matchId(ids, text), expected);
        return;
      }
      const [code, message] = expected;
      assert.throws(
        () => matchId(ids, text),
        (e: WormholeError) => e.code === code && message.test(e.message),
      );
    });
});

it("create's help names every action of the grammar", async () => {
  const { create } = await import('../../../src/cli/commands/create');
  const { VERBS } = await import('../../../src/api/grammar');
  const missing = VERBS.filter((v) => !new RegExp(`^  ${v}\\b`, 'm').test(create.usage));
  assert.deepEqual(missing, []);
});
