/**
 * A UDP segment's sessions past its head: where each session's datagrams go upstream (a
 * socket to a local tail, picked for the client when there are several, or a stream to the
 * peer's segment), the sessions a peer attaches to a segment made for it, and the counters of
 * relays already closed. Kept out of segment.ts, which holds what TCP and UDP share.
 */
import type * as dgram from 'node:dgram';
import type { Duplex } from 'node:stream';
import type { SegmentInfo } from '../api/protocol';
import type { Origin } from '../proxy/proxyproto';
import type { DatagramUpstream, UdpCounters } from '../proxy/udp';
import type { SegmentContext } from './context';
import type { Endpoint } from './endpoint';
import { udpSocketTo } from './heads';
import type { Tail } from './spec';
import { UdpTotals } from './stats';
import { clientFor } from './transparent';
import { PeerSessions, openPeerSession } from './udpremote';

/** What the UDP side asks of its segment. */
export interface UdpSideHost {
  readonly ctx: SegmentContext;
  /** The tail, once there is one (the trigger run if it must be). */
  triggered(): Promise<Tail>;
  /** Wait while the tail's container is down (up to the dial timeout). */
  tailRunning(): Promise<void>;
  /** The tail picked for this client among several (undefined: none is there now). */
  pickUdp(client: string): Endpoint | undefined;
  /** Where the head listens, for the origin a peer's segment is told. */
  headAddress(): { host: string; port: number };
  /** The segment's mark, for a transparent tail (src/segment/transparent.ts). */
  transparentMark(): number;
}

/** One UDP segment's upstreams, peer sessions and closed relays' counters. */
export class UdpSide {
  /** A UDP segment made for a peer: the sessions its parent carries over attach streams. */
  private peerSessions: PeerSessions | undefined;
  /** UDP relays closed before this one (a container restarted), for the counters. */
  private readonly totals = new UdpTotals();

  constructor(private readonly host: UdpSideHost) {}

  /**
   * A session's upstream for a client's address and port: a socket to a local tail, or a
   * stream to the peer's segment.
   */
  async openUpstream(client: string, port: number, offset = 0): Promise<DatagramUpstream> {
    const tail = await this.host.triggered();
    if (tail.kind === 'peer') {
      const origin: Origin = { src: { host: client, port: 0 }, dst: this.host.headAddress() };
      const { peers, dialTimeoutMs } = this.host.ctx;
      return openPeerSession(peers, tail.host, tail.id, dialTimeoutMs, origin);
    }
    return this.openSocket(client, port, offset);
  }

  /**
   * A UDP socket connected to a local tail (picked for this client), made in its namespace;
   * bound to the client's own address and port for a transparent tail.
   */
  private async openSocket(client: string, port: number, offset = 0): Promise<dgram.Socket> {
    await this.host.triggered();
    await this.host.tailRunning();
    // (asked again: a tail let go while its container was down is found by running the trigger)
    const tail = await this.host.triggered();
    const ep = tail.kind === 'set' ? this.host.pickUdp(client) : tail.kind === 'local' ? tail.ep : undefined;
    if (!ep || ep.proto !== 'udp') {
      throw new Error(tail.kind === 'set' ? 'no udp tail is there now' : 'a udp head needs a local udp tail');
    }
    if (!ep.transparent) return udpSocketTo(ep, undefined, offset);
    return udpSocketTo(ep, { host: clientFor(ep, client), port, mark: this.host.transparentMark() });
  }

  /**
   * One session of datagrams handed over by a peer's attach (`client`: the client's address,
   * as the head's side said: several tails pick by it).
   */
  attach(stream: Duplex, ready: (err?: unknown) => void, client: string): void {
    const { udpIdleMs, maxUdpSessions } = this.host.ctx;
    // (a peer says the client's address, not its port: a transparent tail's is the kernel's pick)
    this.peerSessions ??= new PeerSessions((c) => this.openSocket(c, 0), udpIdleMs, maxUdpSessions);
    void this.peerSessions.serve(stream, ready, client);
  }

  /** A relay closed (its container restarted): keep its counts. */
  retire(relay: UdpCounters): void {
    this.totals.retire(relay);
  }

  /** The counts of a segment that never had a UDP side: the live relay's alone. */
  static none(relay: UdpCounters | undefined): NonNullable<SegmentInfo['traffic']> {
    return new UdpTotals().traffic(relay);
  }

  /** Every datagram counted: the live relay's, closed relays' and the peer's sessions'. */
  traffic(relay: UdpCounters | undefined): NonNullable<SegmentInfo['traffic']> {
    return this.totals.traffic(relay, this.peerSessions);
  }

  /** End the peer's sessions (the tail went): the next attach opens one again. */
  endSessions(): void {
    this.peerSessions?.endSessions();
  }

  /** Close the peer's sessions for good (the segment closes). */
  close(): void {
    this.peerSessions?.close();
  }
}
