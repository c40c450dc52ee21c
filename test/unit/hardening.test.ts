import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { nestsDeeperThan } from '../../src/api/frame';
import { checkPeerHost } from '../../src/api/grammar';
import type { Logger } from '../../src/common/log';
import { RateLimitedLog } from '../../src/common/ratelog';
import { logLevel, parseDaemonOptions } from '../../src/daemon/options';
import { checkBinds, resolveAllowedDirs } from '../../src/docker/binds';

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

describe('RateLimitedLog', () => {
  it('logs the first of a burst at once and the rest as one line with a count', async () => {
    const lines: [Record<string, unknown>, string][] = [];
    const log = { warn: (f: Record<string, unknown>, m: string) => lines.push([f, m]) } as unknown as Logger;
    const r = new RateLimitedLog(log, 50);
    for (let i = 0; i < 100; i++) r.warn({ i }, 'connection dropped');
    r.warn({}, 'accept failed');
    assert.deepEqual(
      lines.map(([, m]) => m),
      ['connection dropped', 'accept failed'],
    );
    await new Promise((res) => setTimeout(res, 120));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[2], [{ i: 99, repeated: 99, seconds: 0.05 }, 'connection dropped']);
  });
});

describe('daemon limits and environment', () => {
  it('has defaults that hold 10,000 idle connections per segment', () => {
    const o = parseDaemonOptions([], {});
    assert.ok(o.maxConnections >= 10000);
    assert.equal(o.apiIdleMs, 30000);
    assert.deepEqual(o.allowBind, []);
  });
  it('reads the limit flags', () => {
    const o = parseDaemonOptions(
      [
        '--max-connections',
        '7',
        '--max-udp-sessions',
        '3',
        '--max-api-connections',
        '9',
        '--api-idle',
        '0.5',
      ],
      {},
    );
    assert.deepEqual([o.maxConnections, o.maxUdpSessions, o.maxApiConnections, o.apiIdleMs], [7, 3, 9, 500]);
  });
  it('checks WORMHOLE_LOG', () => {
    assert.equal(logLevel({ WORMHOLE_LOG: 'debug' }), 'debug');
    assert.throws(() => logLevel({ WORMHOLE_LOG: 'verbose' }), /not a log level: use trace, debug/);
  });
  it('reads :PORT as a peer on 127.0.0.1', () => {
    assert.equal(checkPeerHost(':6666', 'ping'), '127.0.0.1:6666');
    assert.throws(() => checkPeerHost(':99999', 'ping'), /expected a host name/);
  });
});
