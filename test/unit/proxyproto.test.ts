import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Origin, proxyHeader } from '../../src/proxy/proxyproto';

/** The bytes as HAProxy's doc/proxy-protocol.txt lays them out, in hex, written by hand. */
const SIG = '0d0a0d0a000d0a515549540a';

const v4: Origin = { src: { host: '192.168.0.1', port: 56324 }, dst: { host: '192.168.0.11', port: 443 } };
const v6: Origin = { src: { host: '2001:db8::1', port: 1234 }, dst: { host: '::1', port: 80 } };
const unix: Origin = { src: { path: '' }, dst: { path: '/run/app.sock' } };

// proxyHeader is the addon's builder (native/proxyproto.c), the one the engine writes with too
describe('proxyHeader v1', () => {
  const cases: [string, Origin | undefined, string][] = [
    ['TCP4', v4, 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'],
    ['TCP6', v6, 'PROXY TCP6 2001:db8::1 ::1 1234 80\r\n'],
    ['a unix client', unix, 'PROXY UNKNOWN\r\n'],
    ['no origin (a peer that did not say)', undefined, 'PROXY UNKNOWN\r\n'],
    [
      'mixed families',
      { src: { host: '10.0.0.1', port: 1 }, dst: { host: '::1', port: 2 } },
      'PROXY UNKNOWN\r\n',
    ],
  ];
  for (const [what, origin, want] of cases) {
    it(what, () => assert.equal(proxyHeader(1, origin).toString('latin1'), want));
  }
  it('stays within 107 bytes for the longest addresses', () => {
    const long: Origin = {
      src: { host: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
      dst: { host: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', port: 65535 },
    };
    assert.ok(proxyHeader(1, long).length <= 107);
  });
});

describe('proxyHeader v2', () => {
  it('TCP4: family 0x11, 12 bytes of addresses and ports', () => {
    assert.equal(
      proxyHeader(2, v4).toString('hex'),
      `${SIG}2111000c` + 'c0a80001' + 'c0a8000b' + 'dc04' + '01bb',
    );
  });
  it('TCP6: family 0x21, 36 bytes', () => {
    assert.equal(
      proxyHeader(2, v6).toString('hex'),
      `${SIG}21210024` +
        '20010db8000000000000000000000001' +
        '00000000000000000000000000000001' +
        '04d2' +
        '0050',
    );
  });
  it('UNIX: family 0x31, two 108-byte paths (216 bytes)', () => {
    const dst = Buffer.alloc(108);
    dst.write('/run/app.sock');
    const got = proxyHeader(2, unix);
    assert.equal(got.length, 16 + 216);
    assert.equal(got.subarray(0, 16).toString('hex'), `${SIG}213100d8`);
    assert.deepEqual(got.subarray(16, 124), Buffer.alloc(108));
    assert.deepEqual(got.subarray(124), dst);
  });
  it('an abstract name is written after a NUL byte, as the kernel has it', () => {
    const got = proxyHeader(2, { src: { path: '' }, dst: { path: '@name' } });
    assert.equal(got.subarray(124, 130).toString('hex'), '006e616d6500');
  });
  it('unknown: family 0x00 and no addresses', () => {
    assert.equal(proxyHeader(2, undefined).toString('hex'), `${SIG}21000000`);
  });
});

describe('proxyHeader v2 reads IPv6 addresses as the kernel has them', () => {
  // the source address's 16 bytes, for each way of writing one
  const cases: [string, string][] = [
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['fe80::1%eth0', 'fe800000000000000000000000000001'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['::1.2.3.4', '00000000000000000000000001020304'],
    ['2001:db8::8:800:200c:417a', '20010db80000000000080800200c417a'],
  ];
  for (const [text, hex] of cases)
    it(text, () => {
      const got = proxyHeader(2, { src: { host: text, port: 1 }, dst: { host: '::1', port: 2 } });
      assert.equal(got.subarray(16, 32).toString('hex'), hex);
    });
  it('a zone is left out of v1 too (the protocol has no place for one)', () => {
    const got = proxyHeader(1, { src: { host: 'fe80::1%eth0', port: 1 }, dst: { host: '::1', port: 2 } });
    assert.equal(got.toString('latin1'), 'PROXY TCP6 fe80::1 ::1 1 2\r\n');
  });
  it('a host that is no IP address makes an unknown header, not a wrong one', () => {
    const odd: Origin = { src: { host: 'localhost', port: 1 }, dst: { host: '127.0.0.1', port: 2 } };
    assert.equal(proxyHeader(1, odd).toString('latin1'), 'PROXY UNKNOWN\r\n');
    assert.equal(proxyHeader(2, odd).toString('hex'), `${SIG}21000000`);
  });
});
