import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Action, type Plan, parsePlan, tokenize } from '../../../src/api/grammar';

const ID = '4d3c2b1a0f9e';

function plan(words: string): Plan {
  return parsePlan(tokenize(words.split(' ')));
}

describe('tokenize', () => {
  it("gives docker-ns no argument when an action word follows (the seed's first example)", () => {
    assert.deepEqual(tokenize(['url', ':3306', 'docker-ns', 'tail', 'docker-ns', ID]), [
      { verb: 'url', args: [':3306'] },
      { verb: 'docker-ns', args: [] },
      { verb: 'tail', args: [] },
      { verb: 'docker-ns', args: [ID] },
    ]);
  });
  it('gives docker-ns no argument at the end', () => {
    assert.deepEqual(tokenize(['url', ':1', 'docker-ns']), [
      { verb: 'url', args: [':1'] },
      { verb: 'docker-ns', args: [] },
    ]);
  });
  it('takes docker-run as one quoted word or as several words up to the next action', () => {
    assert.deepEqual(tokenize(['docker-run', 'local/pong nc -ll -p 9001 -e cat']), [
      { verb: 'docker-run', args: ['local/pong nc -ll -p 9001 -e cat'] },
    ]);
    assert.deepEqual(tokenize(['docker-run', 'img', 'sleep', '9', 'url', ':1']), [
      { verb: 'docker-run', args: ['img', 'sleep', '9'] },
      { verb: 'url', args: [':1'] },
    ]);
  });
  const bad: [string[], RegExp][] = [
    [[], /at least one action/],
    [['proxy-protocol'], /proxy-protocol needs an argument/],
    [['bogus'], /"bogus" is not an action/],
    [['url'], /url needs an argument/],
    [['url', 'tail'], /url needs an argument/],
    [['id'], /id needs an argument/],
    [['remote'], /remote needs an argument/],
    [['docker-run'], /docker-run needs an image/],
    [['docker-run', 'tail'], /docker-run needs an image/],
    [['url', ':1', ':2'], /":2" is not an action/],
  ];
  for (const [words, msg] of bad) {
    it(`refuses "${words.join(' ')}"`, () => assert.throws(() => tokenize(words), msg));
  }
});

describe('parsePlan', () => {
  it('seed 1: url :3306 docker-ns tail docker-ns $mysql', () => {
    assert.deepEqual(plan(`url :3306 docker-ns tail docker-ns ${ID}`), {
      init: [
        { op: 'url', side: 'head', url: { port: 3306 } },
        { op: 'docker-ns', side: 'head', container: null },
        { op: 'docker-ns', side: 'tail', container: ID },
      ],
      trigger: null,
    });
  });

  it('seed 2: url :3306 docker-ns $app tail docker-ns $mysql', () => {
    const p = plan(`url :3306 docker-ns app1 tail docker-ns ${ID}`);
    assert.deepEqual(p.init[1], { op: 'docker-ns', side: 'head', container: 'app1' });
    assert.deepEqual(p.init[2], { op: 'docker-ns', side: 'tail', container: ID });
  });

  it('seed 3: a trigger whose child has its own trigger', () => {
    const p = plan(
      'url :80 trigger docker-run wormhole/wordpress child url :3306 trigger docker-run wormhole/mysql',
    );
    assert.deepEqual(p.init, [{ op: 'url', side: 'head', url: { port: 80 } }]);
    assert.deepEqual(p.trigger, [
      { op: 'docker-run', side: 'tail', args: ['wormhole/wordpress'] },
      {
        op: 'child',
        plan: {
          init: [{ op: 'url', side: 'head', url: { port: 3306 } }],
          trigger: [{ op: 'docker-run', side: 'tail', args: ['wormhole/mysql'] }],
        },
      },
    ]);
  });

  it('seed 4: remote keeps the actions that follow for the peer', () => {
    const p = plan(`url :3306 remote myserver tail url :3306 docker-ns ${ID}`);
    const step = p.init[1];
    assert.equal(step.op, 'remote');
    if (step.op !== 'remote') return;
    assert.equal(step.host, 'myserver');
    const rest: Action[] = [
      { verb: 'tail', args: [] },
      { verb: 'url', args: [':3306'] },
      { verb: 'docker-ns', args: [ID] },
    ];
    assert.deepEqual(step.actions, rest);
    assert.deepEqual(step.plan.init, [
      { op: 'url', side: 'tail', url: { port: 3306 } },
      { op: 'docker-ns', side: 'tail', container: ID },
    ]);
  });

  it('seeds 5-7: tunnel and udptunnel, under a trigger or not', () => {
    const five = plan(`url :3306 tunnel myserver trigger url :3306 docker-ns ${ID}`);
    assert.equal(five.init[1].op, 'tunnel');
    const six = plan('url :3306 trigger tunnel myserver trigger url :3306 docker-run wormhole/mysql');
    assert.equal(six.trigger?.[0].op, 'tunnel');
    const seven = plan(
      'url :80 trigger docker-run wp child url :3306 udptunnel myserver:9998 trigger url :3306',
    );
    const child = seven.trigger?.[1];
    assert.equal(child?.op, 'child');
    if (child?.op !== 'child') return;
    assert.equal(child.plan.init[1].op, 'udptunnel');
  });

  it('chain and id', () => {
    const p = plan('id front url :8080 chain id back url :9090 tail url :5000');
    assert.equal(p.id, 'front');
    const c = p.init[1];
    assert.equal(c.op, 'chain');
    if (c.op !== 'chain') return;
    assert.equal(c.plan.id, 'back');
    assert.deepEqual(c.plan.init, [
      { op: 'url', side: 'head', url: { port: 9090 } },
      { op: 'url', side: 'tail', url: { port: 5000 } },
    ]);
  });

  it('a child starts again in head mode', () => {
    const p = plan('url :1 tail url :2 child url :3');
    const c = p.init[2];
    if (c.op !== 'child') throw new Error('expected a child');
    assert.equal((c.plan.init[0] as { side: string }).side, 'head');
  });

  it('unix ends, and proxy-protocol in tail mode (the SPEC example)', () => {
    const p = plan(`url :3306 tail url unix:///run/mysqld/mysqld.sock docker-ns ${ID} proxy-protocol v2`);
    assert.deepEqual(p.init, [
      { op: 'url', side: 'head', url: { port: 3306 } },
      { op: 'url', side: 'tail', url: { proto: 'unix', path: '/run/mysqld/mysqld.sock' } },
      { op: 'docker-ns', side: 'tail', container: ID },
      { op: 'proxy-protocol', side: 'tail', version: 2 },
    ]);
    const head = plan('url unix:///run/app.sock?mode=0600 trigger proxy-protocol v1 url :80');
    assert.deepEqual(head.init, [
      { op: 'url', side: 'head', url: { proto: 'unix', path: '/run/app.sock', mode: 0o600 } },
    ]);
    assert.deepEqual(head.trigger, [
      { op: 'proxy-protocol', side: 'tail', version: 1 },
      { op: 'url', side: 'tail', url: { port: 80 } },
    ]);
    assert.throws(() => parsePlan([{ verb: 'proxy-protocol', args: [] }]), /was given 0 argument/);
  });

  it('transparent sets the tail, takes no argument, and may come in the trigger', () => {
    assert.deepEqual(plan('url :80 tail url 10.0.0.2:80 transparent').init, [
      { op: 'url', side: 'head', url: { port: 80 } },
      { op: 'url', side: 'tail', url: { host: '10.0.0.2', port: 80 } },
      { op: 'transparent' },
    ]);
    assert.deepEqual(plan('url :80 trigger transparent url :80').trigger, [
      { op: 'transparent' },
      { op: 'url', side: 'tail', url: { port: 80 } },
    ]);
    assert.throws(
      () => plan('url :80 transparent tail url :81'),
      /transparent sets the tail: put it after "tail"/,
    );
    assert.throws(
      () => parsePlan([{ verb: 'transparent', args: ['x'] }]),
      /transparent was given 1 argument/,
    );
  });

  it('checks the arguments of actions that come over the wire', () => {
    assert.throws(() => parsePlan([{ verb: 'url', args: [] }]), /url was given 0 argument/);
    assert.throws(() => parsePlan([{ verb: 'tail', args: ['x'] }]), /tail was given 1 argument/);
    assert.throws(() => parsePlan([{ verb: 'remote', args: ['a', 'b'] }]), /remote was given 2 argument/);
    assert.throws(() => parsePlan([{ verb: 'docker-run', args: [] }]), /docker-run was given 0 argument/);
    assert.throws(
      () => parsePlan([{ verb: 'docker-ns', args: ['a', 'b'] }]),
      /docker-ns was given 2 argument/,
    );
  });

  it('takes a range head to a tail range of its length, or to one port, or to its own ports', () => {
    for (const words of ['url :1-5 tail url :11-15', 'url :1-5 tail url :10', 'url blue@:1-5 tail url red@'])
      assert.doesNotThrow(() => plan(words), words);
  });

  const bad: [string, RegExp][] = [
    ['id a id b', /id is given twice/],
    ['id -x', /id "-x" is not valid/],
    [`id ${'x'.repeat(65)}`, /is not valid/],
    ['url :1 trigger url :2 trigger url :3', /trigger is given twice/],
    ['url :1 remote bad_host!', /remote "bad_host!"/],
    ['url :1 tunnel host:99999', /tunnel "host:99999"/],
    ['url ftp://:1', /protocol "ftp"/],
    ['url :1 docker-ns /etc', /not a container id or name/],
    ['url :1 docker-ns .hidden', /not a container id or name/],
    ['url :1 proxy-protocol v1', /proxy-protocol sets the tail: put it after "tail"/],
    ['url :1 tail proxy-protocol v3', /proxy-protocol "v3": expected v1 or v2/],
    ['url :1 tail url unix:///x.sock?mode=0600', /\?mode is for a head's socket file/],
    // port ranges: a tail range of the head range's length, one tail, no leg carrying one port
    ['url :1-5 tail url :11-20', /has 10 ports but the head :1-5 has 5/],
    ['url :1 tail url :11-20', /a tail range needs a head range/],
    ['url :1-5 trigger url :11-12', /has 2 ports but the head :1-5 has 5/],
    ['url :1-5 tail url :10 also url :11', /a port range takes one tail \(not "also"\)/],
    ['url :1-5 tail docker-label app=web', /a port range takes one tail/],
    ['url :1-5 tail url :10 transparent', /cannot have a transparent tail/],
    ['url :1-5 remote host url :1 tail url :2', /cannot have "remote"/],
    ['url :1 remote host url :1-5 tail url :2', /cannot be in a "remote" segment/],
    ['url :1 tail url :2 child url :3-4 tail url :5', /cannot be in a "child" segment/],
  ];
  for (const [words, msg] of bad) {
    it(`refuses "${words}"`, () => assert.throws(() => plan(words), msg));
  }
});

describe('ready and dial-timeout', () => {
  const actions = (...words: string[]): Plan => parsePlan(tokenize(words));

  it('takes each mode on the tail, exec with its command split as a shell would, without one', () => {
    assert.deepEqual(actions('url', ':1', 'trigger', 'docker-run', 'img', 'ready', 'health').ready, {
      mode: 'health',
    });
    assert.deepEqual(actions('url', ':1', 'tail', 'url', ':2', 'ready', 'banner').ready, { mode: 'banner' });
    const p = actions('url', ':1', 'tail', 'docker-ns', 'db', 'ready', 'exec', `sh -c 'test -f "/a b"; x'`);
    assert.deepEqual(p.ready, { mode: 'exec', argv: ['sh', '-c', 'test -f "/a b"; x'] });
    // (the words on the wire: the command is one argument, as given)
    assert.deepEqual(tokenize(['tail', 'ready', 'exec', 'a b', 'url', ':2'])[1], {
      verb: 'ready',
      args: ['exec', 'a b'],
    });
  });

  it('takes dial-timeout as a duration, once', () => {
    assert.equal(actions('url', ':1', 'dial-timeout', '90s', 'tail', 'url', ':2').dialTimeoutMs, 90_000);
    assert.throws(() => actions('dial-timeout', '1s', 'dial-timeout', '2s'), /dial-timeout is given twice/);
  });

  const bad: [string[], RegExp][] = [
    [['url', ':1', 'tail', 'url', ':2', 'ready', 'health'], /ready health asks the tail's container/],
    [['url', ':1', 'tail', 'url', ':2', 'ready', 'exec', 'true'], /ready exec asks the tail's container/],
    [['url', ':1', 'tail', 'docker-ns', 'db', 'ready', 'exec'], /ready exec needs a command/],
    [['url', ':1', 'tail', 'docker-ns', 'db', 'ready', 'exec', ' '], /ready exec needs a command/],
    [['url', ':1', 'tail', 'docker-ns', 'db', 'ready', 'exec', 'url', ':2'], /ready exec needs a command/],
    [
      ['url', ':1', 'tail', 'docker-ns', 'db', 'ready', 'soon'],
      /ready "soon": expected health, banner, exec/,
    ],
    [['url', ':1', 'tail', 'ready'], /ready needs a mode/],
    [['url', ':1', 'ready', 'banner', 'tail', 'url', ':2'], /ready sets the tail: put it after "tail"/],
    [['url', ':1', 'tail', 'url', ':2', 'ready', 'banner', 'ready', 'banner'], /ready is given twice/],
    [['url', 'udp://:1', 'tail', 'url', ':2', 'ready', 'banner'], /a UDP tail has none/],
    [['url', ':1', 'tail', 'url', ':2', 'also', 'url', ':3', 'ready', 'banner'], /ready waits for one tail/],
  ];
  for (const [words, msg] of bad) {
    it(`refuses "${words.join(' ')}"`, () => assert.throws(() => actions(...words), msg));
  }

  it('checks ready arguments that come over the wire', () => {
    assert.throws(() => parsePlan([{ verb: 'ready', args: ['exec'] }]), /ready was given 1 argument/);
    assert.throws(() => parsePlan([{ verb: 'ready', args: ['banner', 'x'] }]), /ready was given 2 argument/);
  });
});
