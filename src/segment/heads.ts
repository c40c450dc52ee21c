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
import { type Client, type TcpHead, openTcpHead } from '../proxy/head';
import type { DatagramUpstream, UdpRelay } from '../proxy/udp';
import { UdpHead } from '../proxy/udphead';
import type { SegmentContext } from './context';
import type { Endpoint } from './endpoint';
import { accessLog } from './stats';
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
  /** A UDP session's upstream for a client address and port. */
  openUpstream(client: string, port: number): Promise<DatagramUpstream>;
  /** A UDP relay closed: keep its counts. */
  retired(relay: UdpRelay): void;
  /** The tail as the access log names it. */
  tailText(): string;
}

/**
 * An end's container runs again: its head (`heads`, TCP or UDP) listens on the same address
 * and port (`port`) in the new namespace (`head.ns`), unless `live` says the segment stopped
 * listening meanwhile (then what was bound goes, and undefined). A unix head's new file identity.
 */
export async function relistenHead(
  head: Endpoint,
  port: number,
  heads: { tcp?: TcpHead; udp?: UdpHead },
  live: () => boolean,
  log: Logger,
): Promise<{ identity?: string } | undefined> {
  if (isStream(head.proto)) {
    const { fd, identity } = await bindStreamHead(head, port);
    if (!live() || !heads.tcp) {
      fs.closeSync(fd);
      await releaseStreamHead(head, identity, log);
      return undefined;
    }
    heads.tcp.relisten(fd);
    return { identity };
  }
  heads.udp?.stopListening();
  const { socket, fd } = await bindUdp(head.ns, head.host, port);
  if (!live() || !heads.udp) {
    socket.close();
    return undefined;
  }
  heads.udp.relisten(socket, fd);
  return {};
}

/** A TCP or unix head on a listening fd. */
export function openStreamHead(host: HeadHost, head: Endpoint, fd: number): TcpHead {
  const { ctx, id, warn } = host;
  const opened = openTcpHead(ctx.engine, fd, {
    unixName: head.proto === 'unix' ? head.path : undefined,
    maxConnections: ctx.maxConnections,
    dialTimeoutMs: ctx.dialTimeoutMs,
    allow: host.allow,
    wakeOnData: host.wakeOnData,
    onClient: (client) => host.serve(client),
    // each connection's end is heard of only when the log would show it
    onClosed: accessLog(
      ctx.log,
      ctx.accessLog,
      id,
      () => host.tailText(),
      head.proto === 'unix' ? 'unix' : 'unknown',
    ),
    onWarning: (kind, detail) =>
      kind === 'refused'
        ? warn.warn(
            { segment: id, limit: ctx.maxConnections },
            'connection refused: too many open (--max-connections)',
          )
        : warn.warn({ segment: id, err: detail }, 'accept failed'),
  });
  // a peer's stream for this segment, from a key that may reach it, is dialed by the engine
  const owner = ctx.ownerOf?.(id);
  if (owner) opened.attachable?.(id, owner);
  return opened;
}

/** A UDP head on a bound socket. */
export function openUdpHead(host: HeadHost, socket: dgram.Socket, fd: number): UdpHead {
  const { ctx, id, warn } = host;
  return new UdpHead(socket, fd, {
    openUpstream: (client, port) => host.openUpstream(client, port),
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
 */
export async function udpSocketTo(
  ep: Endpoint,
  from?: { host: string; port: number; mark: number },
): Promise<dgram.Socket> {
  const any = ep.host.includes(':') ? '::' : '0.0.0.0';
  const up = from
    ? await bindUdpTransparent(ep.ns, from.host, from.port, from.mark)
    : (await bindUdp(ep.ns, any, 0)).socket;
  await new Promise<void>((resolve, reject) => {
    up.once('error', reject);
    up.connect(ep.port, ep.host, () => {
      up.off('error', reject);
      resolve();
    });
  });
  return up;
}
