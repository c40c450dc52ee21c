/**
 * A UDP head: a bound socket (or a port range's, one per port) and the relay of its sessions
 * (udp.ts), behind the same Head face as a TCP head. Sockets bound again in a container's new
 * namespace replace the old ones (relisten); what the old relay counted is handed to
 * `retired` first, so counts go on. A range here is one dgram.Socket per port (Node reads
 * each): it costs more per port than a TCP range in the engine.
 */
import type * as dgram from 'node:dgram';
import { type Cidr, cidrMatcher } from '../api/cidr';
import type { Head } from './head';
import { type DatagramUpstream, UdpRelay } from './udp';

/** What a UDP head needs from its segment. */
export interface UdpHeadOptions {
  /**
   * A session's upstream for a client address and port, and the head port's place in a range
   * (0: the first, or the only); may wait for a trigger, or the tail's container.
   */
  openUpstream(client: string, port: number, offset: number): Promise<DatagramUpstream>;
  /** A session with no datagram either way for this long ends. */
  idleMs: number;
  /** Sessions at most; past it a datagram from a new address is dropped, and `onRefused` told. */
  maxSessions: number;
  /** How long a new session's datagrams are sent again while the tail refuses them. */
  resendMs: number;
  onRefused(from: string): void;
  /** A session's upstream could not be made. */
  onSessionError(err: unknown): void;
  /** `allow`: the only networks datagrams are taken from; the others are dropped and counted. */
  allow?: readonly Cidr[];
  /** The socket itself failed. */
  onSocketError(err: Error): void;
  /** A relay is closed (the head closed, or moved): keep what it counted. */
  retired(relay: UdpRelay): void;
}

/** A bound UDP socket relaying its datagrams to sessions' upstreams. */
export class UdpHead implements Head {
  private sockets: dgram.Socket[] = [];
  fds: readonly number[] = [];
  private current: UdpRelay | undefined;
  private closed = false;

  /** Relay on these bound sockets (their fds given with them, which the sockets own), in port order. */
  constructor(
    sockets: dgram.Socket[],
    fds: readonly number[],
    private readonly opts: UdpHeadOptions,
  ) {
    this.use(sockets, fds);
  }

  private use(sockets: dgram.Socket[], fds: readonly number[]): void {
    const o = this.opts;
    for (const socket of sockets) socket.on('error', (err) => o.onSocketError(err));
    this.current = new UdpRelay(
      sockets,
      (client, port, offset) => o.openUpstream(client, port, offset),
      o.idleMs,
      (err) => o.onSessionError(err),
      o.maxSessions,
      (from) => o.onRefused(from),
      o.resendMs,
      o.allow && cidrMatcher(o.allow),
    );
    this.sockets = sockets;
    this.fds = fds;
  }

  /** The relay while the head listens (its counters, its sessions). */
  get relay(): UdpRelay | undefined {
    return this.current;
  }

  /**
   * Node reads a UDP socket from its bind on, and a datagram with no reader is lost: the
   * relay reads from the start, and a session's upstream waits for the segment to be ready
   * (openUpstream), so nothing reaches a tail before it is set.
   */
  accept(): void {}

  /** Close the socket and its sessions, keeping their counts. Idempotent. */
  stopListening(): void {
    const relay = this.current;
    if (!relay) return;
    this.current = undefined;
    this.opts.retired(relay);
    relay.close();
    for (const socket of this.sockets) socket.close();
    this.sockets = [];
    this.fds = [];
  }

  /** Relay on sockets bound again (the head's container moved to a new namespace). */
  relisten(sockets: dgram.Socket[], fds: readonly number[]): void {
    this.stopListening();
    if (this.closed) {
      for (const socket of sockets) socket.close();
      return;
    }
    this.use(sockets, fds);
  }

  /** End every session; the next datagram from a client opens a new one. */
  endSessions(): void {
    this.current?.endSessions();
  }

  close(): Promise<void> {
    this.closed = true;
    this.stopListening();
    return Promise.resolve();
  }
}
