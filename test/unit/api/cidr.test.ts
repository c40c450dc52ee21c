import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrMatcher, packCidrs, parseCidr } from '../../../src/api/cidr';
import { parsePlan, tokenize } from '../../../src/api/grammar';

describe('allow CIDR', () => {
  it('matches IPv4 networks, a bare address as /32, and an IPv4 client of a dual-stack head', () => {
    const ok = cidrMatcher(['10.1.0.0/16', '192.168.7.9', '172.16.0.0/12'].map(parseCidr));
    assert.ok(ok('10.1.200.3'));
    assert.ok(!ok('10.2.0.1'));
    assert.ok(ok('192.168.7.9'));
    assert.ok(!ok('192.168.7.10'), 'a bare address is that address only');
    assert.ok(ok('172.31.255.255') && !ok('172.32.0.0'), 'a prefix that is not a whole byte');
    assert.ok(ok('::ffff:10.1.2.3'), 'v4-mapped is matched as IPv4');
    assert.ok(!ok('fd00::1'), 'an IPv6 client is not in an IPv4 network');
  });

  it('matches IPv6 networks, written short or long, and a bare one as /128', () => {
    const ok = cidrMatcher(['fd00:1::/32', '::1', '2001:db8::10:0:0:1/127'].map(parseCidr));
    assert.ok(ok('fd00:1:ffff::5'));
    assert.ok(!ok('fd00:2::5'));
    assert.ok(ok('::1') && !ok('::2'));
    assert.ok(ok('2001:db8:0:0:10::1') && ok('2001:db8::10:0:0:0') && !ok('2001:db8::10:0:0:2'));
    assert.ok(!ok('10.0.0.1'));
    assert.ok(cidrMatcher([parseCidr('::ffff:1.2.3.0/120')])('::ffff:1.2.3.4') === false, 'mapped is IPv4');
    assert.ok(cidrMatcher([parseCidr('0.0.0.0/0')])('8.8.8.8'), '/0 is everything of its family');
  });

  it('packs what the engine reads: family, prefix, 16 address bytes each', () => {
    const packed = packCidrs([parseCidr('10.0.0.0/8'), parseCidr('fd00::/8')]);
    assert.equal(packed.length, 36);
    assert.deepEqual([...packed.subarray(0, 6)], [4, 8, 10, 0, 0, 0]);
    assert.deepEqual([...packed.subarray(18, 21)], [6, 8, 0xfd]);
  });

  for (const word of [
    '10.0.0.0/33',
    '10.0.0/8',
    'fd00::/129',
    'host.example',
    '10.0.0.1/',
    '10.0.0.1/-1',
    '::/x',
  ]) {
    it(`refuses "${word}" in one line`, () =>
      assert.throws(
        () => parseCidr(word),
        new RegExp(`allow "${word.replace(/[./]/g, '\\$&')}" is not an address or network`),
      ));
  }

  it('is repeatable on the head, and refused on the tail or on a unix head', () => {
    const plan = parsePlan(tokenize('url :80 allow 10.0.0.0/8 allow ::1 tail url :81'.split(' ')));
    assert.deepEqual(plan.allow, ['10.0.0.0/8', '::1']);
    assert.throws(
      () => parsePlan(tokenize('url :80 tail url :81 allow 10.0.0.1'.split(' '))),
      /allow sets the head/,
    );
    assert.throws(
      () => parsePlan(tokenize('url unix:///run/x.sock allow 10.0.0.1 tail url :81'.split(' '))),
      /allow is for a TCP or UDP head/,
    );
  });
});
