/**
 * The web view's server with a made-up daemon behind it: what it refuses (405, 403, 401,
 * 429), the token traded for a cookie, the files and their headers, and the event stream
 * (a topology first, then the numbers). The same refusals against a real daemon are in
 * test/e2e/ui.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { createLogger } from '../../../src/common/log';
import { STREAMS_PER_TOKEN, UiServer } from '../../../src/ui/server';
import { uiToken } from '../../../src/ui/token';
import { freePort } from '../../helpers/services';

const admin = uiToken(Buffer.alloc(32, 1));
const viewer = uiToken(Buffer.alloc(32, 2));

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request, read to its end. */
function request(
  port: number,
  o: { path?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', headers: o.headers },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** An event stream: its status, its first event once one came (the socket is kept open), and its end. */
function openStream(
  port: number,
  cookie: string,
): Promise<{ status: number; first: string; close(): void; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', headers: { cookie } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve({
          status: res.statusCode ?? 0,
          first: '',
          close: () => req.destroy(),
          ended: Promise.resolve(),
        });
        return;
      }
      let buf = '';
      const ended = new Promise<void>((done) => res.on('end', done));
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n\n')) resolve({ status: 200, first: buf, close: () => req.destroy(), ended });
      });
    });
    req.on('error', reject);
  });
}

describe('the web view server', () => {
  let server: UiServer;
  let port: number;
  let cookie: string;
  let tokens = [admin, viewer];
  const segments: SegmentInfo[] = [
    {
      id: 'web',
      url: 'tcp://127.0.0.1:8080',
      head: { proto: 'tcp', ns: null, host: '127.0.0.1', port: 8080 },
      tail: { proto: 'tcp', ns: 'blue', host: '127.0.0.1', port: 5000 },
      state: 'ready',
      parent: null,
      remote: false,
      connections: 0,
      containers: [],
    },
  ];

  before(async () => {
    port = await freePort();
    server = new UiServer(
      { segments: () => segments, tunnels: async () => [], tokens: () => tokens, hostLabel: 'here' },
      createLogger('test', 'silent'),
    );
    await server.listen({ kind: 'tcp', host: '127.0.0.1', port });
    cookie = `wormhole-ui-${port}=${viewer}`;
  });
  after(() => server.close());

  it('refuses anything but GET and HEAD, a foreign Host, and a missing or wrong token', async () => {
    const post = await request(port, { method: 'POST', headers: { cookie } });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const rebound = await request(port, { headers: { host: `evil.example:${port}`, cookie } });
    assert.equal(rebound.status, 403);
    assert.equal((await request(port, { headers: { host: `localhost:${port}`, cookie } })).status, 200);
    const none = await request(port);
    assert.equal(none.status, 401);
    assert.match(none.body, /wormhole ui/);
    assert.equal((await request(port, { path: `/?token=${'0'.repeat(64)}` })).status, 401);
    assert.equal(
      (await request(port, { headers: { cookie: `wormhole-ui-${port}=${'0'.repeat(64)}` } })).status,
      401,
    );
    assert.equal((await request(port, { path: '/events' })).status, 401);
  });

  it('trades the token for an HttpOnly cookie and sends the browser to an address without it', async () => {
    const r = await request(port, { path: `/?token=${admin}` });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const set = String(r.headers['set-cookie']);
    assert.match(set, new RegExp(`^wormhole-ui-${port}=${admin};`));
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
  });

  it("serves the page's files with a strict CSP, nosniff and no referrer, and nothing else", async () => {
    for (const [p, type] of [
      ['/', 'text/html'],
      ['/app.js', 'text/javascript'],
      ['/graph.js', 'text/javascript'],
      ['/style.css', 'text/css'],
      ['/elk-api.js', 'text/javascript'],
      ['/elk-worker.js', 'text/javascript'],
    ]) {
      const r = await request(port, { path: p, headers: { cookie } });
      assert.equal(r.status, 200, p);
      assert.ok(String(r.headers['content-type']).startsWith(type), p);
      assert.match(String(r.headers['content-security-policy']), /^default-src 'self'/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
      assert.ok(!r.body.includes(admin) && !r.body.includes(viewer), `${p} holds no token`);
    }
    const head = await request(port, { method: 'HEAD', headers: { cookie } });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await request(port, { path: '/../package.json', headers: { cookie } })).status, 404);
    assert.equal((await request(port, { path: '/segment/nope', headers: { cookie } })).status, 404);
    const one = await request(port, { path: '/segment/web', headers: { cookie } });
    assert.deepEqual(JSON.parse(one.body), segments[0]);
  });

  it('streams the topology first, and refuses more streams per token than a few tabs need', async () => {
    const streams = [];
    for (let i = 0; i < STREAMS_PER_TOKEN; i++) streams.push(await openStream(port, cookie));
    try {
      assert.ok(streams.every((s) => s.status === 200));
      assert.match(streams[0].first, /^event: topology\ndata: /);
      const data = JSON.parse(streams[0].first.split('\n')[1].slice('data: '.length)) as {
        topology: { segments: { id: string }[] };
        stats: Record<string, { state: string }>;
      };
      assert.deepEqual(
        data.topology.segments.map((s) => s.id),
        ['web'],
      );
      assert.equal(data.stats.web.state, 'ready');
      assert.ok(!streams[0].first.includes(viewer), 'no token in the stream');
      assert.equal((await openStream(port, cookie)).status, 429);
      // another key's token has streams of its own
      const other = await openStream(port, `wormhole-ui-${port}=${admin}`);
      assert.equal(other.status, 200);
      other.close();
    } finally {
      for (const s of streams) s.close();
    }
  });

  it('ends the streams of a key dropped at SIGHUP, and opens no more for it', async () => {
    const s = await openStream(port, cookie);
    assert.equal(s.status, 200);
    tokens = [admin];
    await s.ended;
    assert.equal((await request(port, { headers: { cookie } })).status, 401);
    tokens = [admin, viewer];
  });
});

describe('the web view at a takeover', () => {
  it('waits for the daemon it replaces to let go of the address, and says so when it does not', async () => {
    const port = await freePort();
    const log = createLogger('test', 'silent');
    const source = { segments: () => [], tunnels: async () => [], tokens: () => [admin], hostLabel: 'here' };
    const held = http.createServer();
    await new Promise<void>((resolve) => held.listen(port, '127.0.0.1', resolve));
    const plain = new UiServer(source, log);
    await assert.rejects(plain.listen({ kind: 'tcp', host: '127.0.0.1', port }), {
      message: `cannot serve the web view on tcp://127.0.0.1:${port}: address in use`,
    });
    const successor = new UiServer(source, log);
    const listening = successor.listen({ kind: 'tcp', host: '127.0.0.1', port }, true);
    setTimeout(() => held.close(), 300);
    await listening;
    try {
      assert.equal((await request(port, {})).status, 401, 'the successor serves');
    } finally {
      successor.close();
    }
  });
});
