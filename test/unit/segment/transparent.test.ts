/**
 * What `transparent` refuses at create, the segment's mark, and the client address a UDP
 * session binds (src/segment/transparent.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePlan, tokenize } from '../../../src/api/grammar';
import type { Endpoint } from '../../../src/segment/endpoint';
import {
  checkTransparentEnds,
  checkTransparentPlan,
  clientFor,
  transparentMark,
} from '../../../src/segment/transparent';

const head: Endpoint = { proto: 'tcp', ns: null, host: '0.0.0.0', port: 80 };
const tail = (host: string, proto: Endpoint['proto'] = 'tcp'): Endpoint => ({
  proto,
  ns: '/var/run/netns/t',
  nsLabel: 't',
  host,
  port: 8080,
});
const plan = (words: string) => parsePlan(tokenize(words.split(' ')));

describe('transparent', () => {
  it('gives each segment its own mark, the same after a restart, never a kernel table', () => {
    assert.equal(transparentMark('web'), transparentMark('web'));
    assert.notEqual(transparentMark('web'), transparentMark('db'));
    for (const id of ['web', 'db', 'a', '0f50c25c-5333-44b9-822c-f2370a7ede0c']) {
      const m = transparentMark(id);
      assert.ok(m >= 0x10000000 && m <= 0x1fffffff, `${id}: ${m.toString(16)}`);
    }
  });

  it('refuses loopback and any-address tails, suggesting proxy-protocol', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '0.0.0.0', '::', '::ffff:127.0.0.1'])
      assert.throws(() => checkTransparentEnds(head, tail(host)), /loopback tail.*proxy-protocol/, host);
    assert.doesNotThrow(() => checkTransparentEnds(head, tail('172.17.0.2')));
    assert.doesNotThrow(() => checkTransparentEnds(head, tail('fd00::2')));
  });

  it('refuses a unix tail or a unix head', () => {
    const unixTail: Endpoint = { proto: 'unix', ns: null, host: '', port: 0, path: '/run/a.sock' };
    assert.throws(() => checkTransparentEnds(head, unixTail), /tcp or udp tail, not unix.*proxy-protocol/);
    const unixHead: Endpoint = { proto: 'unix', ns: null, host: '', port: 0, path: '/run/h.sock' };
    assert.throws(() => checkTransparentEnds(unixHead, tail('172.17.0.2')), /tcp or udp head/);
  });

  it("refuses several tails, a peer's child, and a tcp head with the JavaScript mover (udp is its own relay)", () => {
    assert.throws(
      () =>
        checkTransparentPlan(plan('url :80 tail url 10.0.0.2:80 transparent also url 10.0.0.3:80'), {
          engine: true,
          remote: false,
        }),
      /one tail/,
    );
    assert.throws(
      () =>
        checkTransparentPlan(plan('url :80 tail transparent docker-label app=web'), {
          engine: true,
          remote: false,
        }),
      /one tail/,
    );
    assert.throws(
      () =>
        checkTransparentPlan(plan('url :80 tail url 10.0.0.2:80 transparent'), {
          engine: false,
          remote: false,
        }),
      /splice engine.*proxy-protocol/,
    );
    assert.throws(
      () =>
        checkTransparentPlan(plan('url :80 trigger transparent url 10.0.0.2:80'), {
          engine: false,
          remote: false,
        }),
      /splice engine/,
      'in the trigger too',
    );
    assert.doesNotThrow(() =>
      checkTransparentPlan(plan('url udp://:53 tail url udp://10.0.0.2:53 transparent'), {
        engine: false,
        remote: false,
      }),
    );
    assert.doesNotThrow(() =>
      checkTransparentPlan(plan('url :80 tail url 10.0.0.2:80'), { engine: false, remote: false }),
    );
    assert.throws(
      () =>
        checkTransparentPlan(plan('url :80 tail url 10.0.0.2:80 transparent'), {
          engine: true,
          remote: true,
        }),
      /a local tail.*proxy-protocol/,
      "a peer's child",
    );
    // a child's head takes its parent's protocol
    assert.doesNotThrow(() =>
      checkTransparentPlan(plan('tail url 10.0.0.2:53 transparent'), {
        base: 'udp',
        engine: false,
        remote: false,
      }),
    );
  });

  it("binds a UDP session to the client's address in the tail's family", () => {
    assert.equal(clientFor(tail('172.17.0.2'), '10.1.2.3'), '10.1.2.3');
    assert.equal(clientFor(tail('172.17.0.2'), '::ffff:10.1.2.3'), '10.1.2.3', 'a dual-stack head');
    assert.equal(clientFor(tail('fd00::2'), 'fd00::9'), 'fd00::9');
    assert.throws(() => clientFor(tail('172.17.0.2'), 'fd00::9'), /not of the tail's family/);
    assert.throws(() => clientFor(tail('fd00::2'), '10.1.2.3'), /not of the tail's family/);
  });
});
