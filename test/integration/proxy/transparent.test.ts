/**
 * `transparent` across real namespaces (issue 21): the daemon in a namespace of its own
 * (the "host"), two client namespaces and a tail namespace joined to it by veth pairs. The
 * tail prints the peer it sees: the client's own address and port, TCP and UDP, from two
 * clients; the routes the segment makes in the tail's namespace go with a delete, and a
 * daemon killed and started again leaves them once, not twice; bad input is refused.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { type Cleanup, sh, suiteCleanup, withNetns } from '../../helpers/netns';
import { startService } from '../../helpers/services';

/** A veth pair between namespaces a and b, a at 10.N.M.1 and b at 10.N.M.2; b's address. */
function join(t: Cleanup, a: string, b: string, net: string): { ipA: string; ipB: string } {
  const [va, vb] = [`v${randomBytes(4).toString('hex')}`, `v${randomBytes(4).toString('hex')}`];
  sh('ip', 'link', 'add', va, 'netns', a, 'type', 'veth', 'peer', 'name', vb, 'netns', b);
  t.after(() => {
    try {
      sh('ip', '-n', a, 'link', 'del', va);
    } catch {
      // gone with its namespace
    }
  });
  const [ipA, ipB] = [`${net}.1`, `${net}.2`];
  sh('ip', '-n', a, 'addr', 'add', `${ipA}/24`, 'dev', va);
  sh('ip', '-n', b, 'addr', 'add', `${ipB}/24`, 'dev', vb);
  sh('ip', '-n', a, 'link', 'set', va, 'up');
  sh('ip', '-n', b, 'link', 'set', vb, 'up');
  return { ipA, ipB };
}

/** socat from inside `ns` to host:port from source port `from`: what came back. */
function socatIn(
  ns: string,
  proto: 'TCP' | 'UDP',
  host: string,
  port: number,
  from: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'socat',
        '-t',
        '1',
        '-T',
        '3',
        '-',
        `${proto}:${host}:${port},sourceport=${from}`,
      ],
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
    p.stdin?.end(proto === 'UDP' ? 'who' : '');
  });
}

/**
 * ip and iptables run without the test's LD_PRELOAD: under test/asan.sh, iproute2's own
 * `route show table all` trips AddressSanitizer (an overlapping strncpy of its own).
 */
function tool(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', env: { ...process.env, LD_PRELOAD: '' } });
}

/** What the segments' routes leave in a namespace: fwmark rules, local default routes, mangle rules. */
function routesIn(ns: string): { rules: string[]; routes: string[]; mangle: string[] } {
  const lines = (text: string, re: RegExp): string[] => text.split('\n').filter((l) => re.test(l));
  return {
    rules: lines(tool('ip', '-n', ns, 'rule', 'show'), /fwmark/),
    routes: lines(tool('ip', '-n', ns, 'route', 'show', 'table', 'all'), /^local default dev lo table \d+/),
    mangle: lines(
      tool('ip', 'netns', 'exec', ns, 'iptables', '-w', '-t', 'mangle', '-S'),
      /wormhole transparent/,
    ),
  };
}

const NONE = { rules: [], routes: [], mangle: [] };

describe('transparent: the tail sees the client', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let host: string;
  let tailNs: string;
  let tailIp: string;
  const clients: { ns: string; ip: string; via: string }[] = [];
  const n = 100 + (randomBytes(1)[0] % 100);

  before(async () => {
    host = withNetns(suite, 'whh');
    tailNs = withNetns(suite, 'wht');
    const toTail = join(suite, host, tailNs, `10.${n}.3`);
    tailIp = toTail.ipB;
    // as a container's: the tail's replies need a route before wormhole's rules take them back
    sh('ip', '-n', tailNs, 'route', 'add', 'default', 'via', toTail.ipA);
    for (const i of [1, 2]) {
      const ns = withNetns(suite, 'whc');
      const { ipA, ipB } = join(suite, host, ns, `10.${n}.${i}`);
      clients.push({ ns, ip: ipB, via: ipA });
    }
    await startService(suite, tailNs, 'tcp-peer', tailIp, 7000);
    await startService(suite, tailNs, 'udp-peer', tailIp, 7001);
    d = await startDaemon(suite, { netns: host });
  });

  /** A transparent segment of `daemon` from headPort on every address to the tail's port (tcp or udp). */
  function transparentSegment(daemon: TestDaemon, proto: 'tcp' | 'udp', headPort: number, tailPort: number) {
    const tail = `${proto}://${tailNs}@${tailIp}:${tailPort}`;
    return daemon.create('url', `${proto}://0.0.0.0:${headPort}`, 'tail', 'url', tail, 'transparent');
  }

  /** Delete a segment: nothing of its routes is left in the tail's namespace. */
  async function deleteLeavingNothing(id: string): Promise<void> {
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(routesIn(tailNs), NONE, 'nothing left after delete');
  }

  /** `create WORDS transparent` is refused in one line matching `why`, and nothing is made. */
  async function refusedInOneLine(daemon: TestDaemon, words: string[], why: RegExp): Promise<void> {
    const r = await daemon.cli('create', ...words, 'transparent');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal((await daemon.cli('list')).stdout.trim(), '', 'no segment');
    assert.deepEqual(routesIn(tailNs), NONE);
  }

  /** How many rules, routes and mangle rules the tail's namespace has of transparent segments. */
  function counts(): number[] {
    const r = routesIn(tailNs);
    return [r.rules.length, r.routes.length, r.mangle.length];
  }

  it('TCP: two clients from two addresses, each seen with its own address and port', async () => {
    const seg = await transparentSegment(d, 'tcp', 8000, 7000);
    const [a, b] = clients;
    assert.equal(await socatIn(a.ns, 'TCP', a.via, 8000, 41001), `${a.ip}:41001`);
    assert.equal(await socatIn(b.ns, 'TCP', b.via, 8000, 41002), `${b.ip}:41002`);
    assert.equal(await socatIn(a.ns, 'TCP', a.via, 8000, 41003), `${a.ip}:41003`);
    const list = await d.cli('list');
    assert.match(list.stdout, new RegExp(`^${seg.id} .* transparent`, 'm'), 'list shows the mode');
    assert.deepEqual(counts(), [1, 1, 2], 'one rule, one route, two mangle rules');
    await deleteLeavingNothing(seg.id);
  });

  it('UDP: two clients from two addresses, each seen with its own address and port', async () => {
    const seg = await transparentSegment(d, 'udp', 8001, 7001);
    const [a, b] = clients;
    assert.equal(await socatIn(a.ns, 'UDP', a.via, 8001, 42001), `${a.ip}:42001`);
    assert.equal(await socatIn(b.ns, 'UDP', b.via, 8001, 42002), `${b.ip}:42002`);
    await deleteLeavingNothing(seg.id);
  });

  it('a plain segment beside it still sees the daemon, not the client', async () => {
    const seg = await d.create('url', 'tcp://0.0.0.0:8002', 'tail', 'url', `tcp://${tailNs}@${tailIp}:7000`);
    const seen = await socatIn(clients[0].ns, 'TCP', clients[0].via, 8002, 41004);
    assert.notEqual(seen, `${clients[0].ip}:41004`);
    assert.match(seen, new RegExp(`^${tailIp}:`), 'dialed from the tail namespace itself');
    assert.equal((await d.cli('delete', seg.id)).code, 0);
  });

  it('a daemon killed and started again leaves its routes once, and delete removes them', async () => {
    const seg = await transparentSegment(d, 'tcp', 8003, 7000);
    await d.stop('SIGKILL');
    assert.deepEqual(counts(), [1, 1, 2], 'a crash leaves them (nobody removed them)');
    d = await startDaemon(suite, { netns: host, dir: d.dir });
    assert.deepEqual(counts(), [1, 1, 2], 'built again: the old ones found and replaced, not doubled');
    const [a] = clients;
    assert.equal(await socatIn(a.ns, 'TCP', a.via, 8003, 41005), `${a.ip}:41005`);
    await deleteLeavingNothing(seg.id);
  });

  for (const [what, tail, why] of [
    ['a loopback tail', `tcp://${'NS'}@127.0.0.1:7000`, /loopback.*proxy-protocol/],
    ['a unix tail', 'unix:///run/wormhole-test-none.sock', /unix.*proxy-protocol/],
    ['a host tail given no address (127.0.0.1)', ':7000', /loopback.*proxy-protocol/],
  ] as const) {
    it(`refuses ${what} in one line, making nothing`, async () => {
      await refusedInOneLine(
        d,
        ['url', 'tcp://0.0.0.0:8004', 'tail', 'url', tail.replace('NS', tailNs)],
        why,
      );
    });
  }

  it('the JavaScript mover relays UDP transparently, and refuses a tcp tail in one line', async (t) => {
    const js = await startDaemon(t, { netns: host, port: 9998, env: { WORMHOLE_ENGINE: 'off' } });
    const tail = `tcp://${tailNs}@${tailIp}:7000`;
    const words = ['url', 'tcp://0.0.0.0:8006', 'tail', 'url', tail];
    await refusedInOneLine(js, words, /transparent needs the splice engine.*proxy-protocol/);
    await transparentSegment(js, 'udp', 8007, 7001);
    const [a] = clients;
    assert.equal(await socatIn(a.ns, 'UDP', a.via, 8007, 42003), `${a.ip}:42003`);
    await js.stop();
    assert.deepEqual(routesIn(tailNs), NONE, 'a daemon that stops removes them');
  });

  it('refuses transparent on the head side', async () => {
    const r = await d.cli('create', 'url', ':8005', 'transparent', 'tail', 'url', ':7000');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /transparent sets the tail/);
  });
});
