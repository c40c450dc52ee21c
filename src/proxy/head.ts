/**
 * A TCP head: a listening socket, the connections it accepts, and how they reach the tail.
 * Two movers, one face: the splice engine when the daemon has it (it accepts, dials and
 * moves bytes itself, and hands JavaScript only what needs a decision), else Node's own
 * sockets and pipe() (tcp.ts): enginehead.ts and nodehead.ts, on what both share
 * (headbase.ts). Nothing above this file knows which one runs. A UDP head (udphead.ts) has the
 * same Head face.
 *
 * A connection that JavaScript must serve (no tail yet: a trigger has to run; or the tail
 * is a peer, reached over TLS; or the engine's dial failed and must be retried) reaches the
 * segment as a Client, which it connects to the tail (toTail) or joins to a stream (join).
 */
import type * as net from 'node:net';
import type { Cidr } from '../api/cidr';
import type { Duplex } from 'node:stream';
import type { Policy } from './balance';
import type { ClosedConnection, Engine, GroupStats } from './engine';
import type { Origin } from './proxyproto';
import { EngineHead } from './enginehead';
import { NodeHead } from './nodehead';

/** How a proxied connection ended, whichever mover carried it (for the access log). */
export type ConnectionEnd = Omit<ClosedConnection, 'id'>;

/**
 * Where a head's connections go: a plain endpoint, and how to reach it. Each mover takes what
 * it needs: the engine opens the namespace and root to dial in, the JavaScript mover connects.
 */
export interface TailTarget {
  host: string;
  port: number;
  /** A unix tail instead: `@name` (abstract, in the tail's namespace) or `/path` (in its filesystem). */
  path?: string;
  /** The PROXY protocol version each connection to the tail starts with. */
  proxy?: 1 | 2;
  /**
   * `transparent`: the mark of the segment's routes (src/netns/policy.ts). The engine dials
   * from the client's own address; the JavaScript mover does not (refused at create).
   */
  mark?: number;
  /** The tail's network namespace, opened (an fd the caller closes); absent: the daemon's own. */
  openNamespace?(): Promise<number>;
  /** The filesystem root a unix `/path` is looked up in, opened (an fd the caller closes). */
  openRoot?(): Promise<number>;
  /**
   * A port range's tail (SPEC.md "Port ranges"): a client of the head's port i (its place in
   * the range: `portOffset`) goes to `port` + i. Absent: every client goes to `port`.
   */
  span?: boolean;
  /**
   * A socket connected to the tail from the daemon (rejects with the errno code; ETIMEDOUT
   * when a TCP tail has not answered within `timeoutMs`); `portOffset`: the client's place in
   * a range head (a span tail adds it to its port).
   */
  connect(timeoutMs?: number, portOffset?: number): Promise<net.Socket>;
  /** How the tail is named in messages. */
  what: string;
}

/** A connection that the segment must take to its tail. */
export interface Client {
  /**
   * Connect to the head's tail, retrying refused dials for the dial timeout; resolves when
   * bytes flow. `onConnected` runs once the tail is connected, before any byte moves.
   */
  toTail(onConnected?: () => void): Promise<void>;
  /** Join an open stream (a TLS leg to a peer) with the JavaScript mover. */
  join(stream: Duplex): void;
  /**
   * The client's socket for another carrier (a peer channel in the engine), if it can be
   * given: the fd is the carrier's from here, and `ended` reports the connection's end
   * (its bytes, reset or not) for the counters and the access log. Undefined: use join.
   */
  takeFd?(): { fd: number; ended: (up: number, down: number, reset: boolean) => void } | undefined;
  /** Give up: the client is closed. */
  drop(): void;
  /** Who connected to what (for a PROXY protocol header, and a peer's attach). */
  readonly origin: Origin | undefined;
}

/**
 * A stream whose bytes another carrier (a peer channel in the engine) can take over once its
 * tail is connected: `tailFd` (copied; the caller closes its socket after) becomes the
 * stream's far end, with `first` (what was read of the stream already) sent to it first;
 * `ended` reports the bytes each way (to the tail, from it) and whether it was reset.
 */
export interface Rebindable {
  rebindTo?(
    tailFd: number,
    first: Buffer | null,
    ended: (up: number, down: number, reset: boolean) => void,
  ): void;
}

/** What a head needs from its segment. */
export interface HeadOptions {
  /** Open connections allowed at once; the excess is refused (reset) at once. */
  maxConnections: number;
  dialTimeoutMs: number;
  /** A connection for JavaScript to serve. */
  onClient(client: Client): void;
  /** A connection ended (for the log); leave it out and the engine only counts, waking no one. */
  onClosed?(end: ConnectionEnd): void;
  /** Something worth a warning: a connection refused over the cap, accept failing (EMFILE). */
  onWarning(kind: 'refused' | 'accept-error', detail?: string): void;
  /**
   * A unix head's address as the user named it (`/path`, `@name`): what a PROXY v2 header
   * says the client connected to (the socket's own name is a /proc/self/fd one).
   */
  unixName?: string;
  /** `allow`: the only networks clients are taken from; the others are refused at accept. */
  allow?: readonly Cidr[];
  /**
   * `wake-on-data`: a client is held unread until its first byte, and only then counted,
   * served or given to onClient; one that closes first is forgotten.
   */
  wakeOnData?: boolean;
}

/**
 * A head, TCP or UDP: a listening socket it owns, which it reads only once accept() is called
 * (its tail is set first, so that no client arrives to find none), and gives up at close.
 */
export interface Head {
  /**
   * The listening sockets while the head listens (none after): one, or a port range's in port
   * order. A daemon taking over gets a copy; the head still owns them.
   */
  readonly fds: readonly number[];
  /** Start accepting (reading datagrams): once, after the tail is set or the trigger armed. */
  accept(): void;
  /** Stop accepting at once (the port is free); open connections go on until close(). */
  stopListening(): void;
  /** Stop listening and close every connection. Idempotent. */
  close(): Promise<void>;
}

/** A listening TCP head. */
export interface TcpHead extends Head {
  /**
   * Where connections go from now on: one tail in slot 0, the others emptied (null: nowhere
   * yet, every connection is a Client). Resolves once the mover has applied it: a connection
   * accepted after that goes to the new tail (or is a Client), never to the old.
   */
  setTail(tail: TailTarget | null): Promise<void>;
  /**
   * Put a tail in a slot (of several; null empties it). `key` names it for source affinity.
   * Resolves once the mover has applied it, as setTail.
   */
  setTailSlot(slot: number, tail: TailTarget | null, key?: string): Promise<void>;
  /** How a connection picks among the tails. */
  setBalance(policy: Policy): void;
  /** A health check of the tail in a slot passed or failed: a failed one gets no new connection. */
  setHealth(slot: number, up: boolean): void;
  /** Each slot's counters: open, total, failed dials, when a dial last succeeded and failed. */
  tailStats(): (TailStats | null)[];
  /**
   * A stream that arrived another way (a peer's attach), served like a new connection;
   * undefined over the cap. `origin`: the client it carries, as the peer said.
   */
  adopt(stream: Duplex, origin?: Origin): Client | undefined;
  /**
   * Let the mover itself dial a peer's stream naming segment `id` to the tails (a key that is
   * `owner`'s or has every right; native/streamdial.c). Optional: JavaScript's mover has none.
   */
  attachable?(id: string, owner: string): void;
  stats(): GroupStats;
  /**
   * Accept on these listening fds from now on (which the head owns), in place of the ones it
   * had (closed if still open): the head moved to a new namespace. Connections and counters stay.
   */
  relisten(fds: readonly number[]): void;
}
/** A tail's counters, as `tailStats` gives them. */
export interface TailStats {
  open: number;
  total: number;
  failed: number;
  okAt: number;
  failedAt: number;
}
/**
 * Open a head on a listening fd, or a port range's fds in port order (which it owns from now
 * on); it accepts once told to (accept()): until then clients wait in the sockets' backlog.
 */
export function openTcpHead(
  engine: Engine | null,
  fd: number | readonly number[],
  opts: HeadOptions,
): TcpHead {
  const fds = typeof fd === 'number' ? [fd] : fd;
  return engine ? new EngineHead(engine, fds, opts) : new NodeHead(fds, opts);
}
