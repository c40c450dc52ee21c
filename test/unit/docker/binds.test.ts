import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkBinds, resolveAllowedDirs } from '../../../src/docker/binds';

describe('checkBinds', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-binds-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'ok'));
  fs.symlinkSync('/etc', path.join(root, 'ok', 'out'));
  fs.symlinkSync(path.join(root, 'ok'), path.join(root, 'in'));
  const allowed = resolveAllowedDirs([path.join(root, 'ok')]);

  it('allows named volumes always, and host paths under --allow-bind (symlinks followed)', () => {
    checkBinds(['data:/data', 'v1:/x:ro'], []);
    checkBinds([`${root}/ok:/a`, `${root}/ok/new/sub:/b:rw`, `${root}/in/x:/c`], allowed);
  });
  const refused: [string, string[], RegExp][] = [
    ['/:/host', [], /not mounted unless wormholed runs with --allow-bind DIR/],
    [`${root}/ok:/a`, [], /--allow-bind/],
    ['/etc:/e', allowed, /outside the --allow-bind directories/],
    [`${root}/ok/out:/e`, allowed, /\(\/etc\) is outside/],
    [`${root}/ok/out/shadow:/e`, allowed, /\(\/etc\/shadow\) is outside/],
    [`${root}/ok/../x:/e`, allowed, /without \. or \.\./],
    [`${root}/okay:/e`, allowed, /outside/],
  ];
  for (const [bind, dirs, msg] of refused)
    it(`refuses ${bind}${dirs.length ? '' : ' with no --allow-bind'}`, () =>
      assert.throws(() => checkBinds([bind], dirs), msg));
  it('wants existing directories for --allow-bind', () => {
    assert.throws(
      () => resolveAllowedDirs(['/no/such']),
      /--allow-bind \/no\/such cannot be used \(ENOENT\)/,
    );
    assert.throws(() => resolveAllowedDirs(['/etc/passwd']), /is not a directory/);
  });
});
