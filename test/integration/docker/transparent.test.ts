/**
 * `transparent` into a real container (issue 21): the tail, a server in the container's
 * namespace printing the peer it sees, gets the client's own address and port, TCP and UDP,
 * with the tail named by the container alone (no host: its own address); what the segment
 * set up in the container's namespace goes with the segment.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, type TestDaemon, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, containerPid, run } from '../../helpers/docker';
import { type Cleanup, sh, suiteCleanup } from '../../helpers/netns';
import { freePort } from '../../helpers/services';

/** The fixture server (test/fixtures/server.js) run in a container's network namespace. */
function serveIn(t: Cleanup, pid: number, mode: 'tcp-peer' | 'udp-peer', port: number): Promise<void> {
  const server = path.join(ROOT, 'test/fixtures/server.js');
  const child = spawn(
    'nsenter',
    [`--net=/proc/${pid}/ns/net`, '--', process.execPath, server, mode, '0.0.0.0', String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${mode} exited with ${code}`)));
  });
}

/** What the tail answers a TCP client connecting from `from` (an address of this host). */
function tcpFrom(from: string, port: number): Promise<{ seen: string; local: string }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: from, port, localAddress: from });
    let seen = '';
    c.on('data', (d: Buffer) => (seen += d.toString()));
    c.on('end', () => resolve({ seen, local: `${c.localAddress}:${c.localPort}` }));
    c.on('error', reject);
  });
}

/** What an echo tail sends back of `data`, from a TCP client on `from` (an address of this host). */
function echoFrom(from: string, port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: from, port, localAddress: from, allowHalfOpen: true }, () => c.end(data));
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('end', () => resolve(got));
    c.on('error', reject);
  });
}

/** What the tail answers a datagram sent from `from` (an address of this host). */
function udpFrom(from: string, port: number): Promise<{ seen: string; local: string }> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, 5000);
    s.bind(0, from, () => {
      s.once('message', (m) => {
        clearTimeout(timer);
        const a = s.address();
        s.close();
        resolve({ seen: m.toString(), local: `${a.address}:${a.port}` });
      });
      s.send('who', port, from);
    });
  });
}

describe('transparent into a container', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let container: string;
  let client: string;

  before(async () => {
    container = (await run('docker', ['run', '-d', ECHO_IMAGE])).trim();
    suite.after(() => run('docker', ['rm', '-f', container]).catch(() => undefined));
    const pid = await containerPid(container);
    await serveIn(suite, pid, 'tcp-peer', 7000);
    await serveIn(suite, pid, 'udp-peer', 7001);
    // the client: the host's own address on its default route's interface (not docker0's:
    // Docker masquerades what leaves with it), which the container routes to the host
    const [route] = JSON.parse(sh('ip', '-j', '-4', 'route', 'show', 'default')) as { dev: string }[];
    const [link] = JSON.parse(sh('ip', '-j', '-4', 'addr', 'show', 'dev', route.dev)) as {
      addr_info: { local: string }[];
    }[];
    client = link.addr_info[0].local;
    d = await startDaemon(suite);
  });

  it("the tail sees the client's own address and port, TCP and UDP, and the routes go with the segment", async () => {
    const [tp, up] = [await freePort(), await freePort()];
    const tcp = await d.create(
      'url',
      `tcp://0.0.0.0:${tp}`,
      'tail',
      'docker-ns',
      container,
      'transparent',
      'url',
      ':7000',
    );
    const udp = await d.create(
      'url',
      `udp://0.0.0.0:${up}`,
      'tail',
      'docker-ns',
      container,
      'transparent',
      'url',
      'udp://:7001',
    );
    for (let i = 0; i < 2; i++) {
      const t = await tcpFrom(client, tp);
      assert.equal(t.seen, t.local, 'TCP: the client itself');
    }
    const u = await udpFrom(client, up);
    assert.equal(u.seen, u.local, 'UDP: the client itself');
    const pid = await containerPid(container);
    const rules = (): string[] =>
      sh('nsenter', `--net=/proc/${pid}/ns/net`, 'ip', 'rule', 'show')
        .split('\n')
        .filter((l) => /fwmark/.test(l));
    assert.equal(rules().length, 2, 'one rule for each segment');
    assert.match((await d.cli('list')).stdout, new RegExp(`^${tcp.id} .*transparent`, 'm'));
    assert.equal((await d.cli('delete', tcp.id)).code, 0);
    assert.equal((await d.cli('delete', udp.id)).code, 0);
    assert.deepEqual(rules(), [], 'no rule left');
    const mangle = sh('nsenter', `--net=/proc/${pid}/ns/net`, 'iptables', '-w', '-t', 'mangle', '-S');
    assert.doesNotMatch(mangle, /wormhole transparent/);
  });

  it("a trigger's container is dialed at its own address once it runs, its routes made then and gone with it", async () => {
    const port = await freePort();
    const seg = await d.create(
      'url',
      `tcp://0.0.0.0:${port}`,
      'trigger',
      'docker-run',
      ECHO_IMAGE,
      'transparent',
      'url',
      ':9001',
    );
    assert.equal(await echoFrom(client, port, 'through'), 'through');
    const [info] = (
      JSON.parse((await d.cli('list', '--json')).stdout) as {
        id: string;
        transparent?: boolean;
        tail: { host: string };
        containers: string[];
      }[]
    ).filter((s) => s.id === seg.id);
    assert.equal(info.transparent, true);
    assert.doesNotMatch(info.tail.host, /^127\./, "the container's own address, not loopback");
    const pid = await containerPid(info.containers[0]);
    const rules = sh('nsenter', `--net=/proc/${pid}/ns/net`, 'ip', 'rule', 'show');
    assert.match(rules, /fwmark/);
    assert.equal((await d.cli('delete', seg.id)).code, 0);
  });
});
