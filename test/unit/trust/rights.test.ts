/**
 * A key's rights (src/trust/rights.ts) and a create's plan against them (src/trust/plan.ts):
 * ranges, `*`, namespaces, unix paths, image globs; every head, tail, `also`, trigger and
 * child of a plan; the methods a read-only key or a key without `peer` may call.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePlan, tokenize } from '../../../src/api/grammar';
import { WormholeError } from '../../../src/common/errors';
import { parseRunArgs } from '../../../src/docker/args';
import { parseOptions } from '../../../src/trust/keys';
import { checkPeer, checkPlan } from '../../../src/trust/plan';
import {
  ALL_RIGHTS,
  type KeyRights,
  globMatch,
  mayListen,
  mayOpen,
  mayRunImage,
  methodRefusal,
  parseAddrRule,
} from '../../../src/trust/rights';

function key(options: string, name = 'ci'): KeyRights {
  return { name, rights: parseOptions(options) };
}

const tcp = (host: string, port: number, ns: string | null = null) => ({ ns, host, port });

/** The FORBIDDEN line a create gets, or undefined when the key may. */
function refusal(k: KeyRights, words: string): string | undefined {
  try {
    checkPlan(k, parsePlan(tokenize(words.split(' '))), parseRunArgs);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof WormholeError, String(err));
    assert.equal(err.code, 'FORBIDDEN');
    return err.message;
  }
}

describe('address rules', () => {
  it('takes ports, ranges and * for the host or the port', () => {
    const k = key('permit-listen=127.0.0.1:8000-8999,permit-listen=*:9000');
    assert.ok(mayListen(k, tcp('127.0.0.1', 8000)));
    assert.ok(mayListen(k, tcp('127.0.0.1', 8999)));
    assert.ok(!mayListen(k, tcp('127.0.0.1', 9001)));
    assert.ok(!mayListen(k, tcp('127.0.0.1', 7999)));
    assert.ok(!mayListen(k, tcp('0.0.0.0', 8080)));
    assert.ok(mayListen(k, tcp('0.0.0.0', 9000)));
    assert.ok(mayListen(k, tcp('10.1.2.3', 9000)));
    // any port, and any free one (0) with it
    const any = key('permit-listen=127.0.0.1:*');
    assert.ok(mayListen(any, tcp('127.0.0.1', 0)));
    assert.ok(!mayListen(k, tcp('127.0.0.1', 0)), 'a range does not allow "any free port"');
    assert.ok(mayListen(key('permit-listen=*'), tcp('1.2.3.4', 5)));
  });

  it('keeps a rule without NS@ to the host namespace; NS@ and *@ for others', () => {
    const k = key('permit-open=127.0.0.1:80,permit-open=blue@127.0.0.1:81,permit-open=docker:*@*:3306');
    assert.ok(mayOpen(k, tcp('127.0.0.1', 80)));
    assert.ok(!mayOpen(k, tcp('127.0.0.1', 80, 'blue')));
    assert.ok(mayOpen(k, tcp('127.0.0.1', 81, 'blue')));
    assert.ok(!mayOpen(k, tcp('127.0.0.1', 81)));
    assert.ok(mayOpen(k, tcp('127.0.0.1', 3306, 'docker:db')));
    assert.ok(!mayOpen(k, tcp('127.0.0.1', 3306, 'blue')));
    assert.ok(mayOpen(key('permit-open=[::1]:80'), tcp('::1', 80)));
  });

  it('matches unix paths by glob, with .. resolved first', () => {
    const k = key('permit-open=unix:/run/app/*.sock');
    assert.ok(mayOpen(k, { ns: null, path: '/run/app/web.sock' }));
    assert.ok(!mayOpen(k, { ns: null, path: '/run/app/../docker.sock' }));
    assert.ok(!mayOpen(k, { ns: null, path: '/run/app/x/y.sock' }));
    assert.ok(!mayOpen(k, tcp('127.0.0.1', 80)));
  });

  it('matches images by glob, * not crossing a /', () => {
    const k = key('permit-image=local/*,permit-image=redis:7');
    assert.ok(mayRunImage(k, 'local/app'));
    assert.ok(mayRunImage(k, 'local/app:1.2'));
    assert.ok(!mayRunImage(k, 'local/a/b'));
    assert.ok(mayRunImage(k, 'redis:7'));
    assert.ok(!mayRunImage(k, 'redis'));
    assert.ok(!mayRunImage(k, 'docker.io/local/app'));
    assert.ok(globMatch('a?c', 'abc') && !globMatch('a.c', 'abc'), 'only * and ? are special');
  });

  it('leaves a kind with no option of its kind unrestricted', () => {
    const k = key('permit-image=local/*');
    assert.ok(mayListen(k, tcp('0.0.0.0', 80)));
    assert.ok(mayOpen(k, { ns: null, path: '/var/run/docker.sock' }));
  });

  it('refuses a rule it cannot read', () => {
    for (const bad of ['127.0.0.1', ':80', '127.0.0.1:9-1', '127.0.0.1:70000', '@1.2.3.4:5', 'unix:rel'])
      assert.throws(() => parseAddrRule(bad), Error, bad);
  });
});

describe('methods', () => {
  it('gives a read-only key what changes nothing', () => {
    const k = key('read-only', 'dash');
    for (const m of ['ping', 'list', 'peers', 'tunnel-list'] as const)
      assert.equal(methodRefusal(k, m), undefined);
    assert.equal(methodRefusal(k, 'create'), 'key "dash" is read-only: it may not create');
    assert.match(methodRefusal(k, 'delete') ?? '', /read-only/);
    assert.match(methodRefusal(k, 'tunnel-create') ?? '', /read-only/);
  });

  it('gives the peer methods to a key with peer only', () => {
    const k = key('permit-open=*:80');
    for (const m of ['channel', 'attach', 'peer-create', 'peer-tunnel'] as const)
      assert.match(methodRefusal(k, m) ?? '', /may not act as a peer/);
    assert.equal(methodRefusal(key('peer'), 'channel'), undefined);
    assert.equal(methodRefusal({ name: 'admin', rights: ALL_RIGHTS }, 'attach'), undefined);
  });
});

describe('a create against a key', () => {
  const ci = key('permit-listen=127.0.0.1:8000-8999,permit-open=127.0.0.1:5432,permit-image=local/*');

  it('checks the head, with the grammar default host', () => {
    assert.equal(refusal(ci, 'url :8080 tail url :5432'), undefined);
    assert.equal(
      refusal(ci, 'url 0.0.0.0:80 tail url :5432'),
      'key "ci" may not listen on 0.0.0.0:80 (permit-listen=127.0.0.1:8000-8999)',
    );
  });

  it('checks every tail: also, a trigger, a namespace, a unix path', () => {
    assert.match(
      refusal(ci, 'url :8080 tail url :22') ?? '',
      /may not open 127.0.0.1:22 \(permit-open=127.0.0.1:5432\)/,
    );
    assert.match(refusal(ci, 'url :8080 tail url :5432 also url 10.0.0.1:5432') ?? '', /10.0.0.1:5432/);
    assert.match(refusal(ci, 'url :8080 trigger url :5433') ?? '', /127.0.0.1:5433/);
    assert.match(refusal(ci, 'url :8080 tail url blue@:5432') ?? '', /may not open blue@127.0.0.1:5432/);
    assert.match(refusal(ci, 'url :8080 tail docker-ns web url :5432') ?? '', /docker:web@127.0.0.1:5432/);
    assert.match(
      refusal(ci, 'url :8080 tail url unix:///var/run/docker.sock') ?? '',
      /may not open unix:\/var\/run\/docker.sock/,
    );
    // the tail takes the head's port when it names none
    assert.match(refusal(ci, 'url :8081 tail url 127.0.0.1') ?? '', /127.0.0.1:8081/);
  });

  it('takes ready exec of a restricted key only in a container its plan starts', () => {
    const k = key('permit-open=docker:*@127.0.0.1:5432,permit-image=local/*');
    assert.equal(refusal(k, 'url :8080 trigger docker-run local/db url :5432 ready exec true'), undefined);
    assert.match(
      refusal(k, 'url :8080 tail docker-ns web url :5432 ready exec true') ?? '',
      /key "ci" may not run commands in a container it did not start/,
    );
    assert.equal(refusal(k, 'url :8080 tail docker-ns web url :5432 ready health'), undefined);
    assert.equal(
      refusal(
        { name: 'admin', rights: ALL_RIGHTS },
        'url :8080 tail docker-ns web url :5432 ready exec true',
      ),
      undefined,
    );
  });

  it("checks every docker-run image, a trigger's too, and the tail in its container", () => {
    const k = key('permit-open=docker:*@127.0.0.1:5432,permit-image=local/*');
    assert.equal(refusal(k, 'url :8080 trigger docker-run local/db url :5432'), undefined);
    assert.equal(
      refusal(k, 'url :8080 trigger docker-run postgres url :5432'),
      'key "ci" may not run the image postgres (permit-image=local/*)',
    );
    // the container's namespace is not the host's: a rule for the host's does not reach it
    assert.match(
      refusal(ci, 'url :8080 trigger docker-run --name db local/db url :5432') ?? '',
      /may not open docker:db@127.0.0.1:5432/,
    );
  });

  it("checks a child's head and tails, and the peer of a remote", () => {
    assert.match(
      refusal(ci, 'url :8080 tail url :5432 child tail url :22') ?? '',
      /may not listen on 127.0.0.1:5432/,
    );
    const wide = key('permit-open=127.0.0.1:*');
    assert.match(
      refusal(wide, 'url :8080 remote 10.0.0.2 tail url :80') ?? '',
      /may not open the peer 10.0.0.2:9999/,
    );
    assert.equal(refusal(wide, 'url :8080 remote 127.0.0.1:9998 tail url :80'), undefined);
    assert.throws(() => checkPeer(wide, '[fd00::2]:7000'), /may not open the peer \[fd00::2\]:7000/);
    checkPeer(wide, '127.0.0.1');
  });
});
