import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDaemonAddress } from '../../src/common/address';
import { parseFlags } from '../../src/common/flags';
import { parseDaemonOptions } from '../../src/daemon/options';

describe('parseFlags', () => {
  const specs = [
    { names: ['-H', '--host'], value: true, repeat: true },
    { names: ['-K'], value: true },
    { names: ['--json'], value: false },
  ];
  it('reads values, = forms, repeats and positionals', () => {
    const p = parseFlags(['-H', 'a', '--host=b', '-K', 'k', 'x', '--json', 'y'], specs);
    assert.deepEqual(p.values.get('-H'), ['a', 'b']);
    assert.deepEqual(p.values.get('-K'), ['k']);
    assert.deepEqual(p.values.get('--json'), ['true']);
    assert.deepEqual(p.positional, ['x', 'y']);
  });
  it('stops at the first positional word when asked (create actions stay untouched)', () => {
    const p = parseFlags(['-H', 'a', 'create', 'docker-run', '-e', 'X=1'], specs, true);
    assert.deepEqual(p.positional, ['create', 'docker-run', '-e', 'X=1']);
  });
  it('refuses unknown flags, missing values, repeats and values on booleans', () => {
    assert.throws(() => parseFlags(['--nope'], specs), /unknown flag --nope/);
    assert.throws(() => parseFlags(['-K'], specs), /-K needs a value/);
    assert.throws(() => parseFlags(['-K', 'a', '-K', 'b'], specs), /-K is given twice/);
    assert.throws(() => parseFlags(['--json=1'], specs), /takes no value/);
  });
});

describe('parseDaemonAddress', () => {
  const good: [string, unknown][] = [
    ['tcp://127.0.0.1:9999', { kind: 'tcp', host: '127.0.0.1', port: 9999 }],
    ['unix:///run/w.sock', { kind: 'unix', path: '/run/w.sock' }],
    ['myserver', { kind: 'tcp', host: 'myserver', port: 9999 }],
    ['myserver:1234', { kind: 'tcp', host: 'myserver', port: 1234 }],
    ['[::1]:9000', { kind: 'tcp', host: '::1', port: 9000 }],
    [':7000', { kind: 'tcp', host: '127.0.0.1', port: 7000 }],
  ];
  for (const [text, want] of good)
    it(`reads ${text}`, () => assert.deepEqual(parseDaemonAddress(text), want));
  const bad: [string, RegExp][] = [
    ['unix://relative', /absolute path/],
    ['http://x:1', /use tcp:\/\/HOST:PORT or unix/],
    ['host:port', /port "port" is not a number/],
    ['host:0', /1-65535/],
    ['host:70000', /1-65535/],
  ];
  for (const [text, msg] of bad)
    it(`refuses ${text}`, () => assert.throws(() => parseDaemonAddress(text), msg));
});

describe('parseDaemonOptions', () => {
  it('has the documented defaults', () => {
    const o = parseDaemonOptions([]);
    assert.deepEqual(o.listen, [{ kind: 'tcp', host: '0.0.0.0', port: 9999 }]);
    assert.equal(o.keyFile, '/etc/wormhole/key.secret');
    assert.equal(o.stateDir, '/var/lib/wormhole');
    assert.equal(o.overlayCidr, '100.65.0.0/14');
    assert.deepEqual(o.udpPorts, [4500, 4599]);
    assert.equal(o.dialTimeoutMs, 5000);
    assert.equal(o.udpIdleMs, 60000);
  });
  it('takes every flag', () => {
    const o = parseDaemonOptions([
      '-H',
      'unix:///tmp/a.sock',
      '-H',
      'tcp://127.0.0.1:1',
      '-K',
      '/k',
      '--state-dir',
      '/s',
      '-I',
      '10.0.0.1',
      '-C',
      '10.99.0.0/16',
      '-P',
      '5000-5010',
      '--tunnel-engine',
      'ipsec',
      '--dial-timeout',
      '0.5',
    ]);
    assert.equal(o.listen.length, 2);
    assert.equal(o.externalIp, '10.0.0.1', '-E defaults to -I');
    assert.deepEqual(o.udpPorts, [5000, 5010]);
    assert.equal(o.tunnelDriver, 'ipsec');
    assert.equal(o.dialTimeoutMs, 500);
  });
  const bad: [string[], RegExp][] = [
    [['-I', 'nope'], /-I "nope" is not an IP address/],
    [['-C', '100.65.0.0'], /not an IPv4 range/],
    [['-C', '100.65.0.0/31'], /not an IPv4 range/],
    [['-P', '4600-4500'], /not a port range/],
    [['--tunnel-engine', 'gre'], /use wireguard or ipsec/],
    [['--dial-timeout', '-1'], /not a number of seconds/],
    [['extra'], /unexpected argument "extra"/],
  ];
  for (const [argv, msg] of bad)
    it(`refuses ${argv.join(' ')}`, () => assert.throws(() => parseDaemonOptions(argv), msg));
});
