/**
 * Two test hosts (network namespaces joined by a veth pair), each with its own daemon:
 * remote segments over the daemons' encrypted channel.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { startCapture } from '../../helpers/capture';
import { suiteCleanup, withHostPair } from '../../helpers/netns';
import { exchangeIn, parseCreate, startService } from '../../helpers/services';

/** One datagram from inside a namespace (socat, a fresh source port each time), and the answer. */
function udpExchangeIn(netns: string, target: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      'ip',
      ['netns', 'exec', netns, 'socat', '-t', '2', '-', `UDP:${target}`],
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
    p.stdin?.end(data);
  });
}

describe('remote segments between two hosts', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;

  before(async () => {
    hosts = withHostPair(suite);
    const key = randomBytes(20).toString('hex');
    a = await startDaemon(suite, { netns: hosts.a, key });
    b = await startDaemon(suite, { netns: hosts.b, key });
  });

  it('carries a remote leg through the daemons, never in clear text, and deletes the remote child', async (t) => {
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 5432);
    const c = await a.cli('create', 'url', ':6543', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    // the child lives on b, listening on b's loopback at the parent's tail port
    const onB = JSON.parse((await b.cli('list', '--json')).stdout) as {
      id: string;
      remote: boolean;
      head: { host: string; port: number };
    }[];
    assert.equal(onB.length, 1);
    assert.equal(onB[0].remote, true);
    assert.deepEqual([onB[0].head.host, onB[0].head.port], ['127.0.0.1', 6543]);

    const marker = `MARKER-${randomBytes(8).toString('hex')}`;
    const cap = await startCapture(t, hosts.a, hosts.vethA);
    assert.equal(await exchangeIn(hosts.a, 6543, marker), `${marker}bye`);
    const bytes = await cap.stop();
    assert.ok(bytes.length > 200, `the capture saw the traffic (${bytes.length} bytes)`);
    assert.ok(!bytes.includes(Buffer.from(marker)), 'the marker never crossed the link in clear text');

    // The same marker over a plain connection on the link is visible: the check can fail.
    await startService(t, hosts.b, 'tcp-echo', hosts.ipB, 5433);
    const plain = await startCapture(t, hosts.a, hosts.vethA);
    await new Promise<void>((resolve, reject) => {
      const p = execFile(
        'ip',
        ['netns', 'exec', hosts.a, 'socat', '-t', '3', '-', `TCP:${hosts.ipB}:5433`],
        (err) => (err ? reject(err) : resolve()),
      );
      p.stdin?.end(marker);
    });
    assert.ok(
      (await plain.stop()).includes(Buffer.from(marker)),
      'a clear-text marker is seen by the capture',
    );

    assert.equal((await a.cli('delete', id)).code, 0);
    assert.equal((await b.cli('list')).stdout, '', 'the remote child is gone');
  });

  it('carries UDP over remote: a session per client address, ended when idle, never in clear text', async (t) => {
    // a daemon pair of its own, with sessions that go idle after a second
    const key = randomBytes(20).toString('hex');
    const quick = { key, port: 9997, args: ['--udp-idle', '1'] };
    const qa = await startDaemon(t, { netns: hosts.a, ...quick });
    const qb = await startDaemon(t, { netns: hosts.b, ...quick });
    await startService(t, hosts.b, 'udp-echo', '127.0.0.1', 5440);
    const c = await qa.cli(
      'create',
      'url',
      'udp://:6640',
      'remote',
      `${hosts.ipB}:9997`,
      'tail',
      'url',
      'udp://:5440',
    );
    assert.equal(c.code, 0, c.stderr);

    const marker = `UDPMARK-${randomBytes(8).toString('hex')}`;
    const cap = await startCapture(t, hosts.a, hosts.vethA);
    assert.equal(await udpExchangeIn(hosts.a, '127.0.0.1:6640', `${marker}-1`), `${marker}-1`);
    assert.equal(await udpExchangeIn(hosts.a, '127.0.0.1:6640', `${marker}-2`), `${marker}-2`);
    const bytes = await cap.stop();
    assert.ok(bytes.length > 200, `the capture saw the traffic (${bytes.length} bytes)`);
    assert.ok(!bytes.includes(Buffer.from(marker)), 'no datagram crossed the link in clear text');

    type Seg = {
      remote: boolean;
      traffic: { open: number; total: number; datagramsUp: number; datagramsDown: number };
    };
    const traffic = async (d: TestDaemon): Promise<Seg['traffic']> =>
      (JSON.parse((await d.cli('list', '--json')).stdout) as Seg[])[0].traffic;
    // two client addresses (socat's two source ports): two sessions on each side
    const [here, there] = [await traffic(qa), await traffic(qb)];
    assert.deepEqual([here.total, here.datagramsUp, here.datagramsDown], [2, 2, 2]);
    assert.deepEqual([there.total, there.datagramsUp, there.datagramsDown], [2, 2, 2]);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await traffic(qa)).open, 0, 'the sessions ended after --udp-idle');
    assert.equal((await traffic(qb)).open, 0, 'and so did their streams on the peer');

    // the same marker in a plain datagram on the link is seen: the check can fail
    await startService(t, hosts.b, 'udp-echo', hosts.ipB, 5441);
    const plain = await startCapture(t, hosts.a, hosts.vethA);
    assert.equal(await udpExchangeIn(hosts.a, `${hosts.ipB}:5441`, marker), marker);
    assert.ok(
      (await plain.stop()).includes(Buffer.from(marker)),
      'a clear-text marker is seen by the capture',
    );
  });

  it('survives a reset on the remote leg: the client sees the connection end, both daemons go on', async (t) => {
    await startService(t, hosts.b, 'tcp-reset', '127.0.0.1', 5434);
    const c = await a.cli('create', 'url', ':6544', 'remote', hosts.ipB, 'tail', 'url', ':5434');
    assert.equal(c.code, 0, c.stderr);
    const got = await exchangeIn(hosts.a, 6544, 'boom').catch((e: Error) => e);
    assert.ok(got === '' || got instanceof Error, 'no answer, the connection ended');
    assert.equal((await b.cli('ping')).code, 0, 'the peer daemon is alive');
    assert.equal((await a.cli('ping', hosts.ipB)).code, 0);
    assert.equal((await a.cli('delete', parseCreate(c.stdout).id)).code, 0);
  });

  it('a remote child outlives restarts of either daemon, and a crash of the parent, as one child', async (t) => {
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 5435);
    const c = await a.cli('create', 'url', ':6545', 'remote', hosts.ipB, 'tail', 'url', ':5435');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const children = async (): Promise<string[]> =>
      (JSON.parse((await b.cli('list', '--json')).stdout) as { id: string }[]).map((s) => s.id);
    const [child] = await children();
    assert.equal(await exchangeIn(hosts.a, 6545, 'one'), 'onebye');

    // the parent's daemon stops and starts: the child is made again, with the same id
    assert.equal((await a.stop()).code, 0);
    a = await startDaemon(suite, { netns: hosts.a, dir: a.dir });
    assert.deepEqual(await children(), [child]);
    assert.equal(await exchangeIn(hosts.a, 6545, 'two'), 'twobye');

    // killed: the peer is asked again for the child it has, and keeps one
    await a.stop('SIGKILL');
    a = await startDaemon(suite, { netns: hosts.a, dir: a.dir });
    assert.deepEqual(await children(), [child], 'one child, not two');
    assert.equal(await exchangeIn(hosts.a, 6545, 'three'), 'threebye');

    // the child's daemon stops and starts: it builds the child again under the same id
    assert.equal((await b.stop()).code, 0);
    b = await startDaemon(suite, { netns: hosts.b, dir: b.dir });
    assert.deepEqual(await children(), [child]);
    assert.equal(await exchangeIn(hosts.a, 6545, 'four'), 'fourbye');

    assert.equal((await a.cli('delete', id)).code, 0);
    assert.deepEqual(await children(), []);
  });

  it('says clearly when the peer is down, and leaves nothing behind', async () => {
    const r = await a.cli('create', 'url', ':6600', 'remote', '10.77.255.254:1', 'tail', 'url', ':1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /peer 10\.77\.255\.254:1 is not reachable/);
    assert.equal((await a.cli('list')).stdout, '');
  });

  it('says clearly when the peer has another key', async (t) => {
    await startDaemon(t, { netns: hosts.b, port: 9998 });
    const r = await a.cli('create', 'url', ':6601', 'remote', `${hosts.ipB}:9998`, 'tail', 'url', ':1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused us: its key differs/);
    assert.equal((await a.cli('list')).stdout, '');
    const p = await a.cli('ping', `${hosts.ipB}:9998`);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /key differs/);
  });
});
