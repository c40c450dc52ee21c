/**
 * A TCP head whose connections the splice engine (native/engine.c) accepts, dials and moves;
 * JavaScript hears only of what needs it (a client with no tail yet, a failed dial).
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { packCidrs } from '../api/cidr';
import { WormholeError } from '../common/errors';
import { placed } from '../common/slots';
import { native } from '../native';
import { type OpenElsewhere, type Policy, policyCode } from './balance';
import { dialWithRetry } from './dial';
import type { ClosedConnection, Engine, EngineGroup, GroupEvents, GroupStats } from './engine';
import type { Client, HeadOptions, TailStats, TailTarget } from './head';
import { HeadBase, closeQuietly } from './headbase';
import type { Origin } from './proxyproto';

/** The engine accepts, dials and moves; JavaScript hears of what needs it. */
export class EngineHead extends HeadBase {
  private readonly group: EngineGroup;
  /**
   * Client fds JavaScript holds (handed back), with who waits on a dial for each; made at the
   * first (an empty Map is 184 bytes, and an idle segment's head never holds one: issue 20).
   */
  private held: Map<number, { resolve: () => void; reject: (e: Error) => void } | null> | undefined;
  /**
   * Each slot's generation: one more at each setTailSlot (a count for the old tail is not the
   * new one's). Made at the first connection JavaScript counts on a tail (idle: never).
   */
  private slotGen: number[] | undefined;

  constructor(engine: Engine, fds: readonly number[], opts: HeadOptions) {
    super(opts, fds);
    this.group = engine.group(
      opts.maxConnections,
      opts.unixName,
      // (one object for the five, not a closure each: issue 20's memory per idle segment)
      opts.onClosed ? new ReportingEvents(this, opts) : new HeadEvents(this, opts),
      // (a tail that drops SYNs is given up after it, not after the kernel's ~2 minutes)
      opts.dialTimeoutMs,
      opts.allow && packCidrs(opts.allow),
      opts.wakeOnData ?? false,
    );
  }

  /** least-conn in JavaScript reads the engine's counts, which hold every open connection. */
  protected override get elsewhere(): OpenElsewhere {
    return this;
  }

  openElsewhere(): readonly (number | undefined)[] {
    return this.group.tailStats().map((t) => t?.open);
  }

  /** The engine counts JavaScript's connections to a tail with its own: one count per tail. */
  protected override openedOnTail(slot: number): () => void {
    const gens = (this.slotGen ??= []);
    const gen = gens[slot] ?? 0;
    this.group.countOnTail(slot, 1);
    return () => {
      // (a slot given a new tail since has its count started again)
      if ((this.slotGen?.[slot] ?? 0) === gen) this.group.countOnTail(slot, -1);
    };
  }

  protected listenOn(fds: readonly number[]): void {
    // (a port range's sockets: one group in the engine, not an object per port)
    this.group.listen(fds);
  }

  protected unlistenMover(): void {
    this.group.unlisten();
  }

  /**
   * The engine dials from inside the tail's namespace (a TCP tail, an abstract name) and looks
   * a unix `/path` up in the tail's filesystem root: both opened here, and closed once the
   * engine has its own copies. An empty slot is sent at once (before any await). Resolves
   * once the engine thread has applied the change: a connection accepted after that goes
   * where the slot says now, never where it said before.
   */
  override async setTailSlot(slot: number, tail: TailTarget | null, key = tail?.what ?? ''): Promise<void> {
    if (this.slotGen) this.slotGen = placed(this.slotGen, slot, (this.slotGen[slot] ?? 0) + 1);
    if (!tail) {
      this.setJsTail(slot, null, key);
      return this.group.setTail(slot, null);
    }
    const path = tail.path;
    const inNs = tail.openNamespace && (path === undefined || path.startsWith('@'));
    const nsFd = inNs ? await tail.openNamespace!() : -1;
    let rootFd = -1;
    let applied: Promise<void>;
    try {
      if (path?.startsWith('/') && tail.openRoot) rootFd = await tail.openRoot();
      this.setJsTail(slot, tail, key);
      applied = this.group.setTail(slot, {
        nsFd,
        host: tail.host,
        port: tail.port,
        path,
        rootFd: path === undefined ? undefined : rootFd,
        proxy: tail.proxy,
        mark: tail.mark,
        span: tail.span,
        // (the same key as the balancer's: a client maps to the same tail with either mover)
        key,
      });
    } finally {
      if (nsFd >= 0) closeQuietly(nsFd);
      if (rootFd >= 0) closeQuietly(rootFd);
    }
    await applied;
  }

  attachable(id: string, owner: string): void {
    this.group.setAttachable({ id, owner });
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

  /** A client fd the engine gave back (GroupEvents.handoff). */
  handoff(fd: number, err: string | undefined, spentMs: number): void {
    const held = (this.held ??= new Map());
    const waiter = held.get(fd);
    if (waiter) {
      // the answer to a dial() of ours: the retry loop decides
      held.set(fd, null);
      const e = new Error(`connect: ${err}`) as NodeJS.ErrnoException;
      e.code = err;
      waiter.reject(e);
      return;
    }
    if (this.closed) {
      this.dropFd(fd);
      return;
    }
    held.set(fd, null);
    this.opts.onClient(this.fdClient(fd, spentMs));
  }

  /** The engine connected a client fd given with dial() (GroupEvents.dialed). */
  dialed(fd: number): void {
    const waiter = this.held?.get(fd);
    this.held?.delete(fd);
    waiter?.resolve();
  }

  private dropFd(fd: number): void {
    this.held?.delete(fd);
    closeQuietly(fd);
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

  /**
   * A client fd the engine gave back: dialed again by the engine, or joined by JavaScript.
   * `spentMs`: how long the engine dialed it already, taken off the dial timeout of its retries.
   */
  private fdClient(fd: number, spentMs: number): Client {
    const origin = (): Origin | undefined => this.fdOrigin(fd);
    const dialOnce = (leftMs: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        if (this.closed) return reject(new WormholeError('ABORTED', 'the segment closed'));
        (this.held ??= new Map()).set(fd, { resolve, reject });
        this.group.dial(fd, leftMs);
      });
    return {
      get origin() {
        return origin();
      },
      toTail: async (onConnected) => {
        if (!this.hasTail) throw new WormholeError('NO_TAIL', 'the segment has no tail yet');
        try {
          await dialWithRetry(dialOnce, this.tailsText, this.opts.dialTimeoutMs, this.abort.signal, spentMs);
          onConnected?.();
        } catch (err) {
          // the engine handed it back for the last time (or never took it): ours to close
          if (this.held?.has(fd)) this.dropFd(fd);
          throw err;
        }
      },
      join: (stream) => {
        this.held?.delete(fd);
        const client = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
        client.on('error', () => undefined);
        this.moveJs(client, stream, () => this.group.release());
      },
      drop: () => {
        if (this.held?.has(fd)) this.dropFd(fd);
      },
      takeFd: () => {
        if (this.closed || !this.held?.has(fd)) return undefined;
        this.held.delete(fd);
        const started = Date.now();
        const from = origin()?.src;
        const client =
          from && 'host' in from
            ? `${from.host.includes(':') ? `[${from.host}]` : from.host}:${from.port}`
            : undefined;
        this.js.lastActive = started;
        return { fd, ended: this.carriedEnd(started, client) };
      },
    };
  }

  /**
   * What a client's connection the engine carries to a peer runs once it ends. Made here, not
   * in fdClient: a closure made there would keep fdClient's scope (its closures, the client)
   * for as long as the connection lives, idle or not (issue 17: idle streams' memory).
   */
  private carriedEnd(
    started: number,
    client: string | undefined,
  ): (up: number, down: number, reset: boolean) => void {
    return (up, down, reset) => {
      this.js.bytesUp += up;
      this.js.bytesDown += down;
      this.js.lastActive = Date.now();
      this.group.release();
      const error = reset ? 'ECONNRESET' : undefined;
      this.opts.onClosed?.({ up, down, error, ms: Date.now() - started, client });
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
    const js = this.jsSeen;
    return {
      ...s,
      bytesUp: s.bytesUp + js.bytesUp,
      bytesDown: s.bytesDown + js.bytesDown,
      dialFailures: s.dialFailures + js.dialFailures,
      lastActive: Math.max(s.lastActive, js.lastActive),
      dialOkAt: Math.max(s.dialOkAt, js.dialOkAt),
      dialFailedAt: Math.max(s.dialFailedAt, js.dialFailedAt),
    };
  }

  relisten(fds: readonly number[]): void {
    // the engine runs the two in order: the old fds are closed before the new ones are watched
    this.swapFd(fds);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.moverListens) this.letGo(); // (fds the engine never had are closed here)
    this.fds = [];
    this.destroyStreams();
    for (const [fd, waiter] of [...(this.held ?? [])]) {
      this.held?.delete(fd);
      if (waiter) {
        // the engine has it; closing the group closes it
        waiter.reject(new WormholeError('ABORTED', 'the segment closed'));
        continue;
      }
      closeQuietly(fd);
    }
    await this.group.close();
  }
}

/** What the engine tells an engine head's group, as methods of one object. */
class HeadEvents implements GroupEvents {
  constructor(
    protected readonly head: EngineHead,
    protected readonly opts: HeadOptions,
  ) {}

  handoff(fd: number, err: string | undefined, spentMs: number): void {
    this.head.handoff(fd, err, spentMs);
  }

  dialed(fd: number): void {
    this.head.dialed(fd);
  }

  refused(): void {
    this.opts.onWarning('refused');
  }

  acceptError(err: string): void {
    this.opts.onWarning('accept-error', err);
  }
}

/**
 * The same, with each connection's end: only for a head whose options want it (without
 * `closed` the engine only counts, waking no one).
 */
class ReportingEvents extends HeadEvents {
  closed(c: ClosedConnection): void {
    this.opts.onClosed?.(c);
  }
}
