/**
 * The error codes: one list (src/api/codes.ts), the README's list the same, the addon's own
 * codes in it, and no errno name among them (those ride in WormholeError.errno).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ERROR_CODES, WormholeError, errnoCode } from '../../src/common/errors';
import { ROOT } from '../helpers/daemon';

/** The codes of the README's "Error codes" list, in its order. */
function readmeCodes(): string[] {
  const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = text.indexOf('**Error codes.**');
  assert.ok(start >= 0, 'the README has an Error codes paragraph');
  const list = text.slice(start).split('\n\n')[1];
  return list.split('\n').map((line) => {
    const m = /^- `([A-Z][A-Z0-9_]*)`: \S.*; \S/.exec(line);
    assert.ok(m, `a line "- \`CODE\`: what it means; what to do": ${line}`);
    return m[1];
  });
}

describe('error codes', () => {
  it('are listed in the README, each once, as in src/api/codes.ts', () => {
    const readme = readmeCodes();
    assert.deepEqual(readme, [...ERROR_CODES]);
    assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'no code twice');
  });

  it('are in alphabetical order, so that a reader finds one', () => {
    assert.deepEqual([...ERROR_CODES], [...ERROR_CODES].sort());
  });

  it('hold every code the addon sets on an Error of its own', () => {
    const dir = path.join(ROOT, 'native');
    const found = new Set<string>();
    for (const file of fs.readdirSync(dir).filter((f) => /\.[ch]$/.test(f))) {
      const text = fs.readFileSync(path.join(dir, file), 'utf8');
      for (const m of text.matchAll(/\bcode = "([A-Z][A-Z0-9_]*)"/g)) found.add(m[1]);
    }
    assert.ok(found.size >= 3, `the addon's codes were found: ${[...found].join(' ')}`);
    const known: readonly string[] = ERROR_CODES;
    assert.deepEqual(
      [...found].filter((c) => !known.includes(c)),
      [],
    );
  });

  it('are not errno names: a system error keeps its own in errno', () => {
    const errnos = Object.keys(os.constants.errno);
    assert.ok(errnos.includes('ENOENT'));
    assert.deepEqual(
      ERROR_CODES.filter((c) => errnos.includes(c)),
      [],
    );
    const refused = new WormholeError('SYSTEM_ERROR', 'connect to /run/x.sock: refused', {
      errno: 'ECONNREFUSED',
    });
    assert.equal(errnoCode(refused), 'ECONNREFUSED');
    assert.deepEqual(refused.toJSON(), { code: 'SYSTEM_ERROR', message: 'connect to /run/x.sock: refused' });
    assert.equal(errnoCode(new WormholeError('NS_NOT_FOUND', 'gone')), undefined, 'a code is not an errno');
    assert.equal(errnoCode(Object.assign(new Error('x'), { code: 'EAGAIN' })), 'EAGAIN');
  });
});
