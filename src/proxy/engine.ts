/**
 * The TypeScript face of the splice engine (native/engine.h and its rooms): one per daemon,
 * made by the composition root and handed down. It turns the engine's batched events into
 * calls on the group (one per TCP head) they belong to; it keeps no object per connection.
 * The numbers it reads events and counters with are the engine's own (engineConstants).
 */
import { constants } from 'node:os';
import { type EngineConstants, type EngineHandle, type GroupHandle, native } from '../native';
import { closeQuietly } from './headbase';

/** errno numbers back to their names (ECONNRESET...), for what the engine reports. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));

/** The name of an errno number the engine reported (undefined for 0). */
export function errnoName(n: number): string | undefined {
  return n === 0 ? undefined : (ERRNO_NAMES.get(n) ?? `errno ${n}`);
}

/** The engine's numbers: event kinds and size, counter slots (native/engine.h). */
function k(): EngineConstants {
  return native().engineConstants;
}

/** How a connection the engine carried ended, for the access log. */
export interface ClosedConnection {
  id: number;
  up: number;
  down: number;
  /** The error that ended it (ECONNRESET...), undefined for a clean close. */
  error: string | undefined;
  /** How long it was open. */
  ms: number;
  /** The client's address:port (`[v6]:port` for IPv6), when the engine could read it. */
  client: string | undefined;
}

/** An event's client address (its last 16 bytes, family and port in f). */
function clientOf(ev: Float64Array, i: number): string | undefined {
  const f = ev[i + 7];
  if (f === 0) return undefined;
  const family = Math.floor(f / 65536);
  const port = f % 65536;
  const bytes = new Uint8Array(ev.buffer, ev.byteOffset + (i + k().eventAddress) * 8, 16);
  if (family === 4) return `${bytes.subarray(0, 4).join('.')}:${port}`;
  const words: string[] = [];
  for (let k = 0; k < 16; k += 2) words.push(((bytes[k] << 8) | bytes[k + 1]).toString(16));
  // (the full form; a reader of the log recognises it, and no compression rules to get wrong)
  return `[${words.join(':')}]:${port}`;
}

/** What a group is told by the engine. */
export interface GroupEvents {
  /** A connection ended (bytes, how, how long, who). Optional: without it the engine only counts. */
  closed?(c: ClosedConnection): void;
  /**
   * A client fd comes back to JavaScript, untouched: no tail set, or its dial failed
   * (ETIMEDOUT: no tail answered within the dial timeout); `spentMs`: how long it was dialed.
   */
  handoff(fd: number, dialError: string | undefined, spentMs: number): void;
  /** A client fd given with dial() is connected to the tail and moving. */
  dialed(fd: number, id: number): void;
  /** A connection over the cap was refused. */
  refused(): void;
  /** Accepting failed (EMFILE...); the engine pauses this head for a moment. */
  acceptError(error: string): void;
}

/** Counters of one group, read from the engine at any time. */
export interface GroupStats {
  open: number;
  total: number;
  refused: number;
  bytesUp: number;
  bytesDown: number;
  dialFailures: number;
  /** When a byte last moved or a connection was last accepted (ms since the epoch; 0: never). */
  lastActive: number;
  /** When a dial to the tail last succeeded, and last failed (ms since the epoch; 0: never). */
  dialOkAt: number;
  dialFailedAt: number;
}

/** One tail slot's counters, as the engine keeps them. */
export interface EngineTailStats {
  open: number;
  total: number;
  failed: number;
  okAt: number;
  failedAt: number;
}

/** Where a group's connections go (see EngineGroup.setTail). */
export interface EngineTail {
  /** Dial host:port from inside the namespace nsFd (-1: the daemon's own). */
  nsFd: number;
  host: string;
  port: number;
  /**
   * A unix tail instead: `@name` (abstract, in nsFd's namespace) or `/path`, looked up at each
   * dial inside the filesystem root rootFd (the engine keeps its own copy).
   */
  path?: string;
  rootFd?: number;
  /** The PROXY protocol version each connection to the tail starts with. */
  proxy?: 1 | 2;
  /** Transparent: each dial is from the client's own address, its packets marked so. */
  mark?: number;
  /** The name source affinity hashes (the JavaScript mover's pick hashes the same; default: the address). */
  key?: string;
  /** A port range's tail: a client of the head's port i goes to port + i. */
  span?: boolean;
}

/**
 * The engine's own figures: what its grown pipes may hold beyond their first size now
 * (bytes), the budget that bounds it, and how many pipes were left small for want of it.
 */
export interface EngineStats {
  pipeGrown: number;
  pipeBudget: number;
  pipeDenied: number;
}

/** One head's share of the engine. */
export class EngineGroup {
  private closing: Promise<void> | undefined;
  /** The counters as they were when close was asked: the engine frees them after. */
  private last: GroupStats | undefined;
  /** Set by the engine when it is done with the group. */
  onGone: (() => void) | undefined;
  /**
   * setTail calls the engine has not applied yet, in the order sent: the command's number, who
   * waits. None: undefined (an idle group kept an empty array, grown by its first push: 0.1
   * KiB of each idle segment with 10,000 of them, issue 20).
   */
  private unapplied: { seq: number; done: () => void }[] | undefined;

  constructor(
    private readonly engine: Engine,
    readonly handle: GroupHandle,
    readonly events: GroupEvents,
  ) {}

  /**
   * The engine accepts on these listening fds from now on (it owns them): one, or a port
   * range's in port order, held by the engine as one group.
   */
  listen(fds: readonly number[]): void {
    native().groupListen(this.engine.handle, this.handle, fds.length === 1 ? fds[0] : [...fds]);
  }

  /** Stop accepting; open connections go on. */
  unlisten(): void {
    if (!this.closing) native().groupUnlisten(this.engine.handle, this.handle);
  }

  /**
   * Where the engine dials, in one of the group's tail slots: a host:port made from inside the
   * namespace nsFd (-1: its own), or a unix `path` (`@name` in nsFd's namespace; `/path`
   * inside the root rootFd); each connection to it starting with a PROXY protocol header when
   * `proxy` is given. null empties the slot. The command is sent at once (the fds may be
   * closed on return: the engine has its own copies); the promise resolves once the engine
   * thread has applied it, so that a connection accepted after that is picked with the new
   * tail, never the old. It resolves too if the group closes or the engine stops first (no
   * connection will be picked any more), so it never waits for ever. A bad tail throws.
   */
  setTail(slot: number, tail: EngineTail | null): Promise<void> {
    if (this.closing) return Promise.resolve();
    const { engine, handle } = this;
    let given = null;
    if (tail !== null) {
      const { nsFd, host, port, path, rootFd, proxy, mark, key } = tail;
      const span = tail.span ? (1 as const) : undefined;
      given =
        path !== undefined
          ? { nsFd, path, rootFd, proxy, key }
          : { nsFd, host, port, proxy, mark, key, span };
    }
    const seq = native().groupTail(engine.handle, handle, slot, given);
    // (an event is awaited: the engine keeps Node's loop alive until it comes)
    engine.hold();
    return new Promise<void>((resolve) =>
      (this.unapplied ??= []).push({
        seq,
        done: () => {
          engine.unhold();
          resolve();
        },
      }),
    );
  }

  /** The engine applied the setTail numbered `seq`, and (it runs them in order) every one before it. */
  tailApplied(seq: number): void {
    const waiting = this.unapplied ?? [];
    const i = waiting.findIndex((w) => w.seq === seq);
    const done = waiting.splice(0, i + 1);
    if (waiting.length === 0) this.unapplied = undefined;
    for (const w of done) w.done();
  }

  /** The engine is done with the group (closed, or the engine stopped): nothing waits on it any more. */
  gone(): void {
    const waiting = this.unapplied ?? [];
    this.unapplied = undefined;
    for (const w of waiting) w.done();
    this.onGone?.();
  }

  /** How the engine picks among the tails: an engineConstants.policies number (balance.ts's policyCode). */
  setBalance(policy: number): void {
    if (!this.closing) native().groupBalance(this.engine.handle, this.handle, policy);
  }

  /**
   * Let a peer's stream naming segment `id` be dialed to this group's tails by the engine,
   * with no JavaScript, when the peer's key is `owner`'s or has every right (null: no more).
   */
  setAttachable(at: { id: string; owner: string } | null): void {
    if (!this.closing) native().groupAttachable(this.engine.handle, this.handle, at);
  }

  /** A health check of a slot's tail passed or failed. */
  setHealth(slot: number, up: boolean): void {
    if (!this.closing) native().groupHealth(this.engine.handle, this.handle, slot, up);
  }

  /** Each slot's counters as the engine keeps them (null: an empty slot). */
  tailStats(): (EngineTailStats | null)[] {
    if (this.closing) return [];
    const { tailStats: at, tailStatCount: n } = k();
    const v = native().groupTailStats(this.handle);
    const out: (EngineTailStats | null)[] = [];
    for (let i = 0; i + n <= v.length; i += n)
      out.push(
        v[i + at.set]
          ? {
              open: v[i + at.open],
              total: v[i + at.total],
              failed: v[i + at.failed],
              okAt: v[i + at.okAt],
              failedAt: v[i + at.failedAt],
            }
          : null,
      );
    return out;
  }

  /**
   * A connection JavaScript carries to a slot's tail opened (+1) or closed (-1): the engine
   * counts it with its own, so that least-conn sees every open connection of the head.
   */
  countOnTail(slot: number, delta: 1 | -1): void {
    if (!this.closing) native().groupTailCount(this.engine.handle, this.handle, slot, delta);
  }

  /**
   * Dial the tail for a client fd that came back by handoff (answered by dialed or handoff),
   * each tail given `timeoutMs` to answer.
   */
  dial(fd: number, timeoutMs: number): void {
    native().groupDial(this.engine.handle, this.handle, fd, Math.max(1, Math.ceil(timeoutMs)));
  }

  /** Count a connection JavaScript holds (false: over the cap, counted as refused). */
  acquire(): boolean {
    return !this.closing && native().groupAcquire(this.handle);
  }

  release(): void {
    if (!this.closing) native().groupRelease(this.handle);
  }

  stats(): GroupStats {
    if (this.last) return this.last;
    const v = native().groupStats(this.handle);
    const at = k().groupStats;
    return {
      open: v[at.open],
      total: v[at.total],
      refused: v[at.refused],
      bytesUp: v[at.bytesUp],
      bytesDown: v[at.bytesDown],
      dialFailures: v[at.dialFailures],
      lastActive: v[at.lastActive],
      dialOkAt: v[at.dialOkAt],
      dialFailedAt: v[at.dialFailedAt],
    };
  }

  /** Close the head and every connection; resolves when the engine has let go of them. */
  close(): Promise<void> {
    this.last ??= this.stats();
    this.closing ??= new Promise<void>((resolve) => {
      this.onGone = resolve;
      this.engine.closeGroup(this);
    });
    return this.closing;
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }
}

/** What a channel to a peer is told by the engine (src/peer/enginechannel.ts). */
export interface ChanEvents {
  /** It ended: why (a chanConstants.why number), an errno or a frame type, the stream at fault. */
  closed(why: number, detail: number, stream: number): void;
  /** The peer opened a stream: JavaScript's end of it (target: a target is in front, streamdial.c). */
  stream(id: number, fd: number, target: boolean): void;
  /** The peer reset a stream JavaScript holds. */
  reset(id: number): void;
  /** A keepalive came back. */
  pong(ms: number): void;
  /** The peer takes no new streams. */
  goAway(): void;
  /** A stream on an fd JavaScript gave ended: bytes sent, bytes delivered, whether it was reset. */
  streamEnd(id: number, sent: number, delivered: number, reset: boolean): void;
}

/** The engine: its thread, and the groups it serves. */
export class Engine {
  private readonly groups = new Map<number, EngineGroup>();
  private nextGroup = 1;
  private readonly chans = new Map<number, ChanEvents>();
  private nextChan = 1;
  /** Events JavaScript waits for (a group's close, a tail applied): the loop must stay alive to hear of them. */
  private awaited = 0;
  private stopped = false;
  readonly handle: EngineHandle;

  /**
   * Start the engine thread, its grown pipes within `pipeBudget` bytes (the engine's default
   * when left out). Throws (the caller falls back to the JavaScript mover).
   */
  constructor(
    private readonly onDialBroken: (error: string) => void,
    pipeBudget?: number,
  ) {
    this.handle = native().engineStart((events) => this.dispatch(events), pipeBudget);
  }

  /** The pipe budget's use, read while the engine runs (zeros once it stopped). */
  stats(): EngineStats {
    if (this.stopped) return { pipeGrown: 0, pipeBudget: 0, pipeDenied: 0 };
    return native().engineStats(this.handle);
  }

  /**
   * A new group with a cap on open connections; `unixName`: a unix head's address as the
   * user named it (what a PROXY v2 header says the client connected to); `dialMs`: how long a
   * tail may take to answer a connect before the next is tried; `allow`: the only networks
   * clients are taken from (packed, src/api/cidr.ts), the others refused at accept;
   * `wakeOnData`: each client held unread until its first byte.
   */
  group(
    maxOpen: number,
    unixName: string | undefined,
    events: GroupEvents,
    dialMs: number,
    allow?: Buffer,
    wakeOnData = false,
  ): EngineGroup {
    const id = this.nextGroup++;
    const report = events.closed !== undefined;
    const g = new EngineGroup(
      this,
      native().groupCreate(
        this.handle,
        id,
        maxOpen,
        report,
        unixName ?? null,
        dialMs,
        allow ?? null,
        wakeOnData,
      ),
      events,
    );
    this.groups.set(id, g);
    return g;
  }

  /** A number for a new channel's events (chanCreate's id); its closed event forgets it. */
  channel(events: ChanEvents): number {
    const id = this.nextChan++;
    this.chans.set(id, events);
    return id;
  }

  /** JavaScript waits for an event: keep Node's loop alive until unhold (the engine alone never does). */
  hold(): void {
    if (this.awaited++ === 0 && !this.stopped) native().engineRef(this.handle, true);
  }

  /** One event waited for came (or never will: the engine stopped). */
  unhold(): void {
    if (--this.awaited === 0 && !this.stopped) native().engineRef(this.handle, false);
  }

  /** Called by EngineGroup.close. */
  closeGroup(g: EngineGroup): void {
    if (this.stopped) {
      g.gone();
      return;
    }
    this.hold();
    const gone = g.onGone;
    g.onGone = () => {
      this.unhold();
      gone?.();
    };
    native().groupClose(this.handle, g.handle);
  }

  /** Stop the thread (after every group is closed); whatever waited on a group is let go. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    native().engineStop(this.handle);
    for (const g of this.groups.values()) g.gone();
    this.groups.clear();
  }

  private dispatch(ev: Float64Array): void {
    const { events: kind, eventDoubles } = k();
    for (let i = 0; i + eventDoubles <= ev.length; i += eventDoubles) {
      const type = ev[i];
      if (type >= kind.chanClosed) {
        this.chanEvent(ev, i);
        continue;
      }
      const g = this.groups.get(ev[i + 1]);
      if (type === kind.dialBroken) this.onDialBroken(errnoName(ev[i + 3]) ?? 'unknown');
      if (!g) continue;
      const a = ev[i + 2];
      switch (type) {
        case kind.closed:
          g.events.closed?.({
            id: a,
            up: ev[i + 3],
            down: ev[i + 4],
            error: errnoName(ev[i + 5]),
            ms: ev[i + 6],
            client: clientOf(ev, i),
          });
          break;
        case kind.handoff:
          g.events.handoff(a, errnoName(ev[i + 3]), ev[i + 4]);
          break;
        case kind.dialed:
          g.events.dialed(a, ev[i + 3]);
          break;
        case kind.refused:
          g.events.refused();
          break;
        case kind.acceptError:
          g.events.acceptError(errnoName(ev[i + 3]) ?? 'unknown');
          break;
        case kind.tailSet:
          g.tailApplied(a);
          break;
        case kind.groupClosed:
          this.groups.delete(ev[i + 1]);
          g.gone();
          break;
      }
    }
  }

  /** A channel's event: [type, 0, chan id, b, c, d]. */
  private chanEvent(ev: Float64Array, i: number): void {
    const kind = k().events;
    const c = this.chans.get(ev[i + 2]);
    if (!c) {
      // (a stream's fd for a channel JavaScript forgot: closed, not leaked)
      if (ev[i] === kind.chanStream) closeQuietly(ev[i + 4]);
      return;
    }
    switch (ev[i]) {
      case kind.chanClosed:
        this.chans.delete(ev[i + 2]);
        c.closed(ev[i + 3], ev[i + 4], ev[i + 5]);
        break;
      case kind.chanStream:
        c.stream(ev[i + 3], ev[i + 4], ev[i + 5] === 1);
        break;
      case kind.chanReset:
        c.reset(ev[i + 3]);
        break;
      case kind.chanPong:
        c.pong(ev[i + 3]);
        break;
      case kind.chanGoAway:
        c.goAway();
        break;
      case kind.chanStreamEnd: {
        // (d: the bytes delivered, plus 2^50 when the stream was reset)
        const reset = ev[i + 5] >= 2 ** 50;
        c.streamEnd(ev[i + 3], ev[i + 4], reset ? ev[i + 5] - 2 ** 50 : ev[i + 5], reset);
        break;
      }
    }
  }
}
