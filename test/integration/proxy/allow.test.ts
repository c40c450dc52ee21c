/**
 * `allow CIDR` (SPEC.md, "Smarter activation") through the real daemon and CLI: the head is in
 * one namespace, the clients in another on the same veth with two addresses, one allowed and
 * one not. TCP and UDP, with both movers; a refused client runs no trigger and keeps no
 * segment from idling.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { forEachMover, moverOpts } from '../../helpers/movers';
import { sh, suiteCleanup, withHostPair } from '../../helpers/netns';
import { freePort, startService } from '../../helpers/services';
import { eventually } from '../../helpers/wait';

/**
 * A client run in `ns` from source address `src`: TCP sends `data`, half-closes and reads to
 * the end; UDP sends one datagram and waits a second for the answer. What it got back, and
 * the error code it ended with (ECONNRESET: refused at once; TIMEOUT: no UDP answer).
 */
const CLIENT = `
const [proto, src, host, port, data] = process.argv.slice(1);
const done = (out, error) => { process.stdout.write(JSON.stringify({ out, error })); process.exit(0); };
if (proto === 'udp') {
  const s = require('node:dgram').createSocket('udp4');
  setTimeout(() => done('', 'TIMEOUT'), 1000);
  s.on('message', (m) => done(m.toString()));
  s.bind(0, src, () => s.send(data, Number(port), host));
} else {
  let out = '';
  const c = require('node:net').connect({ host, port: Number(port), localAddress: src, allowHalfOpen: true }, () => c.end(data));
  c.on('data', (d) => (out += d));
  c.on('end', () => done(out));
  c.on('error', (e) => done(out, e.code));
}`;
function from(
  ns: string,
  src: string,
  proto: 'tcp' | 'udp',
  host: string,
  port: number,
  data: string,
): Promise<{ out: string; error?: string }> {
  return new Promise((resolve, reject) => {
    const args = ['netns', 'exec', ns, process.execPath, '-e', CLIENT, proto, src, host, String(port), data];
    execFile('ip', args, (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout) as { out: string; error?: string }),
    );
  });
}

forEachMover('allow CIDR', (mover) => {
  let d: TestDaemon;
  let hosts: { a: string; b: string; ipA: string; ipB: string };
  /** b's second address: the one allowed. */
  let ipOk: string;
  let echo: number;
  const suite = suiteCleanup(after);

  before(async () => {
    d = await startDaemon(suite, moverOpts(mover));
    hosts = withHostPair(suite);
    ipOk = hosts.ipB.replace(/\.2$/, '.3');
    sh('ip', '-n', hosts.b, 'addr', 'add', `${ipOk}/24`, 'dev', `veth${hosts.b.slice(-6)}`);
    echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
    await startService(suite, null, 'udp-echo', '127.0.0.1', echo);
  });

  /** The segment as `list --json` shows it. */
  async function info(id: string): Promise<SegmentInfo> {
    const all = JSON.parse((await d.cli('list', '--json')).stdout) as SegmentInfo[];
    return all.find((s) => s.id === id)!;
  }

  it('serves TCP clients from an allowed address and resets the others, counting them refused', async () => {
    const seg = await d.create(
      'url',
      `tcp://${hosts.a}@${hosts.ipA}:7500`,
      'allow',
      `${ipOk}/32`,
      'tail',
      'url',
      `:${echo}`,
    );
    const ok = await from(hosts.b, ipOk, 'tcp', hosts.ipA, 7500, 'in');
    assert.equal(ok.out, 'inbye', 'the allowed address is served');
    const no = await from(hosts.b, hosts.ipB, 'tcp', hosts.ipA, 7500, 'out');
    assert.equal(no.out, '', 'nothing from the tail');
    assert.equal(no.error, 'ECONNRESET', 'refused at once: a reset');
    const s = await info(seg.id);
    assert.equal(s.traffic?.refused, 1, 'counted refused');
    assert.equal(s.traffic?.total, 1, 'only the allowed client counts as a connection');
  });

  it('takes a whole network, and a bare address as /32', async () => {
    const seg = await d.create(
      'url',
      `tcp://${hosts.a}@${hosts.ipA}:7501`,
      'allow',
      '10.0.0.0/8',
      'tail',
      'url',
      `:${echo}`,
    );
    assert.equal((await from(hosts.b, hosts.ipB, 'tcp', hosts.ipA, 7501, 'x')).out, 'xbye');
    await d.cli('delete', seg.id);
    await d.create(
      'url',
      `tcp://${hosts.a}@${hosts.ipA}:7502`,
      'allow',
      '192.168.0.0/16',
      'allow',
      ipOk,
      'tail',
      'url',
      `:${echo}`,
    );
    assert.equal((await from(hosts.b, ipOk, 'tcp', hosts.ipA, 7502, 'y')).out, 'ybye', 'any of several');
    assert.equal((await from(hosts.b, hosts.ipB, 'tcp', hosts.ipA, 7502, 'z')).out, '');
  });

  it('drops UDP datagrams from elsewhere before a session opens', async () => {
    const seg = await d.create(
      'url',
      `udp://${hosts.a}@${hosts.ipA}:7503`,
      'allow',
      ipOk,
      'tail',
      'url',
      `udp://:${echo}`,
    );
    const no = await from(hosts.b, hosts.ipB, 'udp', hosts.ipA, 7503, 'out');
    assert.equal(no.error, 'TIMEOUT', 'no answer from elsewhere');
    const ok = await from(hosts.b, ipOk, 'udp', hosts.ipA, 7503, 'in');
    assert.equal(ok.out, 'in', 'the allowed address is answered');
    const s = await info(seg.id);
    assert.equal(s.traffic?.refused, 1, 'the datagram from elsewhere is counted refused');
    assert.equal(s.traffic?.total, 1, 'one session: the allowed client');
  });

  it('runs no trigger for a refused client, and refused clients keep nothing from idling', async () => {
    const seg = await d.create(
      'url',
      `tcp://${hosts.a}@${hosts.ipA}:7504`,
      'allow',
      ipOk,
      'idle',
      '2s',
      'trigger',
      'url',
      `:${echo}`,
    );
    assert.equal((await from(hosts.b, hosts.ipB, 'tcp', hosts.ipA, 7504, 'out')).out, '');
    let s = await info(seg.id);
    assert.equal(s.trigger?.runs, 0, 'the refused client ran no trigger');
    assert.equal(s.trigger?.state, 'armed');
    assert.equal((await from(hosts.b, ipOk, 'tcp', hosts.ipA, 7504, 'in')).out, 'inbye');
    assert.equal((await info(seg.id)).trigger?.runs, 1, 'the allowed one ran it');
    // clients from elsewhere all along: the segment idles all the same
    s = await eventually(`segment ${seg.id} idle`, async () => {
      await from(hosts.b, hosts.ipB, 'tcp', hosts.ipA, 7504, 'knock');
      const now = await info(seg.id);
      return now.state === 'idle' ? now : undefined;
    });
    assert.equal(s.trigger?.runs, 1, 'still one run');
    assert.ok((s.traffic?.refused ?? 0) >= 2);
  });

  // (refused by the grammar, before any mover is asked: once is enough)
  if (mover === 'engine')
    it('refuses a bad allow at create in one line, making nothing', async () => {
      const bad: [string[], RegExp][] = [
        [
          ['url', ':7505', 'allow', '10.0.0.0/33', 'tail', 'url', ':1'],
          /allow "10.0.0.0\/33" is not an address or network/,
        ],
        [['url', ':7505', 'allow', 'example.com', 'tail', 'url', ':1'], /allow "example.com" is not/],
        [['url', ':7505', 'tail', 'url', ':1', 'allow', '10.0.0.1'], /allow sets the head/],
        [
          ['url', 'unix:///tmp/wh-allow.sock', 'allow', '10.0.0.1', 'tail', 'url', ':1'],
          /allow is for a TCP or UDP head/,
        ],
      ];
      const before = (await d.cli('list', '--json')).stdout;
      for (const [words, msg] of bad) {
        const r = await d.cli('create', ...words);
        assert.equal(r.code, 2, words.join(' '));
        assert.match(r.stderr, msg);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      }
      assert.equal((await d.cli('list', '--json')).stdout, before, 'nothing made');
    });
});
