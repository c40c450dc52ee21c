/**
 * `wormholed --ui ADDR`: the web view, over plain node:http. It serves the page's own files
 * (src/ui/static, and elkjs's from the package: nothing from the network), the segments'
 * topology and numbers as Server-Sent Events, and one segment as `list --json` has it.
 *
 * Safe by default (the daemon is root; a page is a browser's, which any site can aim at):
 * GET and HEAD only (405); a Host header other than the bound address, localhost or
 * 127.0.0.1 gets 403 (DNS rebinding); no or a wrong token 401. The token (src/ui/token.ts)
 * comes once in the address `wormhole ui` prints; the page trades it for an HttpOnly,
 * SameSite=Strict cookie and sends the browser on to an address without it (kept out of the
 * history, and never in a Referer: no-referrer anyway). Every answer has a strict CSP and
 * nosniff. Event streams are counted per token and in all.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { SegmentInfo, TunnelInfo } from '../api/protocol';
import { type DaemonAddress, formatDaemonAddress } from '../common/address';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import { type SegmentStats, type Topology, countersOf, statsOf, topologyOf } from './model';
import { cookieValue, tokenMatches } from './token';

/** What the view reads, each time it is asked (nothing is kept but the last counters). */
export interface UiSource {
  segments(): SegmentInfo[];
  tunnels(): Promise<TunnelInfo[]>;
  /** Every token accepted now: one per key the daemon knows (they change at SIGHUP). */
  tokens(): string[];
  /** This host's box's name. */
  hostLabel: string;
}

/** Event streams one token may hold open at once (a tab holds one). */
export const STREAMS_PER_TOKEN = 8;
/** Event streams open at once, all tokens together. */
export const STREAMS_IN_ALL = 32;
/** How often the numbers are sent. */
const TICK_MS = 1000;
/** At a takeover, how long the predecessor may take to let go of the address. */
const TAKEOVER_WAIT_MS = 3000;

const HEADERS: http.OutgoingHttpHeaders = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** The files served, by path: the page's own and elkjs's (resolved in the package once). */
function files(): Map<string, { file: string; type: string }> {
  const dir = path.join(__dirname, 'static');
  const js = 'text/javascript; charset=utf-8';
  return new Map([
    ['/', { file: path.join(dir, 'index.html'), type: 'text/html; charset=utf-8' }],
    ['/style.css', { file: path.join(dir, 'style.css'), type: 'text/css; charset=utf-8' }],
    ['/app.js', { file: path.join(dir, 'app.js'), type: js }],
    ['/graph.js', { file: path.join(dir, 'graph.js'), type: js }],
    ['/elk-api.js', { file: require.resolve('elkjs/lib/elk-api.js'), type: js }],
    ['/elk-worker.js', { file: require.resolve('elkjs/lib/elk-worker.min.js'), type: js }],
  ]);
}

/** One open event stream. */
interface Stream {
  res: http.ServerResponse;
  token: string;
  /** The topology it was last sent (undefined: none yet). */
  sent?: string;
}

/** What one tick computed, sent to every stream. */
interface Tick {
  key: string;
  topology: Topology;
  stats: Record<string, SegmentStats>;
}

/** The web view's HTTP server. */
export class UiServer {
  private server?: http.Server;
  private addr?: DaemonAddress;
  private readonly files = files();
  private readonly streams = new Set<Stream>();
  private timer?: NodeJS.Timeout;
  private last: { at: number; counters: Map<string, { up: number; down: number }> } | undefined;

  constructor(
    private readonly source: UiSource,
    private readonly log: Logger,
  ) {}

  /** The address it serves on, as `--ui` writes it. */
  get address(): string | undefined {
    return this.addr && formatDaemonAddress(this.addr);
  }

  /**
   * Listen on a TCP address or a unix socket (a stale socket file is replaced, a live one
   * is not). `takeover`: the daemon being replaced still holds it for a moment: wait.
   */
  async listen(addr: DaemonAddress, takeover = false): Promise<void> {
    const deadline = Date.now() + (takeover ? TAKEOVER_WAIT_MS : 0);
    for (;;) {
      try {
        this.server = await this.tryListen(addr);
        break;
      } catch (err) {
        if (!(err instanceof WormholeError && err.code === 'ADDR_IN_USE') || Date.now() >= deadline)
          throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.addr = addr;
    this.log.info({ address: formatDaemonAddress(addr) }, 'serving the web view');
  }

  private async tryListen(addr: DaemonAddress): Promise<http.Server> {
    const where = formatDaemonAddress(addr);
    if (addr.kind === 'unix' && (await liveSocket(addr.path)))
      throw new WormholeError(
        'ADDR_IN_USE',
        `cannot serve the web view on ${where}: something listens there`,
      );
    const server = http.createServer((req, res) => this.serve(req, res));
    // a slow or silent client is let go (event streams are answered at once, then kept)
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new WormholeError(
            err.code === 'EADDRINUSE' ? 'ADDR_IN_USE' : 'LISTEN_FAILED',
            `cannot serve the web view on ${where}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`,
          ),
        ),
      );
      if (addr.kind === 'tcp') server.listen({ host: addr.host, port: addr.port }, resolve);
      else {
        // 0600 from the start: only root reaches it (through a forward of its own choosing)
        const old = process.umask(0o177);
        try {
          server.listen({ path: addr.path }, resolve);
        } finally {
          process.umask(old);
        }
      }
    });
    server.on('error', (err) => this.log.warn({ err: err.message }, 'web view listener error'));
    return server;
  }

  /** Stop: the listener and every event stream. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.streams) s.res.destroy();
    this.streams.clear();
    this.server?.close();
    this.server?.closeAllConnections();
  }

  /** Event streams open now (the bench and the tests read it). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** The Host header names this server: its bound address, or localhost / 127.0.0.1 (any port). */
  private hostAllowed(host: string | undefined): boolean {
    if (!host) return false;
    const name = host.replace(/:\d{1,5}$/, '').toLowerCase();
    if (name === 'localhost' || name === '127.0.0.1' || name === '[::1]') return true;
    const a = this.addr;
    if (a?.kind !== 'tcp') return false;
    const bound = net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
    return host.toLowerCase() === bound.toLowerCase();
  }

  private refuse(res: http.ServerResponse, code: number, text: string, extra: http.OutgoingHttpHeaders = {}) {
    res
      .writeHead(code, { ...HEADERS, 'content-type': 'text/plain; charset=utf-8', ...extra })
      .end(`${text}\n`);
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.hostAllowed(req.headers.host))
      return this.refuse(res, 403, "this Host is not the web view's: open it as localhost or 127.0.0.1");
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.refuse(res, 405, 'the web view is read-only: GET and HEAD only', { allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', 'http://view');
    // one cookie per port: two daemons' views on one machine keep theirs apart
    const port = /:(\d{1,5})$/.exec(req.headers.host ?? '')?.[1] ?? '80';
    const cookie = `wormhole-ui-${port}`;
    const given = url.searchParams.get('token');
    const tokens = this.source.tokens();
    if (given !== null) {
      if (!tokenMatches(given, tokens))
        return this.refuse(res, 401, "wrong token: 'wormhole ui' prints the page's address with its token");
      // the token becomes a cookie; the address the browser keeps has none
      res
        .writeHead(303, {
          ...HEADERS,
          location: url.pathname,
          'set-cookie': `${cookie}=${given}; HttpOnly; SameSite=Strict; Path=/`,
        })
        .end();
      return;
    }
    const token = cookieValue(req.headers.cookie, cookie);
    if (token === undefined || !tokenMatches(token, tokens))
      return this.refuse(res, 401, "no token: open the address 'wormhole ui' prints (it has the token)");
    if (url.pathname === '/events') return this.openStream(req, res, token);
    const seg = /^\/segment\/([^/]+)$/.exec(url.pathname);
    if (seg) return this.segment(res, decodeURIComponent(seg[1]), req.method === 'HEAD');
    const f = this.files.get(url.pathname);
    if (!f) return this.refuse(res, 404, 'not found');
    fs.readFile(f.file, (err, body) => {
      if (err) return this.refuse(res, 500, "the page's file cannot be read: is the package whole?");
      res.writeHead(200, { ...HEADERS, 'content-type': f.type, 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  }

  /** One segment as `list --json` has it (the page shows it when the segment is clicked). */
  private segment(res: http.ServerResponse, id: string, head: boolean): void {
    const s = this.source.segments().find((x) => x.id === id);
    if (!s) return this.refuse(res, 404, `no segment ${id}`);
    const body = Buffer.from(JSON.stringify(s, null, 2));
    res.writeHead(200, { ...HEADERS, 'content-type': 'application/json', 'content-length': body.length });
    res.end(head ? undefined : body);
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse, token: string): void {
    let mine = 0;
    for (const s of this.streams) if (s.token === token) mine++;
    if (mine >= STREAMS_PER_TOKEN || this.streams.size >= STREAMS_IN_ALL)
      return this.refuse(res, 429, 'too many pages open: close some', { 'retry-after': '5' });
    res.writeHead(200, { ...HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
    if (req.method === 'HEAD') return void res.end();
    req.socket.setTimeout(0);
    const stream: Stream = { res, token };
    this.streams.add(stream);
    res.on('close', () => {
      this.streams.delete(stream);
      if (this.streams.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
        this.last = undefined;
      }
    });
    // the first tick at once (the page draws), then one a second while any page is open
    void this.tick();
    this.timer ??= setInterval(() => void this.tick(), TICK_MS);
  }

  /** Read the segments once for every stream: a topology event where it changed, else stats. */
  private async tick(): Promise<void> {
    let t: Tick;
    try {
      const segments = this.source.segments();
      const topology = topologyOf(segments, this.source.hostLabel, await this.source.tunnels());
      const now = Date.now();
      const stats = statsOf(
        segments,
        this.last?.counters ?? new Map(),
        this.last ? now - this.last.at : 0,
        now,
      );
      this.last = { at: now, counters: countersOf(segments) };
      t = { key: JSON.stringify(topology), topology, stats };
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'web view: the segments could not be read');
      return;
    }
    const stats = `event: stats\ndata: ${JSON.stringify(t.stats)}\n\n`;
    let topo: string | undefined;
    const tokens = this.source.tokens();
    for (const s of this.streams) {
      // a key dropped or rotated at SIGHUP: its pages are shown no more
      if (!tokens.includes(s.token)) {
        s.res.end();
        continue;
      }
      if (s.sent === t.key) s.res.write(stats);
      else {
        topo ??= `event: topology\ndata: ${JSON.stringify({ topology: t.topology, stats: t.stats })}\n\n`;
        s.res.write(topo);
        s.sent = t.key;
      }
    }
  }
}

/** Does something accept connections on this unix socket? A stale file is removed. */
async function liveSocket(p: string): Promise<boolean> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return false;
  }
  if (!st.isSocket())
    throw new WormholeError(
      'LISTEN_FAILED',
      `--ui: ${p} exists and is not a socket: remove it or pick another path`,
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path: p }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
  if (!live) fs.unlinkSync(p);
  return live;
}
