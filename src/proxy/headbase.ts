/**
 * What both TCP heads share (head.ts): the tails and their picking, the streams JavaScript
 * moves, the listening fd until the mover takes it, the abort on close.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { WormholeError } from '../common/errors';
import { placed } from '../common/slots';
import { Balancer, type OpenElsewhere, type Policy } from './balance';
import { dialWithRetry } from './dial';
import type { GroupStats } from './engine';
import type { Client, HeadOptions, Rebindable, TailStats, TailTarget, TcpHead } from './head';
import { type Origin, originOf, proxyHeader } from './proxyproto';
import { splice } from './tcp';

/** A stream's remote address as `host:port` (`[v6]:port`), when it is a socket. */
function remoteOf(stream: Duplex): string | undefined {
  if (!(stream instanceof net.Socket) || stream.remoteAddress === undefined) return undefined;
  const host = stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress;
  return `${host}:${stream.remotePort}`;
}
/*
 * The three below are made here, at the module's top, not inside streamClient: a closure
 * made there keeps streamClient's whole scope (the stream's socket, its listeners, the
 * request's state) alive for as long as the closure lives, and the one a rebound stream hands
 * the engine lives as long as the stream, idle or not (issue 17: idle streams' memory).
 */

/** `f`, run at most once however often it is called. */
function once(f: () => void): () => void {
  let settled = false;
  return () => {
    if (settled) return;
    settled = true;
    f();
  };
}

/** `a`, then `b`. */
function inTurn(a: () => void, b: () => void): () => void {
  return () => {
    a();
    b();
  };
}

/** One fewer open connection on a tail's JavaScript counters, then `onTail` (its balancer's). */
function countDown(stats: TailStats, onTail: () => void): () => void {
  return () => {
    stats.open--;
    onTail();
  };
}

/** Close an fd that may be closed already. */
export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** Counters kept in JavaScript, for what the JavaScript mover carries. */
export function zeroStats(): GroupStats {
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
/** A tail's JavaScript counters before it carried anything. */
function zeroTailStats(): TailStats {
  return { open: 0, total: 0, failed: 0, okAt: 0, failedAt: 0 };
}
/** A head's counters before JavaScript has moved anything (read only, shared). */
const NO_STATS: Readonly<GroupStats> = Object.freeze(zeroStats());

/** What both heads share: the tails, the streams moved by JavaScript, the abort on close. */
export abstract class HeadBase implements TcpHead {
  protected readonly tails = new Balancer<TailTarget>();
  /**
   * What the JavaScript mover counted per slot, and in all: made at the first connection it
   * moves (an engine head's idle segment never has one: their 0.2 KiB was issue 20's).
   */
  private jsTails: (TailStats | undefined)[] | undefined;
  private jsCounts: GroupStats | undefined;
  /**
   * The streams JavaScript moves now; made at the first (an empty Set is 152 bytes, and an
   * engine head's idle segment never has one: issue 20's memory per idle segment).
   */
  protected streams: Set<Duplex> | undefined;
  /** Aborted at close: the dials JavaScript retries stop. Made at the first dial (idle: none). */
  private aborter: AbortController | undefined;
  protected closed = false;
  /** Set by accept(): connections are welcome (a listening fd given later is accepted on too). */
  protected accepting = false;
  /** The mover has the listening fds (until then they are the head's own, unread). */
  protected moverListens = false;

  /** `fds`: the listening sockets, one, or a port range's in port order (empty: none). */
  constructor(
    protected readonly opts: HeadOptions,
    public fds: readonly number[],
  ) {}

  /** The first listening fd (-1: none). */
  get fd(): number {
    return this.fds[0] ?? -1;
  }

  async setTail(tail: TailTarget | null): Promise<void> {
    const emptied: Promise<void>[] = [];
    for (let i = this.tails.size - 1; i > 0; i--)
      if (this.tails.tail(i)) emptied.push(this.setTailSlot(i, null));
    await Promise.all([...emptied, this.setTailSlot(0, tail)]);
  }

  setTailSlot(slot: number, tail: TailTarget | null, key?: string): Promise<void> {
    this.setJsTail(slot, tail, key);
    return Promise.resolve();
  }

  /** The tail in a slot as the JavaScript mover sees it (its counters start again). */
  protected setJsTail(slot: number, tail: TailTarget | null, key = tail?.what ?? ''): void {
    this.tails.set(slot, tail, key);
    if (this.jsTails && slot < this.jsTails.length) this.jsTails[slot] = undefined;
  }

  /** A slot's JavaScript counters, to count in (made at its first). */
  private jsTail(slot: number): TailStats {
    const have = this.jsTails?.[slot];
    if (have) return have;
    const made = zeroTailStats();
    this.jsTails = placed(this.jsTails ?? [], slot, made);
    return made;
  }

  /** The head's JavaScript counters, to count in (made at the first). */
  protected get js(): GroupStats {
    return (this.jsCounts ??= zeroStats());
  }

  /** The same, to read: zeros until the first. */
  protected get jsSeen(): Readonly<GroupStats> {
    return this.jsCounts ?? NO_STATS;
  }

  setBalance(policy: Policy): void {
    this.tails.policy = policy;
  }

  setHealth(slot: number, up: boolean): void {
    this.tails.setHealth(slot, up);
  }

  tailStats(): (TailStats | null)[] {
    return this.tails.slots.map((t, i) => (t ? (this.jsTails?.[i] ?? zeroTailStats()) : null));
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
  abstract relisten(fds: readonly number[]): void;
  abstract close(): Promise<void>;
  /** Hand the listening fds to the mover, which accepts on them from now on. */
  protected abstract listenOn(fds: readonly number[]): void;
  /** The mover stops accepting on its fds (and closes them). */
  protected abstract unlistenMover(): void;

  accept(): void {
    if (this.accepting || this.closed) return;
    this.accepting = true;
    this.give();
  }

  /** The mover takes the listening fds, if there are any and connections are welcome. */
  private give(): void {
    if (!this.accepting || this.moverListens || this.closed || this.fds.length === 0) return;
    this.moverListens = true;
    this.listenOn(this.fds);
  }

  stopListening(): void {
    this.letGo();
  }

  /** No more listening: the mover lets go of the fds, or (never given them) they are closed here. */
  protected letGo(): void {
    if (this.moverListens) this.unlistenMover();
    else for (const fd of this.fds) closeQuietly(fd);
    this.moverListens = false;
    this.fds = [];
  }

  /**
   * Listen on new fds in place of the old (the head moved to a new namespace): accepted on
   * at once if accept() was called, else kept for it.
   */
  protected swapFd(fds: readonly number[]): void {
    if (this.closed) {
      for (const fd of fds) fs.closeSync(fd);
      return;
    }
    this.letGo();
    this.fds = fds;
    this.give();
  }

  /**
   * Dial a tail with the JavaScript mover: the balancer's pick, then the next when one fails
   * or does not answer in the time left, all of them again after a pause until the dial timeout. The socket, and what to call
   * when it closes (the tail's open count). A tail that wants a PROXY protocol header gets it
   * first (from `origin`), before pipe() moves any client byte.
   */
  protected async dialJs(
    client?: string,
    origin?: () => Origin | undefined,
    portOffset = 0,
  ): Promise<{ socket: net.Socket; closed: () => void }> {
    if (!this.hasTail) throw new WormholeError('NO_TAIL', 'the segment has no tail yet');
    const once = async (leftMs: number): Promise<{ socket: net.Socket; closed: () => void }> => {
      const tried = new Set<number>();
      let last: unknown = new WormholeError('NO_TAIL', 'the segment has no tail');
      const pick = (): number => this.tails.pick(tried, client, this.elsewhere);
      for (let i = pick(); i >= 0; i = pick()) {
        tried.add(i);
        const tail = this.tails.tail(i)!;
        const stats = this.jsTail(i);
        try {
          // (each tail is given what is left of the dial timeout: one that drops SYNs is left)
          // (a port range's client: its place in the head's range, for a span tail)
          const socket = await tail.connect(leftMs, portOffset);
          if (tail.proxy) socket.write(proxyHeader(tail.proxy, origin?.()));
          stats.total++;
          stats.open++;
          stats.okAt = Date.now();
          // (made at the top: a closure made here would keep `origin`, so the client's stream)
          return { socket, closed: countDown(stats, this.openedOnTail(i)) };
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

  /** Who counts, for least-conn, the connections another mover carries to the same tails. */
  protected get elsewhere(): OpenElsewhere | undefined {
    return undefined;
  }

  /** A connection JavaScript carries to slot i opened (for least-conn); the function says it closed. */
  protected openedOnTail(slot: number): () => void {
    return this.tails.opened(slot);
  }

  /** Move a pair of streams with JavaScript; `done` runs once when both have closed. */
  protected moveJs(a: Duplex, b: Duplex, done: () => void, started = Date.now()): void {
    const streams = (this.streams ??= new Set());
    streams.add(a);
    streams.add(b);
    const client = remoteOf(a);
    this.js.lastActive = Date.now();
    splice(a, b, (st) => {
      streams.delete(a);
      streams.delete(b);
      this.js.bytesUp += st.up;
      this.js.bytesDown += st.down;
      this.js.lastActive = Date.now();
      done();
      this.opts.onClosed?.({ up: st.up, down: st.down, error: st.error, ms: Date.now() - started, client });
    });
  }

  /**
   * A stream the engine carries (a peer's, on its channel) takes the tail's socket as its end:
   * no JavaScript per byte from here. Only when nothing waits in JavaScript on the tail's side
   * (the tail said nothing yet, all written); false: the JavaScript mover joins them. Once
   * it ends, `closed` (the tail's count) and `finish` (the segment's) run.
   */
  private rebind(
    stream: Duplex,
    up: net.Socket,
    closed: () => void,
    finish: () => void,
    started: number,
  ): boolean {
    type Handle = { fd?: number; readStop?: () => number };
    const rebindTo = (stream as Rebindable).rebindTo;
    const uh = (up as unknown as { _handle?: Handle })._handle;
    const sh = (stream as unknown as { _handle?: Handle })._handle;
    if (!rebindTo || typeof uh?.fd !== 'number' || !uh.readStop || !sh?.readStop) return false;
    if (up.readableLength > 0 || up.writableLength > 0 || stream.writableLength > 0) return false;
    uh.readStop();
    sh.readStop();
    stream.pause();
    const first = stream.readableLength > 0 ? (stream.read(stream.readableLength) as Buffer) : null;
    this.js.lastActive = Date.now();
    rebindTo.call(stream, uh.fd, first, (toTail, fromTail, reset) => {
      this.js.bytesUp += toTail;
      this.js.bytesDown += fromTail;
      this.js.lastActive = Date.now();
      closed();
      finish();
      const error = reset ? 'ECONNRESET' : undefined;
      this.opts.onClosed?.({
        up: toTail,
        down: fromTail,
        error,
        ms: Date.now() - started,
        client: undefined,
      });
    });
    // (the engine has its own copies of both fds: these close no connection)
    up.destroy();
    stream.destroy();
    return true;
  }

  /**
   * A stream served entirely by JavaScript (a peer's attach, or any client of NodeHead);
   * `portOffset`: a range head's client, its place in the range.
   */
  protected streamClient(stream: Duplex, release: () => void, given?: Origin, portOffset = 0): Client {
    const started = Date.now();
    const origin = (): Origin | undefined =>
      given ??
      (stream instanceof net.Socket && !(stream instanceof tls.TLSSocket)
        ? originOf(stream, this.opts.unixName)
        : undefined);
    const finish = once(release);
    (this.streams ??= new Set()).add(stream);
    stream.once('close', () => {
      this.streams?.delete(stream);
    });
    return {
      get origin() {
        return origin();
      },
      toTail: async (onConnected) => {
        const dialed = await this.dialJs(remoteOf(stream)?.replace(/:\d+$/, ''), origin, portOffset);
        const up = dialed.socket;
        this.js.dialOkAt = Date.now();
        if (this.closed || stream.destroyed) {
          up.destroy();
          dialed.closed();
          finish();
          return;
        }
        onConnected?.();
        if (!this.rebind(stream, up, dialed.closed, finish, started))
          this.moveJs(stream, up, inTurn(dialed.closed, finish), started);
      },
      join: (other) => this.moveJs(stream, other, finish, started),
      drop: () => {
        stream.destroy();
        finish();
      },
    };
  }

  /** What ends the dials JavaScript retries when the head closes (aborted at once once it has closed). */
  protected get abort(): AbortController {
    if (!this.aborter) {
      this.aborter = new AbortController();
      if (this.closed) this.aborter.abort();
    }
    return this.aborter;
  }

  protected destroyStreams(): void {
    this.aborter?.abort();
    for (const s of this.streams ?? []) s.destroy();
  }
}
