import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ensureKeyFile, readKey } from '../../../src/common/key';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'whkey-'));
}

describe('keys', () => {
  it('ignores trailing whitespace: the same key with or without a newline', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, 'a'), 'abcdefghijklmnopqrstuvwxyz012345\n', { mode: 0o600 });
    fs.writeFileSync(path.join(d, 'b'), 'abcdefghijklmnopqrstuvwxyz012345', { mode: 0o600 });
    fs.writeFileSync(path.join(d, 'c'), 'abcdefghijklmnopqrstuvwxyz012346', { mode: 0o600 });
    assert.deepEqual(readKey(path.join(d, 'a')), readKey(path.join(d, 'b')));
    assert.notDeepEqual(readKey(path.join(d, 'a')), readKey(path.join(d, 'c')));
  });
  it('refuses a key others can read, a missing one, and a short one', () => {
    const d = tmp();
    const f = path.join(d, 'k');
    fs.writeFileSync(f, 'abcdefghijklmnopqrstuvwxyz012345', { mode: 0o644 });
    fs.chmodSync(f, 0o644);
    assert.throws(() => readKey(f), { code: 'KEY_EXPOSED' });
    assert.throws(() => readKey(path.join(d, 'none')), { code: 'KEY_MISSING' });
    fs.writeFileSync(path.join(d, 's'), 'short', { mode: 0o600 });
    assert.throws(() => readKey(path.join(d, 's')), { code: 'KEY_WEAK' });
  });
  it('makes a 32-character key, 0600 in a 0700 directory, and never overwrites one', () => {
    const d = tmp();
    const f = path.join(d, 'etc', 'wormhole', 'key.secret');
    assert.equal(ensureKeyFile(f), true);
    const text = fs.readFileSync(f, 'utf8').trim();
    assert.match(text, /^[0-9a-zA-Z]{32}$/);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(f)).mode & 0o777, 0o700);
    assert.equal(ensureKeyFile(f), false);
    assert.equal(fs.readFileSync(f, 'utf8').trim(), text);
  });
});
