import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkBinds, resolveAllowedDirs, writableSources } from '../../../src/docker/binds';

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

describe('hole 4: --allow-bind escaped by a symlink swap (the checks)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-binds4-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const d of ['ok', 'ok/shared', 'ok/shared/a', 'ok/own', 'open', 'theirs'])
    fs.mkdirSync(path.join(root, d));
  const allowed = resolveAllowedDirs([path.join(root, 'ok')]);

  it("refuses a source inside another container's writable bind, and only that", () => {
    const writable = writableSources([
      { Type: 'bind', Source: `${root}/ok/shared`, RW: true },
      { Type: 'bind', Source: `${root}/ok/own`, RW: false }, // read-only: it cannot swap anything
      { Type: 'volume', Source: '/var/lib/docker/volumes/v/_data', RW: true },
    ]);
    assert.deepEqual(writable, [`${root}/ok/shared`]);
    for (const src of [`${root}/ok/shared`, `${root}/ok/shared/a`, `${root}/ok/shared/new`])
      assert.throws(
        () => checkBinds([`${src}:/x:ro`], allowed, writable),
        new RegExp(`lies inside ${root}/ok/shared, which another container mounts writable`),
        src,
      );
    checkBinds([`${root}/ok/own:/x`, `${root}/ok:/y:ro`, 'data:/z'], allowed, writable);
  });

  it('refuses an allowed directory that root does not own, or that others may write to, in one line', () => {
    fs.chmodSync(path.join(root, 'open'), 0o777);
    assert.throws(
      () => resolveAllowedDirs([path.join(root, 'open')]),
      /^WormholeError: --allow-bind .*\/open is writable by others \(mode 777\): they could link a mount to \/; chmod go-w it$/,
    );
    fs.chownSync(path.join(root, 'theirs'), 1000, 1000);
    assert.throws(
      () => resolveAllowedDirs([path.join(root, 'theirs')]),
      /--allow-bind .*\/theirs belongs to uid 1000, not root/,
    );
  });
});
