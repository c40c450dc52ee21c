/**
 * A TCP head: a listening socket, the connections it accepts, and how they reach the tail.
 * Two movers, one face: the splice engine when the daemon has it (it accepts, dials and
 * moves bytes itself, and hands JavaScript only what needs a decision), else Node's own
 * sockets and pipe() (tcp.ts). Nothing above this file knows which one runs.
 *
 * A connection that JavaScript must serve (no tail yet: a trigger has to run; or the tail
 * is a peer, reached over TLS; or the engine's dial failed and must be retried) reaches the
 * segment as a Client, which it connects to the tail (toTail) or joins to a stream (join).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { WormholeError, errnoCode } from '../common/errors';
import { native } from '../native';
import { Balancer, type Policy, policyCode } from './balance';
import { dialWithRetry } from './dial';
import type { ClosedConnection, Engine, EngineGroup, EngineTail, GroupStats } from './engine';
import { type Origin, originOf, proxyHeader } from './proxyproto';
import { splice } from './tcp';

/** How a proxied connection ended, whichever mover carried it (for the access log). */
export type ConnectionEnd = Omit<ClosedConnection, 'id'>;

/** A stream's remote address as `host:port` (`[v6]:port`), when it is a socket. */
function remoteOf(stream: Duplex): string | undefined {
  if (!(stream instanceof net.Socket) || stream.remoteAddress === undefined) return undefined;
  const host = stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress;
  return `${host}:${stream.remotePort}`;
}

/** Where a head's connections go. */
export interface TailTarget extends EngineTail {
  /** For the JavaScript mover: a socket connected to the tail (rejects with the errno code). */
  connect(): Promise<net.Socket>;
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
  /** Give up: the client is closed. */
  drop(): void;
  /** Who connected to what (for a PROXY protocol header, and a peer's attach). */
  readonly origin: Origin | undefined;
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
}

/** A listening TCP head. */
export interface TcpHead {
  /**
   * Where connections go from now on: one tail in slot 0, the others emptied (null: nowhere
   * yet, every connection is a Client).
   */
  setTail(tail: TailTarget | null): void;
  /** Put a tail in a slot (of several; null empties it). `key` names it for source affinity. */
  setTailSlot(slot: number, tail: TailTarget | null, key?: string): void;
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
  stats(): GroupStats;
  /**
   * The listening socket while the head listens (-1 after): a daemon taking over gets a copy.
   * The head still owns it.
   */
  readonly fd: number;
  /** Stop accepting at once (the port is free); open connections go on until close(). */
  stopListening(): void;
  /**
   * Accept on this listening fd from now on (which the head owns), in place of the one it
   * had (closed if still open): the head moved to a new namespace. Connections and counters stay.
   */
  relisten(fd: number): void;
  /** Stop listening and close every connection. Idempotent. */
  close(): Promise<void>;
}

/** Open a head on a listening fd (which it owns from now on). */
export function openTcpHead(engine: Engine | null, fd: number, opts: HeadOptions): TcpHead {
  return engine ? new EngineHead(engine, fd, opts) : new NodeHead(fd, opts);
}

/** Counters kept in JavaScript, for what the JavaScript mover carries. */
function zeroStats(): GroupStats {
  return {
    open: 0,
    total: 0,
    refused: 0,
    bytesUp: 0,
    bytesDown: 0,
    dialFailures: 0,
    lastActive: 0,
    dialOkAt: 0,
    dialFailedAt: 0,
  };
}

/** A tail's counters, as `tailStats` gives them. */
export interface TailStats {
  open: number;
  total: number;
  failed: number;
  okAt: number;
  failedAt: number;
}

/** What both heads share: the tails, the streams moved by JavaScript, the abort on close. */
abstract class HeadBase implements TcpHead {
  protected readonly tails = new Balancer<TailTarget>();
  /** What the JavaScript mover counted per slot. */
  protected readonly jsTails: TailStats[] = [];
  protected readonly js = zeroStats();
  protected readonly streams = new Set<Duplex>();
  protected readonly abort = new AbortController();
  protected closed = false;

  constructor(
    protected readonly opts: HeadOptions,
    public fd: number,
  ) {}

  setTail(tail: TailTarget | null): void {
    for (let i = this.tails.slots.length - 1; i > 0; i--) if (this.tails.slots[i]) this.setTailSlot(i, null);
    this.setTailSlot(0, tail);
  }

  setTailSlot(slot: number, tail: TailTarget | null, key = tail?.what ?? ''): void {
    this.tails.set(slot, tail, key);
    this.jsTails[slot] = { open: 0, total: 0, failed: 0, okAt: 0, failedAt: 0 };
  }

  setBalance(policy: Policy): void {
    this.tails.policy = policy;
  }

  setHealth(slot: number, up: boolean): void {
    this.tails.setHealth(slot, up);
  }

  tailStats(): (TailStats | null)[] {
    return this.tails.slots.map((t, i) => (t ? this.jsTails[i] : null));
  }

  /** Is there a tail at all? */
  protected get hasTail(): boolean {
    return !this.tails.empty;
  }

  /** The tails' names, for messages. */
  protected get tailsText(): string {
    return this.tails.slots
      .filter((t): t is TailTarget => !!t)
      .map((t) => t.what)
      .join(', ');
  }

  abstract adopt(stream: Duplex, origin?: Origin): Client | undefined;
  abstract stats(): GroupStats;
  abstract stopListening(): void;
  abstract relisten(fd: number): void;
  abstract close(): Promise<void>;

  /**
   * Dial a tail with the JavaScript mover: the balancer's pick, then the next when one fails,
   * all of them again after a pause until the dial timeout. The socket, and what to call
   * when it closes (the tail's open count). A tail that wants a PROXY protocol header gets it
   * first (from `origin`), before pipe() moves any client byte.
   */
  protected async dialJs(
    client?: string,
    origin?: () => Origin | undefined,
  ): Promise<{ socket: net.Socket; closed: () => void }> {
    if (!this.hasTail) throw new WormholeError('NO_TAIL', 'the segment has no tail yet');
    const once = async (): Promise<{ socket: net.Socket; closed: () => void }> => {
      const tried = new Set<number>();
      let last: unknown = new WormholeError('NO_TAIL', 'the segment has no tail');
      for (let i = this.tails.pick(tried, client); i >= 0; i = this.tails.pick(tried, client)) {
        tried.add(i);
        const tail = this.tails.slots[i]!;
        const stats = this.jsTails[i];
        try {
          const socket = await tail.connect();
          if (tail.proxy) socket.write(proxyHeader(tail.proxy, origin?.()));
          stats.total++;
          stats.open++;
          stats.okAt = Date.now();
          const closedOnTail = this.openedOnTail(i);
          return {
            socket,
            closed: () => {
              stats.open--;
              closedOnTail();
            },
          };
        } catch (err) {
          // every failed dial counts, on the tail and the head, as the engine counts them
          stats.failed++;
          stats.failedAt = Date.now();
          this.js.dialFailures++;
          this.js.dialFailedAt = stats.failedAt;
          last = err;
        }
      }
      throw last;
    };
    return dialWithRetry(once, this.tailsText, this.opts.dialTimeoutMs, this.abort.signal);
  }

  /** A connection JavaScript carries to slot i opened (for least-conn); the function says it closed. */
  protected openedOnTail(slot: number): () => void {
    return this.tails.opened(slot);
  }

  /** Move a pair of streams with JavaScript; `done` runs once when both have closed. */
  protected moveJs(a: Duplex, b: Duplex, done: () => void, started = Date.now()): void {
    this.streams.add(a);
    this.streams.add(b);
    const client = remoteOf(a);
    this.js.lastActive = Date.now();
    splice(a, b, (st) => {
      this.streams.delete(a);
      this.streams.delete(b);
      this.js.bytesUp += st.up;
      this.js.bytesDown += st.down;
      this.js.lastActive = Date.now();
      done();
      this.opts.onClosed?.({ up: st.up, down: st.down, error: st.error, ms: Date.now() - started, client });
    });
  }

  /** A stream served entirely by JavaScript (a peer's attach, or any client of NodeHead). */
  protected streamClient(stream: Duplex, release: () => void, given?: Origin): Client {
    const started = Date.now();
    const origin = (): Origin | undefined =>
      given ??
      (stream instanceof net.Socket && !(stream instanceof tls.TLSSocket)
        ? originOf(stream, this.opts.unixName)
        : undefined);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      release();
    };
    this.streams.add(stream);
    stream.once('close', () => {
      this.streams.delete(stream);
    });
    return {
      get origin() {
        return origin();
      },
      toTail: async (onConnected) => {
        const dialed = await this.dialJs(remoteOf(stream)?.replace(/:\d+$/, ''), origin);
        const up = dialed.socket;
        this.js.dialOkAt = Date.now();
        const done = (): void => {
          dialed.closed();
          finish();
        };
        if (this.closed || stream.destroyed) {
          up.destroy();
          done();
          return;
        }
        onConnected?.();
        this.moveJs(stream, up, done, started);
      },
      join: (other) => this.moveJs(stream, other, finish, started),
      drop: () => {
        stream.destroy();
        finish();
      },
    };
  }

  protected destroyStreams(): void {
    this.abort.abort();
    for (const s of this.streams) s.destroy();
  }
}

/** The engine accepts, dials and moves; JavaScript hears of what needs it. */
class EngineHead extends HeadBase {
  private readonly group: EngineGroup;
  /** Client fds JavaScript holds (handed back), with who waits on a dial for each. */
  private readonly held = new Map<number, { resolve: () => void; reject: (e: Error) => void } | null>();
  /** Each slot's generation: one more at each setTailSlot (a count for the old tail is not the new one's). */
  private readonly slotGen: number[] = [];

  constructor(engine: Engine, fd: number, opts: HeadOptions) {
    super(opts, fd);
    this.group = engine.group(opts.maxConnections, opts.unixName, {
      closed: opts.onClosed && ((c) => opts.onClosed?.(c)),
      handoff: (cfd, err) => this.handoff(cfd, err),
      dialed: (cfd) => {
        const waiter = this.held.get(cfd);
        this.held.delete(cfd);
        waiter?.resolve();
      },
      refused: () => opts.onWarning('refused'),
      acceptError: (err) => opts.onWarning('accept-error', err),
    });
    this.group.listen(fd);
    // least-conn in JavaScript reads the engine's counts, which hold every open connection
    this.tails.openElsewhere = () => this.group.tailStats().map((t) => t?.open);
  }

  /** The engine counts JavaScript's connections to a tail with its own: one count per tail. */
  protected override openedOnTail(slot: number): () => void {
    const gen = this.slotGen[slot];
    this.group.countOnTail(slot, 1);
    return () => {
      // (a slot given a new tail since has its count started again)
      if (this.slotGen[slot] === gen) this.group.countOnTail(slot, -1);
    };
  }

  override setTailSlot(slot: number, tail: TailTarget | null, key = tail?.what ?? ''): void {
    super.setTailSlot(slot, tail, key);
    this.slotGen[slot] = (this.slotGen[slot] ?? 0) + 1;
    // (the same key as the balancer's: a client maps to the same tail with either mover)
    this.group.setTail(
      slot,
      tail && {
        nsFd: tail.nsFd,
        host: tail.host,
        port: tail.port,
        path: tail.path,
        rootFd: tail.rootFd,
        proxy: tail.proxy,
        key,
      },
    );
  }

  override setBalance(policy: Policy): void {
    super.setBalance(policy);
    this.group.setBalance(policyCode(policy));
  }

  override setHealth(slot: number, up: boolean): void {
    super.setHealth(slot, up);
    this.group.setHealth(slot, up);
  }

  override tailStats(): (TailStats | null)[] {
    const engine = this.group.tailStats();
    return super.tailStats().map((js, i) => {
      const e = engine[i];
      if (!js || !e) return js;
      return {
        open: e.open, // (JavaScript's own are in it: openedOnTail)
        total: js.total + e.total,
        failed: js.failed + e.failed,
        okAt: Math.max(js.okAt, e.okAt),
        failedAt: Math.max(js.failedAt, e.failedAt),
      };
    });
  }

  private handoff(fd: number, err: string | undefined): void {
    const waiter = this.held.get(fd);
    if (waiter) {
      // the answer to a dial() of ours: the retry loop decides
      this.held.set(fd, null);
      const e = new Error(`connect: ${err}`) as NodeJS.ErrnoException;
      e.code = err;
      waiter.reject(e);
      return;
    }
    if (this.closed) {
      this.dropFd(fd);
      return;
    }
    this.held.set(fd, null);
    this.opts.onClient(this.fdClient(fd));
  }

  private dropFd(fd: number): void {
    this.held.delete(fd);
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    this.group.release();
  }

  /** A client fd's two ends, read without reading from it (it may go back to the engine). */
  private fdOrigin(fd: number): Origin | undefined {
    let got: [number, string, number, string, number];
    try {
      got = native().fdOrigin(fd);
    } catch {
      return undefined; // gone already
    }
    const [family, src, srcPort, dst, dstPort] = got;
    if (family === 4 || family === 6)
      return { src: { host: src, port: srcPort }, dst: { host: dst, port: dstPort } };
    if (family === 0) return { src: { path: src }, dst: { path: this.opts.unixName ?? dst } };
    return undefined;
  }

  /** A client fd the engine gave back: dialed again by the engine, or joined by JavaScript. */
  private fdClient(fd: number): Client {
    const origin = (): Origin | undefined => this.fdOrigin(fd);
    const dialOnce = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        if (this.closed) return reject(new WormholeError('ABORTED', 'the segment closed'));
        this.held.set(fd, { resolve, reject });
        this.group.dial(fd);
      });
    return {
      get origin() {
        return origin();
      },
      toTail: async (onConnected) => {
        if (!this.hasTail) throw new WormholeError('NO_TAIL', 'the segment has no tail yet');
        try {
          await dialWithRetry(dialOnce, this.tailsText, this.opts.dialTimeoutMs, this.abort.signal);
          onConnected?.();
        } catch (err) {
          // the engine handed it back for the last time (or never took it): ours to close
          if (this.held.has(fd)) this.dropFd(fd);
          throw err;
        }
      },
      join: (stream) => {
        this.held.delete(fd);
        const client = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
        client.on('error', () => undefined);
        this.moveJs(client, stream, () => this.group.release());
      },
      drop: () => {
        if (this.held.has(fd)) this.dropFd(fd);
      },
    };
  }

  adopt(stream: Duplex, origin?: Origin): Client | undefined {
    if (!this.group.acquire()) {
      this.opts.onWarning('refused');
      return undefined;
    }
    return this.streamClient(stream, () => this.group.release(), origin);
  }

  stats(): GroupStats {
    const s = this.group.stats();
    return {
      ...s,
      bytesUp: s.bytesUp + this.js.bytesUp,
      bytesDown: s.bytesDown + this.js.bytesDown,
      dialFailures: s.dialFailures + this.js.dialFailures,
      lastActive: Math.max(s.lastActive, this.js.lastActive),
      dialOkAt: Math.max(s.dialOkAt, this.js.dialOkAt),
      dialFailedAt: Math.max(s.dialFailedAt, this.js.dialFailedAt),
    };
  }

  stopListening(): void {
    this.fd = -1;
    this.group.unlisten();
  }

  relisten(fd: number): void {
    if (this.closed) {
      fs.closeSync(fd);
      return;
    }
    // the engine runs the two in order: the old fd is closed before the new one is watched
    this.group.unlisten();
    this.group.listen(fd);
    this.fd = fd;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fd = -1;
    this.destroyStreams();
    for (const [fd, waiter] of [...this.held]) {
      this.held.delete(fd);
      if (waiter) {
        // the engine has it; closing the group closes it
        waiter.reject(new WormholeError('ABORTED', 'the segment closed'));
        continue;
      }
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    await this.group.close();
  }
}

/** The fallback: Node accepts and pipe() moves, as before the engine. */
class NodeHead extends HeadBase {
  private server: net.Server;

  constructor(fd: number, opts: HeadOptions) {
    super(opts, fd);
    this.server = this.serverOn(fd);
  }

  private serverOn(fd: number): net.Server {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      socket.on('error', () => undefined);
      const client = this.adopt(socket);
      if (!client) socket.resetAndDestroy();
      else this.opts.onClient(client);
    });
    server.on('error', (err) => this.opts.onWarning('accept-error', errnoCode(err) ?? err.message));
    server.listen({ fd });
    return server;
  }

  adopt(stream: Duplex, origin?: Origin): Client | undefined {
    if (this.closed || this.js.open >= this.opts.maxConnections) {
      this.js.refused++;
      this.opts.onWarning('refused');
      return undefined;
    }
    this.js.open++;
    this.js.total++;
    if (stream instanceof net.Socket) stream.setNoDelay(true);
    return this.streamClient(stream, () => this.js.open--, origin);
  }

  stats(): GroupStats {
    return { ...this.js };
  }

  stopListening(): void {
    this.fd = -1;
    if (this.server.listening) this.server.close();
  }

  relisten(fd: number): void {
    if (this.closed) {
      fs.closeSync(fd);
      return;
    }
    this.stopListening();
    this.server = this.serverOn(fd);
    this.fd = fd;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fd = -1;
    const closed = new Promise<void>((resolve) => {
      if (this.server.listening) this.server.close(() => resolve());
      else resolve();
    });
    this.destroyStreams();
    await closed;
  }
}
