/**
 * One segment at run time: a head that listens, a tail it connects to, and what it owns
 * (its listener, the containers it started, its children), released in reverse order.
 */
import type { Duplex } from 'node:stream';
import type { SegmentInfo } from '../api/protocol';
import { type Protocol, isStream } from '../api/url';
import { type Disposable, DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import { RateLimitedLog } from '../common/ratelog';
import type { Client, Head, TcpHead } from '../proxy/head';
import type { Origin } from '../proxy/proxyproto';
import { UdpHead } from '../proxy/udphead';
import type { SegmentContext } from './context';
import { type Draft, type Endpoint, describe } from './endpoint';
import { describeTail, segmentInfo } from './info';
import { TailSet } from './tailset';
import type { Policy } from '../proxy/balance';
import type { ContainerFollower, Side } from './follow';
import { IdleWatch, TriggerContainers } from './idle';
import { bindStreamHead, releaseStreamHead, streamTarget } from './streamends';
import { type SegmentDeps, type SegmentSpec, type Tail, checkSpec } from './spec';
import { TailWait } from './tailwait';
import { Trigger } from './trigger';
import { type HeadHost, bindUdpHead, openStreamHead, openUdpHead, relistenHead } from './heads';
import { joinRemote } from './remoteleg';
import { UdpSide } from './udpside';
import { TransparentRoutesHeld, transparentMark } from './transparent';
import { ReadyGate } from './ready';

/**
 * A stream head's place in its segment's stack: one object, not the two closures (and their
 * contexts) it was, 0.15 KiB of every idle segment with 10,000 of them (issue 20).
 */
class StreamHeadRelease implements Disposable {
  constructor(private readonly segment: Segment) {}

  dispose(): Promise<void> {
    return this.segment.releaseStreamHead();
  }
}

/**
 * A segment's fields that most never set (a `set` tail, a UDP head, a container followed,
 * a warning, a failed dial...): in this side object, made at the first set, and read
 * through accessors on Segment (below the class). Twelve fields of every Segment were 96
 * bytes of each idle segment with 10,000 of them (issue 20).
 */
class SegmentRare {
  tailSet: unknown = undefined;
  udpHead: unknown = undefined;
  headIdentity: unknown = undefined;
  udpSide: unknown = undefined;
  lastDialError: unknown = undefined;
  down: unknown = undefined;
  tailBack: unknown = undefined;
  tailFollow: unknown = undefined;
  tailFollowKept: unknown = undefined;
  routes: unknown = undefined;
  accepted: unknown = undefined;
  warnings: unknown = undefined;
}

/** A segment, from listening to closed. */
export class Segment implements HeadHost {
  readonly id: string;
  readonly parent: string | null;
  readonly remote: boolean;
  readonly headDraft: Draft;
  readonly tailDrafts: readonly Draft[];
  readonly stack = new DisposableStack();
  /** Containers started for it (create-time steps and trigger runs), for list. */
  readonly containers: string[];
  head: Endpoint;
  /** The port the head really listens on (differs from head.port when that is 0). */
  boundPort = 0;
  tail: Tail | undefined;
  /** The tails of a `set` tail. */
  declare private tailSet: TailSet | undefined;
  private tcpHead: TcpHead | undefined;
  declare private udpHead: UdpHead | undefined;
  /** A unix head's socket file, as bound (removed with the segment, if still that file). */
  declare private headIdentity: string | undefined;
  /** A UDP segment's upstreams, its peer's sessions and its closed relays' counters: see udp. */
  declare private udpSide: UdpSide | undefined;
  /** Why the last connection could not reach the tail (for the tail's health in list). */
  declare private lastDialError: string | undefined;
  /** Ends whose container is not running, with the container's name for list (made at the first). */
  declare private down: Map<Side, string> | undefined;
  /** While the tail's container is down, connections wait for it here (made at the first time it is). */
  declare private tailBack: TailWait | undefined;
  /** The following of the tail's container, replaced with the tail. */
  declare private tailFollow: Disposable | undefined;
  declare private tailFollowKept: boolean | undefined;
  /**
   * A transparent tail's routes in its namespace (made when it is set, removed with the
   * segment); only a segment with `transparent` in its plan has this (issue 20).
   */
  declare private routes: TransparentRoutesHeld | undefined;
  /** False once the head stopped accepting for good (daemon stop): a restart binds nothing. */
  private listening = true;
  /** Set by accept(): the tail is set (or the trigger armed), connections are served. */
  private accepting = false;
  /** What waits for accept() (made by the first to wait: most segments have none). */
  declare private accepted: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Repeated warnings (a burst of drops, EMFILE) become one line with a count: see warn. */
  declare private warnings: RateLimitedLog | undefined;
  readonly trigger: Trigger<Tail> | undefined;
  /** Scale to zero (`idle`), when the segment has it. */
  private readonly idle: IdleWatch | undefined;
  /** The trigger's containers, kept across idle (`idle` with a docker-run trigger). */
  readonly kept: TriggerContainers | undefined;
  readonly ctx: SegmentContext;
  private readonly follower: ContainerFollower;
  private readonly balance: Policy;
  private readonly healthMs: number | null;
  /** `ready`: new connections wait here until the tail is ready (ready.ts). */
  private readonly ready: ReadyGate | undefined;
  /** Which clients the head takes (`allow`), and from when (`wake-on-data`). */
  readonly allow: SegmentSpec['allow'];
  readonly wakeOnData: boolean | undefined;
  private closed = false;
  /** The fields declared above, not set here: see SegmentRare (made at the first set). */
  protected rare: SegmentRare | undefined;

  constructor(spec: SegmentSpec, deps: SegmentDeps) {
    checkSpec(spec);
    ({ id: this.id, parent: this.parent, remote: this.remote, head: this.head } = spec);
    ({ headDraft: this.headDraft, tailDrafts: this.tailDrafts } = spec);
    ({ balance: this.balance, healthMs: this.healthMs } = spec);
    ({ allow: this.allow, wakeOnData: this.wakeOnData } = spec);
    this.follower = deps.follower;
    // (`dial-timeout` in the plan: this segment's own, for its dials and its waits)
    this.ctx = spec.dialTimeoutMs ? { ...deps.ctx, dialTimeoutMs: spec.dialTimeoutMs } : deps.ctx;
    this.ready = spec.ready && new ReadyGate(spec.ready, this.id, this.ctx);
    this.containers = spec.made.containers;
    this.stack.add(spec.made.scope);
    const routes = new TransparentRoutesHeld(spec, this.ctx.log);
    if (routes.wanted) this.routes = this.stack.add(routes);
    if (spec.trigger) {
      this.trigger = new Trigger(spec.trigger, {
        id: this.id,
        log: this.ctx.log,
        stack: this.stack,
        isClosed: () => this.closed,
        runSteps: (steps, scope) => deps.runTrigger(this, steps, scope),
        setTail: (tail) => this.setTail(tail),
        running: () => this.idle?.running(),
        ran: () => this.idle?.watch(),
        tailText: () => describeTail(this.tail, this.tailSet),
      });
    }
    if (spec.idleMs !== undefined) this.idle = this.idleWatch(spec.idleMs);
    this.kept = TriggerContainers.of(spec, this.ctx, () => this.closed, this.stack);
  }

  /**
   * The UDP side, made at its first use: a TCP segment's never is (its five functions and
   * counters were 0.5 KiB of each idle segment with 10,000 of them: issue 20).
   */
  private get udp(): UdpSide {
    return (this.udpSide ??= new UdpSide({
      ctx: this.ctx,
      triggered: async () => {
        await this.ensureTriggered();
        return this.tail ?? Promise.reject(new Error('segment has no tail'));
      },
      tailRunning: () => this.tailRunning(),
      pickUdp: (client) => this.tailSet?.pickUdp(client),
      headAddress: () => ({ host: this.head.host, port: this.boundPort }),
      transparentMark: () => transparentMark(this.id),
    }));
  }

  /** Where the head listens, as printed by create. */
  get url(): string {
    return describe(this.head, this.boundPort);
  }

  /** The head's socket, bound (or handed over by a predecessor), not accepting yet: see accept(). */
  async open(): Promise<void> {
    const head = this.head;
    // a daemon taking over listens on its predecessor's socket: not one connection refused
    const handed = this.ctx.handed?.take(this.id, head.proto);
    if (isStream(head.proto)) {
      const { fds, port, identity } =
        handed !== undefined
          ? { fds: handed, port: head.port, identity: this.ctx.handed?.identity?.(this.id) }
          : await bindStreamHead(head);
      this.boundPort = port;
      this.headIdentity = identity;
      // (in the stack before the head is made: a unix head's file goes even if making it fails)
      this.stack.add(new StreamHeadRelease(this));
      this.tcpHead = openStreamHead(this, head, fds);
    } else {
      const { sockets, fds } = await bindUdpHead(head, head.port, handed);
      if (this.closed) {
        for (const socket of sockets) socket.close();
        throw new WormholeError('ABORTED', `segment ${this.id} was deleted`);
      }
      const udpHead = openUdpHead(this, sockets, fds);
      this.udpHead = udpHead;
      this.boundPort = sockets[0].address().port;
      this.stack.defer(() => udpHead.close());
      this.stack.defer(() => this.udp.close());
    }
    const follow = this.followEnd('head', head);
    if (follow) this.stack.add(follow);
  }

  /**
   * Close the stream head (its connections too), then remove a unix head's socket file: run
   * by the stack (StreamHeadRelease) when the segment closes.
   */
  async releaseStreamHead(): Promise<void> {
    try {
      await this.tcpHead?.close();
    } finally {
      await releaseStreamHead(this.head, this.headIdentity, this.ctx.log);
    }
  }

  /** The head, TCP or UDP, while it is open. */
  private get theHead(): Head | undefined {
    return this.tcpHead ?? this.udpHead;
  }

  /**
   * Serve clients from now on: called once the tail is set (or the trigger armed), so that
   * none that connects finds the segment without one. Until then clients wait (a TCP head's
   * backlog; a UDP session's upstream, an attached stream: for this call).
   */
  accept(): void {
    if (this.accepting || this.closed) return;
    this.accepting = true;
    this.accepted?.resolve();
    if (this.listening) this.theHead?.accept();
  }

  // What the head tells the segment (HeadHost): the segment is its own head's host, with no
  // object or closures made for it (issue 20's memory per idle segment).

  openUpstream(client: string, port: number, offset: number): ReturnType<HeadHost['openUpstream']> {
    return this.udp.openUpstream(client, port, offset);
  }

  retired(relay: Parameters<HeadHost['retired']>[0]): void {
    this.udp.retire(relay);
  }

  /** Repeated warnings become one line with a count (made at the first warning). */
  get warn(): RateLimitedLog {
    return (this.warnings ??= new RateLimitedLog(this.ctx.log));
  }

  tailText(): string {
    return describeTail(this.tail, this.tailSet);
  }

  /**
   * The tail is known (at create time, or when the trigger has run): the head's connections
   * go there from now on, and a tail in a container follows that container.
   */
  async setTail(tail: Tail): Promise<void> {
    await this.pointWhenReady(tail);
    this.tailFollow?.dispose();
    this.tailFollow = tail.kind === 'local' ? this.followEnd('tail', tail.ep) : undefined;
    // (once: a tail set again by each run after idle is followed by this same entry)
    if (this.tailFollow && !this.tailFollowKept) {
      this.tailFollowKept = true;
      this.stack.defer(() => this.tailFollow?.dispose());
    }
    this.tailIsUp();
  }

  /**
   * With `ready`, a local tail is the segment's at once, but the head points at it only once it
   * is ready: until then every connection comes to serve(), which waits at the gate (ready.ts).
   */
  private async pointWhenReady(tail: Tail): Promise<void> {
    if (!this.ready || tail.kind !== 'local') return this.pointTail(tail);
    this.tail = tail;
    await this.tcpHead?.setTail(null);
    this.ready.arm(tail.ep, async () => {
      if (this.tail === tail && !this.closed) await this.pointTail(tail);
    });
  }

  /**
   * Send the head's connections to this tail: a local stream tail goes to the head as a plain
   * endpoint (its mover opens what it needs to dial it); several go to a tail set.
   */
  private async pointTail(tail: Tail): Promise<void> {
    const head = this.tcpHead;
    if (tail.kind === 'set') {
      this.tailSet?.dispose();
      const set = new TailSet(
        {
          log: this.ctx.log,
          containers: this.ctx.containers,
          segment: this.id,
          allowUnix: this.ctx.allowUnix,
        },
        head,
        tail.drafts,
        tail.head,
        this.balance,
        this.healthMs,
      );
      this.tailSet = set;
      this.stack.defer(() => set.dispose());
      await set.start();
    } else if (tail.kind === 'local' && tail.ep.transparent) {
      // (a transparent tail is in the plan, or made by its trigger's `transparent`: made then)
      this.routes ??= this.stack.add(
        new TransparentRoutesHeld({ id: this.id, tailDrafts: [], trigger: null }, this.ctx.log),
      );
      await this.routes.point(head, tail.ep);
    } else if (head && tail.kind === 'local' && isStream(tail.ep.proto)) {
      await head.setTail(streamTarget(tail.ep));
    }
    this.tail = tail;
  }

  /** Follow the container an end is in, if it is in one. */
  private followEnd(side: Side, ep: Endpoint): Disposable | undefined {
    const container = ep.container;
    if (!container || !ep.containerId || !ep.ns) return undefined;
    return this.follower.follow({
      segment: this.id,
      side,
      ref: container,
      id: ep.containerId,
      nsPath: ep.ns,
      down: () => this.containerDown(side, container),
      up: (ns) => (side === 'head' ? this.headUp(ns) : this.tailUp(ns)),
    });
  }

  /**
   * An end's container stopped, its namespace with it. The head has nothing to accept on; the
   * tail gets no dial: new connections wait for it to run again (up to the dial timeout).
   */
  private containerDown(side: Side, container: string): void {
    if (this.closed) return;
    (this.down ??= new Map()).set(side, container);
    if (side === 'head') {
      this.theHead?.stopListening();
      return;
    }
    void this.tcpHead?.setTail(null); // every new connection comes to serve(), which waits
    this.udpHead?.endSessions(); // their upstream sockets are in the dead namespace
    this.udpSide?.endSessions();
    (this.tailBack ??= new TailWait()).hold();
    this.ready?.drop('the container is not running');
  }

  /** The head's container runs again: listen on the same address and port in its new namespace. */
  private async headUp(ns: string): Promise<void> {
    const live = (): boolean => !this.closed && this.listening;
    if (!live()) return;
    const head: Endpoint = { ...this.head, ns };
    const heads = { tcp: this.tcpHead, udp: this.udpHead };
    const bound = await relistenHead(head, this.boundPort, heads, live, this.ctx.log);
    if (!bound) return;
    if (bound.identity !== undefined) this.headIdentity = bound.identity;
    this.head = head;
    this.down?.delete('head');
  }

  /** The tail's container runs again: dial into its new namespace, and let waiting connections go. */
  private async tailUp(ns: string): Promise<void> {
    const tail = this.tail;
    if (this.closed || tail?.kind !== 'local') return;
    await this.pointWhenReady({ kind: 'local', ep: { ...tail.ep, ns } });
    this.tailIsUp();
  }

  private tailIsUp(): void {
    this.down?.delete('tail');
    this.tailBack?.release();
  }

  /** Wait while the tail's container is down, then until it is ready (up to the dial timeout). */
  private tailRunning(): Promise<void> {
    if (this.tailBack)
      return this.tailBack.wait(this.down?.get('tail') ?? '', this.ctx.dialTimeoutMs, this.ready);
    return this.ready ? this.ready.wait(this.ctx.dialTimeoutMs) : Promise.resolve();
  }

  /**
   * The tail, once there is one: after accept() (a stream attached, a datagram read before
   * waits for it), after idle has let go (if it is), running the trigger if it must.
   */
  ensureTriggered(): Promise<void> {
    if (!this.accepting && !this.closed) {
      let resolve!: () => void;
      this.accepted ??= { promise: new Promise<void>((r) => (resolve = r)), resolve };
      return this.accepted.promise.then(() => this.ensureTriggered());
    }
    // idle is letting go of the tail: the next run starts once it has
    const releasing = this.idle?.pending();
    if (releasing) return releasing.then(() => this.ensureTriggered());
    if (this.tail) return Promise.resolve();
    if (!this.trigger) return Promise.reject(new Error('segment has no tail'));
    return this.trigger.ensure();
  }

  /**
   * The head's listening socket, for a daemon taking over (undefined once it stopped
   * listening), with a unix head's socket file identity (the successor removes that file).
   */
  listeningFd(): { proto: Protocol; fds: readonly number[]; identity?: string } | undefined {
    const fds = this.theHead?.fds ?? [];
    return fds.length > 0 ? { proto: this.head.proto, fds, identity: this.headIdentity } : undefined;
  }

  /** Connections open at the head (a daemon handing over waits for them to end). */
  openConnections(): number {
    return this.tcpHead?.stats().open ?? 0;
  }

  /** Stop accepting at the head now; what is open goes on until close(). */
  stopListening(): void {
    this.listening = false;
    this.idle?.stop(); // (a daemon handing over lets its successor decide)
    this.theHead?.stopListening();
  }

  /**
   * Scale to zero: after `idleMs` with no connection and no byte, let go of what the trigger
   * made (src/segment/idle.ts).
   */
  private idleWatch(idleMs: number): IdleWatch {
    return new IdleWatch(
      idleMs,
      {
        id: this.id,
        activity: () => {
          const s = this.tcpHead?.stats();
          if (s) return { open: s.open, total: s.total, lastActive: s.lastActive };
          const t = this.udp.traffic(this.udpHead?.relay);
          return { open: 0, total: t.datagramsUp ?? 0, lastActive: t.lastActive ?? 0 };
        },
        holdTail: async () => {
          // new connections come to serve(), which waits; resolved once the mover took it
          await this.tcpHead?.setTail(null);
        },
        resumeTail: async () => {
          // (not ready yet: the gate points the head when it is)
          if (this.tail && !this.closed && (this.ready?.isReady ?? true)) await this.pointTail(this.tail);
        },
        releaseTail: async () => {
          const scope = this.trigger?.rearm();
          this.tail = undefined;
          this.tailFollow?.dispose(); // its container is stopped on purpose: not "down"
          this.tailFollow = undefined;
          this.tailSet?.dispose(); // (several tails: no more checks or following)
          this.tailSet = undefined;
          this.udpHead?.endSessions(); // the next datagram opens a session, which runs the trigger
          this.udpSide?.endSessions(); // (a peer's sessions too: the next attach runs it)
          this.tailIsUp(); // nothing waits for a container that is let go
          this.ready?.drop('idle: the next connection starts it');
          await scope?.dispose();
        },
      },
      this.ctx.log,
    );
  }

  /**
   * Take a connection to the tail, running the trigger first if needed. `ready`, when given,
   * is told before bytes flow (used by attach to answer the peer) or with the failure.
   */
  async serve(client: Client, ready?: (err?: unknown) => void): Promise<void> {
    try {
      await this.ensureTriggered();
      await this.tailRunning();
      if (this.closed) throw new WormholeError('ABORTED', 'the segment closed');
      const tail = this.tail!;
      if (tail.kind === 'peer') {
        await joinRemote(this.ctx.peers, tail, client, this.ctx.dialTimeoutMs, () => this.closed, ready);
      } else {
        await client.toTail(ready);
      }
    } catch (err) {
      this.lastDialError = errorMessage(err);
      if (!this.closed) this.warn.warn({ segment: this.id, err: errorMessage(err) }, 'connection dropped');
      client.drop();
      ready?.(err);
    }
  }

  /**
   * Accept a stream handed over by a peer's attach, as if it had connected to the head
   * (`origin`: the client it carries, as the peer said); for a UDP segment, one session of
   * datagrams (udpremote.ts).
   */
  attach(stream: Duplex, ready: (err?: unknown) => void, origin?: Origin): void {
    if (this.head.proto === 'udp') {
      // (the client's address, as the head's side said: several tails pick by it)
      this.udp.attach(stream, ready, origin && 'host' in origin.src ? origin.src.host : '');
      return;
    }
    const client = this.tcpHead?.adopt(stream, origin);
    if (!client) {
      ready(new WormholeError('REFUSED', `segment ${this.id} is at its connection limit`));
      return;
    }
    void this.serve(client, ready);
  }

  /** The segment as `list` shows it. */
  info(): SegmentInfo {
    const relay = this.udpHead?.relay;
    const tcp = this.tcpHead;
    return segmentInfo({
      id: this.id,
      url: this.url,
      parent: this.parent,
      remote: this.remote,
      head: this.head,
      boundPort: this.boundPort,
      tail: this.tail,
      tailSet: this.tailSet,
      tailText: describeTail(this.tail, this.tailSet),
      transparent: this.routes !== undefined,
      ready: this.ready?.info(),
      closed: this.closed,
      down: this.down,
      triggering: this.trigger?.started ?? false,
      idle: this.idle?.idle ?? false,
      tcp: tcp && { stats: tcp.stats(), tails: tcp.tailStats() },
      udp: {
        traffic: this.udpSide?.traffic(relay) ?? UdpSide.none(relay),
        okAt: relay?.openOkAt ?? 0,
        failedAt: relay?.openFailedAt ?? 0,
        lastError: relay?.lastError,
      },
      lastDialError: this.lastDialError,
      trigger: this.trigger
        ? {
            ...this.trigger.stats.info(this.tail !== undefined),
            ...this.idle?.info(),
            ...(this.kept?.action === 'pause' ? { idleAction: 'pause' as const } : {}),
          }
        : undefined,
      containers: this.containers,
    });
  }

  /** Stop listening, close connections, release children and containers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.accepted?.resolve(); // what waits for accept() finds the segment closed
    this.idle?.stop();
    this.tailBack?.release(); // waiting connections go, and find the segment closed
    this.ready?.dispose();
    await this.idle?.pending(); // (what idle lets go of is not released twice at once)
    await this.stack.dispose();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

// Segment's declared rare fields, kept in its SegmentRare: undefined until one is set (setting
// undefined makes none).
for (const name of Object.keys(new SegmentRare()) as (keyof SegmentRare)[]) {
  Object.defineProperty(Segment.prototype, name, {
    get(this: { rare?: SegmentRare }): unknown {
      return this.rare?.[name];
    },
    set(this: { rare?: SegmentRare }, v: unknown): void {
      if (v === undefined && !this.rare) return;
      (this.rare ??= new SegmentRare())[name] = v;
    },
  });
}
