/**
 * A UDP head: a bound socket and the relay of its sessions (udp.ts), behind the same Head
 * face as a TCP head. A socket bound again in a container's new namespace replaces the old
 * one (relisten); what the old relay counted is handed to `retired` first, so counts go on.
 */
import type * as dgram from 'node:dgram';
import { type Cidr, cidrMatcher } from '../api/cidr';
import type { Head } from './head';
import { type DatagramUpstream, UdpRelay } from './udp';

/** What a UDP head needs from its segment. */
export interface UdpHeadOptions {
  /** A session's upstream for a client address and port (may wait for a trigger, or the tail's container). */
  openUpstream(client: string, port: number): Promise<DatagramUpstream>;
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
  private socket: dgram.Socket | undefined;
  private current: UdpRelay | undefined;
  private closed = false;

  /** Relay on this bound socket (its fd given with it, which the socket owns). */
  constructor(
    socket: dgram.Socket,
    public fd: number,
    private readonly opts: UdpHeadOptions,
  ) {
    this.use(socket, fd);
  }

  private use(socket: dgram.Socket, fd: number): void {
    const o = this.opts;
    socket.on('error', (err) => o.onSocketError(err));
    this.current = new UdpRelay(
      socket,
      (client, port) => o.openUpstream(client, port),
      o.idleMs,
      (err) => o.onSessionError(err),
      o.maxSessions,
      (from) => o.onRefused(from),
      o.resendMs,
      o.allow && cidrMatcher(o.allow),
    );
    this.socket = socket;
    this.fd = fd;
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
    this.socket?.close();
    this.socket = undefined;
    this.fd = -1;
  }

  /** Relay on a socket bound again (the head's container moved to a new namespace). */
  relisten(socket: dgram.Socket, fd: number): void {
    this.stopListening();
    if (this.closed) {
      socket.close();
      return;
    }
    this.use(socket, fd);
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
