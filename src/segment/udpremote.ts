/**
 * UDP over `remote`: a UDP segment whose tail is a segment on a peer carries each session
 * (one per client address, as a local UDP segment has) over an attach stream of its own, a
 * TLS 1.3 connection to the peer's daemon, with each datagram framed by its 2-byte length
 * (src/proxy/dgramstream.ts). Nothing crosses the network in clear text, and no port but the
 * daemon's is opened.
 *
 * One stream per session rather than one stream multiplexing every session: a session is
 * then exactly what a local UDP session is (one socket each, capped by --max-udp-sessions,
 * ended by --udp-idle on the side that owns the clients), the peer needs no session table
 * keyed by ids on the wire, a slow or lost session never holds the others up behind it
 * (head-of-line), and the attach request already is the way a stream reaches a segment's
 * tail. The cost is a TLS handshake when a new client address appears (a few ms).
 *
 * This side (the head's) opens a session's stream when its first datagram arrives
 * (openPeerSession); the peer's side (PeerSessions) relays what comes framed to its local
 * UDP tail through a socket of the session's own, and the tail's replies back.
 */
import type * as dgram from 'node:dgram';
import type { Duplex } from 'node:stream';
import { WormholeError, errorMessage } from '../common/errors';
import { DatagramReader, StreamUpstream, sendDatagram } from '../proxy/dgramstream';
import type { Origin } from '../proxy/proxyproto';
import { type DatagramUpstream, UdpCounters } from '../proxy/udp';
import type { PeerLink } from './context';
import { dialRemote } from './remoteleg';

/** A session's upstream on the head's side: a new attach stream to the peer's segment. */
export async function openPeerSession(
  peers: PeerLink,
  host: string,
  id: string,
  dialTimeoutMs: number,
  origin?: Origin,
): Promise<DatagramUpstream> {
  const stream = await dialRemote(peers, host, id, dialTimeoutMs, origin);
  return new StreamUpstream(stream);
}

/** The peer's side: the sessions attached to one UDP segment, each relayed to its tail. */
export class PeerSessions extends UdpCounters {
  private readonly open = new Set<() => void>();
  private closed = false;

  /**
   * @param openUpstream a UDP socket connected to a tail, picked for a client address (may
   *   wait for a trigger)
   * @param idleMs a session with no datagram either way for this long ends (the head's side
   *   has its own clock; this one frees the socket of a head that went away unheard)
   * @param maxSessions sessions at most (--max-udp-sessions); past it an attach is refused
   */
  constructor(
    private readonly openUpstream: (client: string) => Promise<dgram.Socket>,
    private readonly idleMs: number,
    private readonly maxSessions: number,
  ) {
    super();
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * A peer attached a session (for `client`, the address it relays for): answer `ready` once
   * the tail's socket is there, then relay.
   */
  async serve(stream: Duplex, ready: (err?: unknown) => void, client = ''): Promise<void> {
    if (this.closed || this.open.size >= this.maxSessions) {
      if (!this.closed) this.refused++;
      ready(new WormholeError('REFUSED', 'too many udp sessions (--max-udp-sessions)'));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let up: dgram.Socket | undefined;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      this.open.delete(end);
      try {
        up?.close();
      } catch {
        // already closed
      }
      stream.destroy();
    };
    this.open.add(end);
    this.total++;
    stream.on('error', end);
    stream.once('close', end);
    stream.once('end', end);
    try {
      up = await this.openUpstream(client);
    } catch (err) {
      this.openFailures++;
      this.openFailedAt = Date.now();
      this.lastError = errorMessage(err);
      end();
      ready(err);
      return;
    }
    if (ended) return end();
    this.openOkAt = Date.now();
    const socket = up;
    const touch = (): void => {
      clearTimeout(timer);
      timer = setTimeout(end, this.idleMs);
      timer.unref();
      this.lastActive = Date.now();
    };
    touch();
    socket.on('error', end);
    socket.on('message', (msg) => {
      this.datagramsDown++;
      this.bytesDown += msg.length;
      touch();
      sendDatagram(stream, msg);
    });
    ready();
    new DatagramReader(stream, (msg) => {
      this.datagramsUp++;
      this.bytesUp += msg.length;
      touch();
      socket.send(msg);
    });
  }

  /** End every session (the segment closes, or its tail moved). */
  endSessions(): void {
    for (const end of [...this.open]) end();
  }

  /** End every session, and refuse new ones. */
  close(): void {
    this.closed = true;
    this.endSessions();
  }
}
