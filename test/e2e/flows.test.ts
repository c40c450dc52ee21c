/**
 * Seeing what flows: the counters of `list` checked exactly against known traffic (TCP and
 * UDP), dial failures and a tail's health, a failed trigger's error, the access log, and
 * Prometheus metrics scraped and parsed.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, describe, it } from 'node:test';
import type { SegmentInfo } from '../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { exchange, freePort, parseCreate, startService } from '../helpers/services';
import { until } from '../helpers/wait';

async function segment(d: TestDaemon, id: string): Promise<SegmentInfo> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  const s = (JSON.parse(r.stdout) as SegmentInfo[]).find((x) => x.id === id);
  assert.ok(s, `segment ${id} is listed`);
  return s;
}

/** GET a URL: status and body. */
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** Prometheus text: the value of a sample whose labels include every one given. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('counters, the access log and metrics', () => {
  const suite = suiteCleanup(after);

  it('counts TCP connections and bytes exactly, and logs each connection once', async (t) => {
    const echo = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', echo);
    const metricsPort = await freePort();
    const d = await startDaemon(suite, { args: ['--metrics', `tcp://127.0.0.1:${metricsPort}`] });
    const { port } = parseCreate(
      (await d.cli('create', 'id', 'web', 'url', ':0', 'tail', 'url', `:${echo}`)).stdout,
    );
    const before = Date.now();
    const sizes = [1, 1000, 70_000];
    for (const n of sizes) assert.equal((await exchange(port, 'x'.repeat(n))).length, n + 3);
    // a connection held open is counted as open
    const held = net.connect({ port, host: '127.0.0.1' });
    await new Promise((r) => held.once('connect', r));
    const s = await until(
      'the counters after four connections, one still open',
      () => segment(d, 'web'),
      (v) => v.traffic?.total === 4 && v.traffic.open === 1,
    );
    const up = sizes.reduce((a, b) => a + b, 0);
    assert.equal(s.traffic?.bytesUp, up);
    assert.equal(s.traffic?.bytesDown, up + 3 * 'bye'.length);
    assert.equal(s.traffic?.dialFailures, 0);
    assert.ok((s.traffic?.lastActive ?? 0) >= before - 1000, 'last activity is now');
    assert.deepEqual(s.tails, [{ url: `tcp://127.0.0.1:${echo}`, health: 'up' }]);
    assert.equal(s.trigger, undefined);

    // the access log: one info line per connection, with the client's address
    const lines = d
      .log()
      .split('\n')
      .filter((l) => l.includes('"msg":"connection"'))
      .map(
        (l) =>
          JSON.parse(l) as {
            level: number;
            segment: string;
            client: string;
            up: number;
            down: number;
            end: string;
          },
      );
    assert.equal(lines.length, 3, 'the three ended connections, not the open one');
    assert.deepEqual(
      lines.map((l) => [l.level, l.segment, l.up, l.end]),
      sizes.map((n) => [30, 'web', n, 'closed']),
    );
    assert.match(lines[0].client, /^127\.0\.0\.1:\d+$/);
    const localPort = held.localPort;
    held.destroy();
    const last = await until(
      'the held connection in the access log',
      async () => d.log(),
      (log) => log.includes(`"client":"127.0.0.1:${localPort}"`),
    );
    assert.ok(last.includes(`"client":"127.0.0.1:${localPort}"`));

    // the same figures through Prometheus
    const m = await get(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(m.status, 200);
    const labels = { segment: 'web', head: `tcp://127.0.0.1:${port}`, tail: `tcp://127.0.0.1:${echo}` };
    const total = await until(
      'the metrics after the held connection ended',
      async () => (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body,
      (body) => sample(body, 'wormhole_segment_connections_active', labels) === 0,
    );
    assert.equal(sample(total, 'wormhole_segment_connections_total', labels), 4);
    assert.equal(sample(total, 'wormhole_segment_bytes_total', { ...labels, direction: 'up' }), up);
    // (the held connection's FIN made the echo answer "bye" too, which the proxy carried)
    assert.equal(sample(total, 'wormhole_segment_bytes_total', { ...labels, direction: 'down' }), up + 12);
    assert.equal(sample(total, 'wormhole_segment_dial_failures_total', labels), 0);
    assert.match(total, /^process_cpu_seconds_total \d/m, "the daemon's own process metrics");
    assert.match(total, /# TYPE wormhole_segment_bytes_total counter/);
    assert.equal((await get(`http://127.0.0.1:${metricsPort}/`)).status, 404);
    assert.equal((await get(`http://127.0.0.1:${metricsPort}/metrics/../x`)).status, 404);

    // list: columns under a header
    const text = (await d.cli('list')).stdout.split('\n');
    assert.match(text[0], /^ID +HEAD +TAIL +STATE +OPEN +TOTAL +UP +DOWN +LAST +FAILS +NOTES$/);
    assert.match(
      text[1],
      new RegExp(
        `^web +tcp://127.0.0.1:${port} +tcp://127.0.0.1:${echo} +ready +0 +4 +69.3 KiB +69.3 KiB +\\d+s +0$`,
      ),
    );
  });

  it('counts UDP sessions and datagrams', async (t) => {
    const echo = await freePort();
    await startService(t, null, 'udp-echo', '127.0.0.1', echo);
    const d = await startDaemon(suite);
    const { port } = parseCreate(
      (await d.cli('create', 'id', 'dns', 'url', 'udp://:0', 'tail', 'url', `:${echo}`)).stdout,
    );
    // two clients (two sessions), three datagrams each, every one answered
    for (let c = 0; c < 2; c++) {
      const s = dgram.createSocket('udp4');
      for (let i = 0; i < 3; i++) {
        const answer = new Promise<Buffer>((r) => s.once('message', r));
        s.send(Buffer.alloc(100 + i), port, '127.0.0.1');
        assert.equal((await answer).length, 100 + i);
      }
      s.close();
    }
    const info = await segment(d, 'dns');
    assert.deepEqual(
      {
        open: info.traffic?.open,
        total: info.traffic?.total,
        datagramsUp: info.traffic?.datagramsUp,
        datagramsDown: info.traffic?.datagramsDown,
        bytesUp: info.traffic?.bytesUp,
        bytesDown: info.traffic?.bytesDown,
      },
      { open: 2, total: 2, datagramsUp: 6, datagramsDown: 6, bytesUp: 606, bytesDown: 606 },
    );
    assert.equal(info.connections, 2, 'connections counts UDP sessions too');
  });

  it("counts dial failures, says the tail is down, and keeps a failed trigger's error", async () => {
    const d = await startDaemon(suite, { args: ['--dial-timeout', '0.3', '--no-access-log'] });
    const dead = await freePort();
    const { port } = parseCreate(
      (await d.cli('create', 'id', 'gone', 'url', ':0', 'tail', 'url', `:${dead}`)).stdout,
    );
    assert.equal(await exchange(port, 'x').catch(() => ''), '', 'the client is dropped');
    const s = await until(
      'a dial failure counted',
      () => segment(d, 'gone'),
      (v) => (v.traffic?.dialFailures ?? 0) > 0 && v.traffic?.open === 0,
    );
    assert.equal(s.tails?.[0].health, 'down');
    assert.match(s.tails?.[0].lastError ?? '', /ECONNREFUSED|refused/);
    assert.match((await d.cli('list')).stdout, /tail down/);
    assert.ok(!d.log().includes('"msg":"connection"'), '--no-access-log: no connection line');

    const trig = parseCreate(
      (await d.cli('create', 'id', 'lazy', 'url', ':0', 'trigger', 'url', 'tcp://no-such-ns@:80')).stdout,
    );
    assert.equal((await segment(d, 'lazy')).trigger?.state, 'armed');
    await exchange(trig.port, 'x').catch(() => '');
    const f = await until(
      'the trigger failed',
      () => segment(d, 'lazy'),
      (v) => v.trigger?.state === 'failed',
    );
    assert.equal(f.trigger?.runs, 1);
    assert.equal(f.trigger?.failures, 1);
    assert.match(f.trigger?.lastError ?? '', /no-such-ns does not exist/);
    assert.equal(typeof f.trigger?.lastMs, 'number');
    assert.match((await d.cli('list')).stdout, /lazy .*trigger=failed in \S+ \(.*no-such-ns does not exist/);
  });
});
