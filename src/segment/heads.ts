/**
 * A segment's head, TCP or UDP, opened on its listening socket with what it tells the
 * segment (a client to serve, a session's upstream to open, warnings to log); and the socket
 * a UDP session opens to a local tail.
 */
import type * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import type { Cidr } from '../api/cidr';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { RateLimitedLog } from '../common/ratelog';
import { bindUdp, bindUdpTransparent } from '../netns';
import { type Client, type ConnectionEnd, type HeadOptions, type TcpHead, openTcpHead } from '../proxy/head';
import type { DatagramUpstream, UdpRelay } from '../proxy/udp';
import { UdpHead } from '../proxy/udphead';
import type { SegmentContext } from './context';
import type { Endpoint } from './endpoint';
import { bindAll, rangeCount, tailPortFor } from './range';
import { accessLevel, logConnection } from './stats';
import { bindStreamHead, releaseStreamHead } from './streamends';
import { isStream } from '../api/url';

/** What a head tells its segment. */
export interface HeadHost {
  readonly id: string;
  readonly ctx: SegmentContext;
  /** Repeated warnings become one line with a count. */
  readonly warn: RateLimitedLog;
  /** `allow`: the only networks clients are taken from (absent: any). */
  readonly allow?: readonly Cidr[];
  /** `wake-on-data`: a TCP client is taken at its first byte (a datagram always has one). */
  readonly wakeOnData?: boolean;
  /** A TCP client to take to the tail. */
  serve(client: Client): void;
  /** A UDP session's upstream for a client address and port, and the head port's place in a range. */
  openUpstream(client: string, port: number, offset: number): Promise<DatagramUpstream>;
  /** A UDP relay closed: keep its counts. */
  retired(relay: UdpRelay): void;
  /** The tail as the access log names it. */
  tailText(): string;
}

/**
 * An end's container runs again: its head (`heads`, TCP or UDP) listens on the same address
 * and port (`port`; every port of a range) in the new namespace (`head.ns`), unless `live`
 * says the segment stopped listening meanwhile (then what was bound goes, and undefined). A
 * unix head's new file identity.
 */
export async function relistenHead(
  head: Endpoint,
  port: number,
  heads: { tcp?: TcpHead; udp?: UdpHead },
  live: () => boolean,
  log: Logger,
): Promise<{ identity?: string } | undefined> {
  if (isStream(head.proto)) {
    const { fds, identity } = await bindStreamHead(head, port);
    if (!live() || !heads.tcp) {
      for (const fd of fds) fs.closeSync(fd);
      await releaseStreamHead(head, identity, log);
      return undefined;
    }
    heads.tcp.relisten(fds);
    return { identity };
  }
  heads.udp?.stopListening();
  const { sockets, fds } = await bindUdpHead(head, port);
  if (!live() || !heads.udp) {
    for (const socket of sockets) socket.close();
    return undefined;
  }
  heads.udp.relisten(sockets, fds);
  return {};
}

/**
 * A stream head's options: its segment's settings, read from the segment when asked, and
 * methods that call the segment (one small object, not a closure each or a copy of each
 * setting: issue 20's memory per idle segment).
 */
class StreamHeadOptions implements HeadOptions {
  constructor(
    protected readonly host: HeadHost,
    readonly unixName: string | undefined,
  ) {}

  get maxConnections(): number {
    return this.host.ctx.maxConnections;
  }

  get dialTimeoutMs(): number {
    return this.host.ctx.dialTimeoutMs;
  }

  get allow(): readonly Cidr[] | undefined {
    return this.host.allow;
  }

  get wakeOnData(): boolean | undefined {
    return this.host.wakeOnData;
  }

  onClient(client: Client): void {
    this.host.serve(client);
  }

  onWarning(kind: 'refused' | 'accept-error', detail?: string): void {
    const { id, ctx, warn } = this.host;
    if (kind === 'refused')
      warn.warn(
        { segment: id, limit: ctx.maxConnections },
        'connection refused: too many open (--max-connections)',
      );
    else warn.warn({ segment: id, err: detail }, 'accept failed');
  }
}

/**
 * The same, hearing of each connection's end for the access log: only when the log would
 * show it (without onClosed the engine only counts, waking no one).
 */
class LoggingStreamHeadOptions extends StreamHeadOptions {
  constructor(
    host: HeadHost,
    unixName: string | undefined,
    private readonly level: 'info' | 'debug',
  ) {
    super(host, unixName);
  }

  onClosed(end: ConnectionEnd): void {
    const { ctx, id } = this.host;
    logConnection(ctx.log, this.level, id, this.host, this.unixName === undefined ? 'unknown' : 'unix', end);
  }
}

/** A TCP or unix head on its listening fds (a port range's in port order). */
export function openStreamHead(host: HeadHost, head: Endpoint, fds: readonly number[]): TcpHead {
  const { ctx, id } = host;
  const unixName = head.proto === 'unix' ? head.path : undefined;
  const level = accessLevel(ctx.log, ctx.accessLog);
  const opts = level
    ? new LoggingStreamHeadOptions(host, unixName, level)
    : new StreamHeadOptions(host, unixName);
  const opened = openTcpHead(ctx.engine, fds, opts);
  // a peer's stream for this segment, from a key that may reach it, is dialed by the engine
  const owner = ctx.ownerOf?.(id);
  if (owner) opened.attachable?.(id, owner);
  return opened;
}

/**
 * A UDP head's sockets bound at `port` (every port of a range, all or nothing), in port
 * order; or the ones a predecessor handed over (`handed`), taken as they are.
 */
export async function bindUdpHead(
  head: Endpoint,
  port: number,
  handed?: readonly number[],
): Promise<{ sockets: dgram.Socket[]; fds: number[] }> {
  const bound = await bindAll(
    port,
    handed?.length ?? rangeCount(head),
    (p) => bindUdp(head.ns, head.host, p, handed?.[p - port]),
    (b) => b.socket.close(),
  );
  return { sockets: bound.map((b) => b.socket), fds: bound.map((b) => b.fd) };
}

/** A UDP head on its bound sockets (a port range's in port order). */
export function openUdpHead(host: HeadHost, sockets: dgram.Socket[], fds: readonly number[]): UdpHead {
  const { ctx, id, warn } = host;
  return new UdpHead(sockets, fds, {
    openUpstream: (client, port, offset) => host.openUpstream(client, port, offset),
    idleMs: ctx.udpIdleMs,
    maxSessions: ctx.maxUdpSessions,
    resendMs: ctx.dialTimeoutMs,
    allow: host.allow,
    onRefused: (from) =>
      warn.warn(
        { segment: id, from, limit: ctx.maxUdpSessions },
        'udp session refused: too many (--max-udp-sessions)',
      ),
    onSessionError: (err) => warn.warn({ segment: id, err: errorMessage(err) }, 'udp session failed'),
    onSocketError: (err) => ctx.log.warn({ segment: id, err: err.message }, 'udp head error'),
    retired: (relay) => host.retired(relay),
  });
}

/**
 * A UDP socket connected to a local tail, made in its namespace; `from`: bound to a client's
 * own address and port instead, for a transparent tail (src/segment/transparent.ts).
 * `offset`: the head port's place in a range (a tail range's port i).
 */
export async function udpSocketTo(
  ep: Endpoint,
  from?: { host: string; port: number; mark: number },
  offset = 0,
): Promise<dgram.Socket> {
  const any = ep.host.includes(':') ? '::' : '0.0.0.0';
  const up = from
    ? await bindUdpTransparent(ep.ns, from.host, from.port, from.mark)
    : (await bindUdp(ep.ns, any, 0)).socket;
  await new Promise<void>((resolve, reject) => {
    up.once('error', reject);
    up.connect(tailPortFor(ep, offset), ep.host, () => {
      up.off('error', reject);
      resolve();
    });
  });
  return up;
}
