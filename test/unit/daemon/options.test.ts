import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPeerHost } from '../../../src/api/grammar';
import { logLevel, parseDaemonOptions } from '../../../src/daemon/options';

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
  it('reads --pipe-budget in MiB (64 by default), refusing what is not a whole number in one line', () => {
    assert.equal(parseDaemonOptions([], {}).pipeBudget, 64 * 1024 * 1024);
    assert.equal(parseDaemonOptions(['--pipe-budget', '4'], {}).pipeBudget, 4 * 1024 * 1024);
    assert.throws(
      () => parseDaemonOptions(['--pipe-budget', '1.5'], {}),
      /^UsageError: --pipe-budget "1.5" is not a whole number from 0 to 1000000$/,
    );
  });
  it("reads --keys (none: -K's key alone)", () => {
    assert.equal(parseDaemonOptions([], {}).keysFile, undefined);
    assert.equal(parseDaemonOptions(['--keys', '/etc/wormhole/keys'], {}).keysFile, '/etc/wormhole/keys');
  });
  it('reads --ui (off by default): a TCP address with its port, or a unix socket', () => {
    assert.equal(parseDaemonOptions([], {}).ui, undefined);
    assert.deepEqual(parseDaemonOptions(['--ui', 'tcp://127.0.0.1:9180'], {}).ui, {
      kind: 'tcp',
      host: '127.0.0.1',
      port: 9180,
    });
    assert.deepEqual(parseDaemonOptions(['--ui', 'unix:///run/wh-ui.sock'], {}).ui, {
      kind: 'unix',
      path: '/run/wh-ui.sock',
    });
    assert.throws(
      () => parseDaemonOptions(['--ui', 'tcp://127.0.0.1'], {}),
      /^UsageError: --ui "tcp:\/\/127.0.0.1" has no port/,
    );
    assert.throws(
      () => parseDaemonOptions(['--ui', 'unix://run/x'], {}),
      /^UsageError: --ui "unix:\/\/run\/x": a unix address needs an absolute path/,
    );
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
