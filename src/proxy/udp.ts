/**
 * UDP relay: one upstream socket per client address, so replies find their way back; a
 * session that sees no datagram either way for `idleMs` is closed. Each session holds a
 * socket (an fd), so their number is capped: a datagram from a new address past the cap is
 * dropped at once and counted, and the sessions there are keep working.
 *
 * A new session's tail may not listen yet (a container a trigger has just started): until the
 * tail first answers, datagrams it refuses (port unreachable, the UDP face of a refused
 * connection) are sent again, for as long as a TCP dial would be retried. (One that did get
 * through may then arrive twice, as UDP allows.)
 *
 * What the relay holds for its sessions is bounded in bytes, not only in datagrams, since
 * the sources are spoofable (issue 18, hole 7: 64 datagrams of 64 KiB for 4,096 sessions was
 * 32 GiB): a session keeps at most SESSION_QUEUE_BYTES (waiting for its upstream, or kept to
 * be sent again), all sessions of a head together at most HEAD_QUEUE_BYTES, and at most
 * OPENING_MAX sessions are being opened at once (each is a socket, or an attach on a peer).
 * A datagram past any of them is dropped and counted (`dropped`), as a full socket buffer
 * drops one.
 */
import type * as dgram from 'node:dgram';

/**
 * Where one session's datagrams go: a UDP socket connected to the tail, or a stream to a
 * peer's segment carrying them framed (dgramstream.ts). 'error' ends the session.
 */
export interface DatagramUpstream {
  send(msg: Buffer): void;
  on(event: 'message', listener: (msg: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  close(): void;
}

/** Datagrams kept per new session while its upstream socket is being made. */
const QUEUE_LIMIT = 64;
/** Bytes of datagrams one session keeps (queued, or kept to be sent again). */
export const SESSION_QUEUE_BYTES = 256 * 1024;
/** Bytes of datagrams all the sessions of one head keep together. */
export const HEAD_QUEUE_BYTES = 8 * 1024 * 1024;
/** Sessions being opened at once; a datagram from a new address past it is dropped. */
export const OPENING_MAX = 256;
/** A datagram the tail refused before it first answered is sent again after this long. */
const RESEND_MS = 50;

/** What a UDP relay (or the peer's side of remote sessions) counts, for list and metrics. */
/**
 * A UDP head's counters, kept by whoever relays its datagrams (this relay, or a peer's side
 * of UDP over remote: src/segment/udpremote.ts).
 */
export abstract class UdpCounters {
  /** Live sessions. */
  abstract readonly size: number;
  /** Sessions opened since the start. */
  total = 0;
  /** Datagrams dropped because they would have opened a session past the cap, or came from elsewhere (`allow`). */
  refused = 0;
  /**
   * Datagrams dropped for want of room: past a session's or the head's queue bytes, or from a
   * new address while OPENING_MAX sessions were being opened.
   */
  dropped = 0;
  /** Bytes of datagrams held now, waiting for an upstream or kept to be sent again. */
  queuedBytes = 0;
  /** Datagrams (and their bytes) from clients to the tail, and back. */
  datagramsUp = 0;
  datagramsDown = 0;
  bytesUp = 0;
  bytesDown = 0;
  /** Sessions whose upstream socket could not be made (the tail's namespace gone...). */
  openFailures = 0;
  /** When a datagram last went either way (ms since the epoch; 0: never). */
  lastActive = 0;
  /** When a session's upstream socket was last made, and last failed to be (0: never). */
  openOkAt = 0;
  openFailedAt = 0;
  /** Why the last upstream socket could not be made. */
  lastError: string | undefined;
}

interface Session {
  upstream?: DatagramUpstream;
  queue: Buffer[];
  /** Bytes in `queue` and `unanswered`, counted in the relay's queuedBytes too. */
  held: number;
  /** Sent before the tail first answered: sent again if it refuses them (until `resendUntil`). */
  unanswered?: Buffer[];
  resendUntil?: number;
  timer?: NodeJS.Timeout;
  closed: boolean;
}

/**
 * Relays datagrams between a head's sockets (one, or a port range's, in port order) and
 * per-client upstream sockets: one session table for all of them, a session per client and
 * head port, its upstream opened for the client's place in the range.
 */
export class UdpRelay extends UdpCounters {
  private readonly sessions = new Map<string, Session>();
  private closed = false;
  /** Sessions whose upstream is being made. */
  private opening = 0;

  /**
   * @param heads the bound head sockets (a port range's in port order)
   * @param openUpstream makes a socket connected to a tail for a client address and port, and
   *   the head port's place in the range (may wait for a trigger)
   * @param idleMs session idle time
   * @param onError told when a session could not be opened
   * @param maxSessions sessions at most; past it, `onRefused` is told of each dropped datagram
   * @param resendMs how long a new session's datagrams are sent again while the tail refuses them
   * @param allowed whether a client address may open a session (`allow`); others are refused
   */
  constructor(
    private readonly heads: readonly dgram.Socket[],
    private readonly openUpstream: (
      client: string,
      port: number,
      offset: number,
    ) => Promise<DatagramUpstream>,
    private readonly idleMs: number,
    private readonly onError: (err: unknown) => void,
    private readonly maxSessions = Infinity,
    private readonly onRefused: (from: string) => void = () => undefined,
    private readonly resendMs = 0,
    private readonly allowed?: (address: string) => boolean,
  ) {
    super();
    heads.forEach((head, i) => head.on('message', (msg, rinfo) => this.onMessage(msg, rinfo, i)));
  }

  /** Number of live sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /** A datagram on head socket `at` (its place in a range). */
  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo, at: number): void {
    if (this.closed) return;
    // (one client to two ports of a range is two sessions: two tail ports)
    const key = `${rinfo.address}|${rinfo.port}|${at}`;
    let s = this.sessions.get(key);
    if (!s) {
      // from elsewhere (`allow`): dropped before a session opens, so no trigger runs
      if (this.allowed && !this.allowed(rinfo.address)) {
        this.refused++;
        return;
      }
      if (this.sessions.size >= this.maxSessions) {
        this.refused++;
        this.onRefused(`${rinfo.address}:${rinfo.port}`);
        return;
      }
      if (this.opening >= OPENING_MAX) {
        this.dropped++;
        return;
      }
      s = { queue: [], held: 0, closed: false };
      this.sessions.set(key, s);
      this.total++;
      this.open(key, s, rinfo, at);
    }
    this.touch(key, s);
    this.datagramsUp++;
    this.bytesUp += msg.length;
    this.lastActive = Date.now();
    if (s.upstream) {
      s.upstream.send(msg);
      if (s.unanswered && Date.now() >= (s.resendUntil ?? 0)) this.letGo(s);
      else if (s.unanswered) this.keep(s, s.unanswered, msg, false);
    } else this.keep(s, s.queue, msg, true);
  }

  /**
   * Keep a datagram on one of a session's lists, if the session's and the head's bytes allow;
   * else it is dropped (counted when it was never sent: `unsent`).
   */
  private keep(s: Session, list: Buffer[], msg: Buffer, unsent: boolean): void {
    if (
      list.length >= QUEUE_LIMIT ||
      s.held + msg.length > SESSION_QUEUE_BYTES ||
      this.queuedBytes + msg.length > HEAD_QUEUE_BYTES
    ) {
      if (unsent) this.dropped++;
      return;
    }
    list.push(msg);
    s.held += msg.length;
    this.queuedBytes += msg.length;
  }

  /** A session keeps nothing more: its queue was sent, its tail answered, or it ended. */
  private letGo(s: Session): void {
    s.queue = [];
    s.unanswered = undefined;
    this.queuedBytes -= s.held;
    s.held = 0;
  }

  private touch(key: string, s: Session): void {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => this.end(key, s), this.idleMs);
    s.timer.unref();
  }

  private open(key: string, s: Session, rinfo: dgram.RemoteInfo, at: number): void {
    this.opening++;
    this.openUpstream(rinfo.address, rinfo.port, at).then(
      (up) => {
        this.opening--;
        if (s.closed || this.closed) {
          up.close();
          return;
        }
        s.upstream = up;
        this.openOkAt = Date.now();
        up.on('message', (reply) => {
          if (s.unanswered) this.letGo(s);
          this.touch(key, s);
          this.datagramsDown++;
          this.bytesDown += reply.length;
          this.lastActive = Date.now();
          // (from the port the client sent to: it answers there)
          this.heads[at].send(reply, rinfo.port, rinfo.address);
        });
        up.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ECONNREFUSED' && s.unanswered && Date.now() < (s.resendUntil ?? 0)) {
            // the tail does not listen yet: what it has not answered goes again
            setTimeout(() => {
              if (!s.closed && s.unanswered) for (const m of s.unanswered) up.send(m);
            }, RESEND_MS).unref();
            return;
          }
          this.end(key, s);
        });
        for (const m of s.queue) up.send(m);
        if (this.resendMs > 0 && s.queue.length > 0) {
          // (kept, and still counted, until the tail answers or the time is up)
          s.unanswered = s.queue;
          s.resendUntil = Date.now() + this.resendMs;
          s.queue = [];
        } else this.letGo(s);
      },
      (err) => {
        this.opening--;
        this.openFailures++;
        this.openFailedAt = Date.now();
        this.lastError = err instanceof Error ? err.message : String(err);
        this.end(key, s);
        this.onError(err);
      },
    );
  }

  private end(key: string, s: Session): void {
    if (s.closed) return;
    s.closed = true;
    clearTimeout(s.timer);
    this.letGo(s);
    if (this.sessions.get(key) === s) this.sessions.delete(key);
    try {
      s.upstream?.close();
    } catch {
      // already closed
    }
  }

  /**
   * End every session, keeping the relay: the next datagram from a client opens a new one
   * (its tail moved: the old upstream sockets lead nowhere).
   */
  endSessions(): void {
    for (const [key, s] of this.sessions) this.end(key, s);
  }

  /** Close every session (the head socket belongs to the caller). */
  close(): void {
    this.closed = true;
    for (const [key, s] of this.sessions) this.end(key, s);
  }
}
