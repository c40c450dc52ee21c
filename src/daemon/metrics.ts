/**
 * `wormholed --metrics tcp://HOST:PORT`: Prometheus metrics over HTTP at `/metrics` (404
 * elsewhere), in the text format, through prom-client. Every value is read when scraped from
 * what the daemon keeps anyway (the engine's counters through `list`, `wg` for tunnels, those
 * at most every TUNNEL_READ_MS), so nothing is counted twice and an idle daemon does no work
 * for its metrics.
 */
import * as http from 'node:http';
import * as client from 'prom-client';
import type { PeerInfo, SegmentInfo } from '../api/protocol';
import type { DaemonAddress } from '../common/address';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { EngineStats } from '../proxy/engine';
import type { TunnelCounters } from '../tunnel';

/** Where the values come from, read at each scrape. */
export interface MetricsSource {
  segments(): SegmentInfo[];
  tunnels(): Promise<TunnelCounters[]>;
  /** The channels to peers (`wormhole peers`). */
  peers(): PeerInfo[];
  /** The splice engine's own figures (undefined: JavaScript moves the bytes). */
  engine?(): EngineStats | undefined;
}

const SEGMENT_LABELS = ['segment', 'head', 'tail'] as const;
type SegmentLabels = Record<(typeof SEGMENT_LABELS)[number], string>;

function labelsOf(s: SegmentInfo): SegmentLabels {
  const t = s.tails?.map((x) => x.url).join(',') ?? '';
  return { segment: s.id, head: s.url, tail: t };
}

/**
 * Tunnel counters are read with `ip` and `wg`, two processes per tunnel: at most once in this
 * long, whatever the scrapes (the port has no key: anyone who reaches it may scrape, as
 * often as they like).
 */
export const TUNNEL_READ_MS = 5000;

/** The metrics HTTP server. */
export class MetricsServer {
  private readonly registry = new client.Registry();
  private server: http.Server | undefined;
  /** What the current scrape reads (one snapshot for every metric of it). */
  private segments: SegmentInfo[] = [];
  private tunnels: TunnelCounters[] = [];
  /** The last read of the tunnel counters (in flight, or done): shared for TUNNEL_READ_MS. */
  private tunnelRead: { at: number; counters: Promise<TunnelCounters[]> } | undefined;
  private peers: PeerInfo[] = [];
  private engine: EngineStats | undefined;

  constructor(
    private readonly source: MetricsSource,
    private readonly log: Logger,
  ) {
    client.collectDefaultMetrics({ register: this.registry });
    this.define();
  }

  /** A gauge or counter whose values are set from the snapshot at each scrape. */
  private metric<L extends string>(
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: readonly L[],
    values: () => [Record<L, string>, number][],
  ): void {
    const collect = function (this: client.Gauge<L> | client.Counter<L>): void {
      this.reset();
      for (const [labels, v] of values()) {
        if (this instanceof client.Gauge) this.set(labels, v);
        else this.inc(labels, v);
      }
    };
    const config = { name, help, labelNames, registers: [this.registry], collect };
    if (kind === 'gauge') new client.Gauge<L>(config);
    else new client.Counter<L>(config);
  }

  private define(): void {
    const seg = (pick: (s: SegmentInfo) => number | undefined) => (): [SegmentLabels, number][] =>
      this.segments.flatMap((s) => {
        const v = pick(s);
        return v === undefined ? [] : [[labelsOf(s), v]];
      });
    this.metric(
      'gauge',
      'wormhole_segment_connections_active',
      'Open connections (UDP: sessions).',
      SEGMENT_LABELS,
      seg((s) => s.traffic?.open),
    );
    this.metric(
      'counter',
      'wormhole_segment_connections_total',
      'Connections accepted (UDP: sessions opened).',
      SEGMENT_LABELS,
      seg((s) => s.traffic?.total),
    );
    this.metric(
      'counter',
      'wormhole_segment_connections_refused_total',
      'Connections refused at --max-connections (UDP: sessions at --max-udp-sessions).',
      SEGMENT_LABELS,
      seg((s) => s.traffic?.refused),
    );
    this.metric(
      'counter',
      'wormhole_segment_dial_failures_total',
      'Dials to the tail that failed.',
      SEGMENT_LABELS,
      seg((s) => s.traffic?.dialFailures),
    );
    this.metric(
      'gauge',
      'wormhole_segment_last_active_seconds',
      'When a byte last moved (seconds since the epoch).',
      SEGMENT_LABELS,
      seg((s) => (s.traffic?.lastActive ? s.traffic.lastActive / 1000 : undefined)),
    );
    this.metric(
      'gauge',
      'wormhole_segment_up',
      '1 when the segment is ready, 0 otherwise (waiting, failed, its container down).',
      SEGMENT_LABELS,
      seg((s) => (s.state === 'ready' ? 1 : 0)),
    );
    const dirLabels = [...SEGMENT_LABELS, 'direction'] as const;
    this.metric(
      'counter',
      'wormhole_segment_bytes_total',
      'Bytes moved: up (client to tail) and down.',
      dirLabels,
      () =>
        this.segments.flatMap((s) =>
          s.traffic
            ? [
                [{ ...labelsOf(s), direction: 'up' }, s.traffic.bytesUp],
                [{ ...labelsOf(s), direction: 'down' }, s.traffic.bytesDown],
              ]
            : [],
        ),
    );
    this.metric(
      'counter',
      'wormhole_segment_datagrams_total',
      'UDP datagrams: up (client to tail) and down.',
      dirLabels,
      () =>
        this.segments.flatMap((s) =>
          s.traffic?.datagramsUp !== undefined
            ? [
                [{ ...labelsOf(s), direction: 'up' }, s.traffic.datagramsUp],
                [{ ...labelsOf(s), direction: 'down' }, s.traffic.datagramsDown ?? 0],
              ]
            : [],
        ),
    );
    this.metric(
      'counter',
      'wormhole_segment_datagrams_dropped_total',
      "UDP datagrams dropped for want of queue room (a session's, the segment's) or of sessions opening.",
      SEGMENT_LABELS,
      seg((s) => s.traffic?.datagramsDropped),
    );
    this.metric(
      'gauge',
      'wormhole_segment_udp_queued_bytes',
      "Bytes of UDP datagrams held for the segment's sessions (waiting for an upstream, or to be sent again).",
      SEGMENT_LABELS,
      seg((s) => s.traffic?.queuedBytes),
    );
    const resultLabels = [...SEGMENT_LABELS, 'result'] as const;
    this.metric(
      'counter',
      'wormhole_trigger_runs_total',
      'Trigger runs, by result (ok, failed).',
      resultLabels,
      () =>
        this.segments.flatMap((s) =>
          s.trigger
            ? [
                [{ ...labelsOf(s), result: 'ok' }, s.trigger.runs - s.trigger.failures],
                [{ ...labelsOf(s), result: 'failed' }, s.trigger.failures],
              ]
            : [],
        ),
    );
    this.metric(
      'gauge',
      'wormhole_trigger_duration_seconds',
      'How long the last trigger run took.',
      SEGMENT_LABELS,
      seg((s) => (s.trigger?.lastMs === undefined ? undefined : s.trigger.lastMs / 1000)),
    );
    const tailLabels = [...SEGMENT_LABELS, 'url'] as const;
    this.metric(
      'gauge',
      'wormhole_tail_up',
      '1 when the last dial to the tail succeeded, 0 when it failed (absent: never dialed).',
      tailLabels,
      () =>
        this.segments.flatMap((s) =>
          (s.tails ?? []).flatMap((t) =>
            t.health === 'unknown'
              ? []
              : [
                  [{ ...labelsOf(s), url: t.url }, t.health === 'up' ? 1 : 0] as [
                    Record<(typeof tailLabels)[number], string>,
                    number,
                  ],
                ],
          ),
        ),
    );
    const tunLabels = ['host', 'iface', 'engine', 'direction'] as const;
    this.metric(
      'counter',
      'wormhole_tunnel_bytes_total',
      'Bytes through a tunnel: tx (to the peer), rx.',
      tunLabels,
      () =>
        this.tunnels.flatMap((t) => [
          [{ host: t.host, iface: t.iface, engine: t.driver, direction: 'tx' }, t.txBytes],
          [{ host: t.host, iface: t.iface, engine: t.driver, direction: 'rx' }, t.rxBytes],
        ]),
    );
    this.metric(
      'gauge',
      'wormhole_tunnel_last_handshake_seconds',
      'The last handshake with the peer (seconds since the epoch).',
      ['host', 'iface', 'engine'] as const,
      () =>
        this.tunnels.flatMap((t) =>
          t.lastHandshake === null
            ? []
            : [[{ host: t.host, iface: t.iface, engine: t.driver }, t.lastHandshake]],
        ),
    );
    this.definePeers();
    this.defineEngine();
  }

  /** The splice engine's pipe budget (issue 18, hole 8): absent with the JavaScript mover. */
  private defineEngine(): void {
    const one = (v: number | undefined): [Record<never, string>, number][] =>
      v === undefined ? [] : [[{}, v]];
    this.metric(
      'gauge',
      'wormhole_engine_pipe_grown_bytes',
      "What the engine's grown pipes may hold beyond their first size, all connections together.",
      [] as const,
      () => one(this.engine?.pipeGrown),
    );
    this.metric(
      'gauge',
      'wormhole_engine_pipe_budget_bytes',
      'The bound on wormhole_engine_pipe_grown_bytes (--pipe-budget).',
      [] as const,
      () => one(this.engine?.pipeBudget),
    );
    this.metric(
      'counter',
      'wormhole_engine_pipe_grow_refused_total',
      'Pipes left at their first size because the budget was spent.',
      [] as const,
      () => one(this.engine?.pipeDenied),
    );
  }

  /** Per peer channel, as `wormhole peers` shows it. */
  private definePeers(): void {
    const peer = (pick: (p: PeerInfo) => number | null) => (): [{ host: string }, number][] =>
      this.peers.flatMap((p) => {
        const v = pick(p);
        return v === null ? [] : [[{ host: p.host }, v]];
      });
    this.metric(
      'gauge',
      'wormhole_peer_up',
      '1 when the channel to the peer is up, 0 otherwise (connecting, down).',
      ['host'] as const,
      peer((p) => (p.state === 'up' ? 1 : 0)),
    );
    this.metric(
      'gauge',
      'wormhole_peer_rtt_seconds',
      "The last keepalive's round trip on the channel to the peer.",
      ['host'] as const,
      peer((p) => (p.rttMs === null ? null : p.rttMs / 1000)),
    );
    this.metric(
      'gauge',
      'wormhole_peer_streams',
      'Streams open on the channel to the peer (connections, UDP sessions, calls).',
      ['host'] as const,
      peer((p) => p.streams),
    );
    this.metric(
      'counter',
      'wormhole_peer_bytes_total',
      'Bytes on the channels to the peer, frames included: up (to it) and down.',
      ['host', 'direction'] as const,
      () =>
        this.peers.flatMap((p) => [
          [{ host: p.host, direction: 'up' }, p.bytesUp],
          [{ host: p.host, direction: 'down' }, p.bytesDown],
        ]),
    );
  }

  /** Serve on a TCP address (on `fd`, the listener a predecessor handed over, when given). */
  async listen(addr: DaemonAddress, fd?: number): Promise<void> {
    if (addr.kind !== 'tcp')
      throw new WormholeError('BAD_FLAG', '--metrics needs a TCP address, e.g. tcp://127.0.0.1:9101');
    const server = http.createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new WormholeError(
            err.code === 'EADDRINUSE' ? 'ADDR_IN_USE' : 'LISTEN_FAILED',
            `cannot serve metrics on tcp://${addr.host}:${addr.port}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`,
          ),
        ),
      );
      if (fd !== undefined) server.listen({ fd }, resolve);
      else server.listen({ host: addr.host, port: addr.port }, resolve);
    });
    server.on('error', (err) => this.log.warn({ err: err.message }, 'metrics listener error'));
    this.server = server;
    this.log.info({ address: `tcp://${addr.host}:${addr.port}/metrics` }, 'serving metrics');
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    try {
      this.segments = this.source.segments();
      this.tunnels = await this.readTunnels();
      this.peers = this.source.peers();
      this.engine = this.source.engine?.();
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'metrics scrape failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
    }
  }

  /** The tunnels' counters: read again once the last read is TUNNEL_READ_MS old. */
  private readTunnels(): Promise<TunnelCounters[]> {
    const now = Date.now();
    if (!this.tunnelRead || now - this.tunnelRead.at >= TUNNEL_READ_MS)
      this.tunnelRead = { at: now, counters: this.source.tunnels().catch(() => []) };
    return this.tunnelRead.counters;
  }

  /** The listening socket, for a daemon taking over (this one keeps it). */
  listeningFd(): number | undefined {
    // (libuv holds the fd on the handle; Node has no public way to read it)
    return (this.server as unknown as { _handle?: { fd: number } } | undefined)?._handle?.fd;
  }

  /** Stop serving. */
  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }
}
