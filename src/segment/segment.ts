/**
 * One segment at run time: a head that listens, a tail it connects to, and what it owns
 * (its listener, the containers it started, its children), released in reverse order.
 */
import type * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import type { SegmentInfo } from '../api/protocol';
import type { Step } from '../api/grammar';
import { type Protocol, isStream } from '../api/url';
import { type Disposable, DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import { RateLimitedLog } from '../common/ratelog';
import { bindUdp } from '../netns';
import { dialWithRetry } from '../proxy/dial';
import { type Client, type TcpHead, openTcpHead } from '../proxy/head';
import { type Origin, proxyHeader } from '../proxy/proxyproto';
import { type DatagramUpstream, UdpRelay } from '../proxy/udp';
import type { SegmentContext } from './context';
import { type Draft, type Endpoint, describe } from './endpoint';
import { TriggerStats, UdpTotals, accessLog, tailHealth, tcpTraffic } from './stats';
import { TailSet } from './tailset';
import type { Policy } from '../proxy/balance';
import type { ContainerFollower, Side } from './follow';
import { IdleWatch, TriggerContainers } from './idle';
import { bindStreamHead, pointStreamTail, releaseStreamHead } from './streamends';
import { PeerSessions, openPeerSession } from './udpremote';

/**
 * Where a segment's tail is: a local endpoint, or a segment on a peer reached by attach
 * (with the PROXY protocol version its connections start with, when the tail wants one).
 */
export type Tail =
  | { kind: 'local'; ep: Endpoint }
  | { kind: 'peer'; host: string; id: string; proto: Protocol; proxy?: 1 | 2 }
  /** Several tails (`also`, `docker-label`): their drafts, resolved and followed by a TailSet. */
  | { kind: 'set'; drafts: Draft[]; head: Draft };

/**
 * After the engine is told to send no connection to the tail, how long until the counters
 * would show one it sent there all the same (it takes the change on its own thread, within
 * a turn of its loop).
 */
const HOLD_SETTLE_MS = 50;

/** Runs a trigger's steps; given by the manager, which knows how to apply steps. */
export type TriggerRunner = (seg: Segment, steps: Step[], scope: DisposableStack) => Promise<Tail>;

/** A segment, from listening to closed. */
export class Segment {
  readonly stack = new DisposableStack();
  readonly containers: string[] = [];
  head!: Endpoint;
  /** The port the head really listens on (differs from head.port when that is 0). */
  boundPort = 0;
  /** The drafts after the create-time steps; a trigger starts from these. */
  headDraft: Draft = {};
  /** The tails' drafts (more than one after `also`). */
  tailDrafts: Draft[] = [{}];
  /** With several tails: how one is picked, and how often they are checked (null: never). */
  balance: Policy = 'round-robin';
  healthMs: number | null = 5000;
  tail: Tail | undefined;
  /** The tails of a `set` tail. */
  private tailSet: TailSet | undefined;
  triggerSteps: Step[] | null = null;
  private tcpHead: TcpHead | undefined;
  /** A unix head's socket file, as bound (removed with the segment, if still that file). */
  private headIdentity: string | undefined;
  private udp: UdpRelay | undefined;
  /** A UDP segment made for a peer: the sessions its parent carries over attach streams. */
  private peerSessions: PeerSessions | undefined;
  /** The UDP head's socket while it is open (-1 after). */
  private udpFd = -1;
  private udpSocket: dgram.Socket | undefined;
  /** Sessions of UDP heads closed before this one (a container restarted), for the counters. */
  private readonly udpTotals = new UdpTotals();
  private readonly triggerStats = new TriggerStats();
  /** Why the last connection could not reach the tail (for the tail's health in list). */
  private lastDialError: string | undefined;
  /** Ends whose container is not running, with the container's name for list. */
  private readonly down = new Map<Side, string>();
  /** While the tail's container is down: resolved when it runs again (or the segment closes). */
  private tailBack: { promise: Promise<void>; resolve: () => void } | undefined;
  /** The following of the tail's container, replaced with the tail. */
  private tailFollow: Disposable | undefined;
  private tailFollowKept = false;
  /** False once the head stopped accepting for good (daemon stop): a restart binds nothing. */
  private listening = true;
  /**
   * Stops the head accepting at once (daemon stop: before anything slower is released);
   * open connections go on until close(). Set by listen().
   */
  private unlisten: () => void = () => undefined;
  /** Repeated warnings (a burst of drops, EMFILE) become one line with a count. */
  private readonly warn: RateLimitedLog;
  private triggerRun: Promise<void> | undefined;
  /** What the trigger's last run made (released with the segment, or by idle). */
  private triggerScope: DisposableStack | undefined;
  private triggerScopeKept = false;
  /** Scale to zero (`idle`), when the segment has it. */
  private idle: IdleWatch | undefined;
  /** The trigger's containers, kept across idle (`idle` with a docker-run trigger). */
  kept: TriggerContainers | undefined;
  private closed = false;

  constructor(
    readonly id: string,
    readonly parent: string | null,
    /** Created by a peer for one of its segments. */
    readonly remote: boolean,
    private readonly ctx: SegmentContext,
    private readonly runTrigger: TriggerRunner,
    /** Keeps ends in containers with their containers across restarts. */
    private readonly follower: ContainerFollower,
  ) {
    this.warn = new RateLimitedLog(ctx.log);
  }

  /** Where the head listens, as printed by create. */
  get url(): string {
    return describe(this.head, this.boundPort);
  }

  /** Start listening at the head. */
  async listen(head: Endpoint): Promise<void> {
    this.head = head;
    // a daemon taking over listens on its predecessor's socket: not one connection refused
    const handed = this.ctx.handed?.take(this.id, head.proto);
    if (isStream(head.proto)) {
      const { fd, port, identity } =
        handed !== undefined
          ? { fd: handed, port: head.port, identity: this.ctx.handed?.identity?.(this.id) }
          : await bindStreamHead(head);
      this.boundPort = port;
      this.headIdentity = identity;
      // a unix head's socket file goes once the head has closed (the stack runs backwards)
      this.stack.defer(() => releaseStreamHead(this.head, this.headIdentity, this.ctx.log));
      const tcpHead = openTcpHead(this.ctx.engine, fd, {
        unixName: head.proto === 'unix' ? head.path : undefined,
        maxConnections: this.ctx.maxConnections,
        dialTimeoutMs: this.ctx.dialTimeoutMs,
        onClient: (client) => void this.serve(client),
        // each connection's end is heard of only when the log would show it
        onClosed: accessLog(
          this.ctx.log,
          this.ctx.accessLog,
          this.id,
          () => this.tailText(),
          head.proto === 'unix' ? 'unix' : 'unknown',
        ),
        onWarning: (kind, detail) =>
          kind === 'refused'
            ? this.warn.warn(
                { segment: this.id, limit: this.ctx.maxConnections },
                'connection refused: too many open (--max-connections)',
              )
            : this.warn.warn({ segment: this.id, err: detail }, 'accept failed'),
      });
      this.tcpHead = tcpHead;
      this.unlisten = () => tcpHead.stopListening();
      // closing the head closes its connections too
      this.stack.defer(() => tcpHead.close());
    } else {
      await this.openUdpHead(head.ns, head.host, head.port, handed);
      if (!this.udpSocket) throw new WormholeError('ABORTED', `segment ${this.id} was deleted`);
      this.boundPort = this.udpSocket.address().port;
      this.unlisten = () => this.closeUdpHead();
      this.stack.defer(() => this.closeUdpHead());
      this.stack.defer(() => this.peerSessions?.close());
    }
    const follow = this.followEnd('head', head);
    if (follow) this.stack.add(follow);
  }

  /** Bind a UDP head and relay its datagrams (at create time, and when its container restarts). */
  private async openUdpHead(ns: string | null, host: string, port: number, handed?: number): Promise<void> {
    const { socket, fd } = await bindUdp(ns, host, port, handed);
    if (this.closed || !this.listening) {
      socket.close();
      return;
    }
    socket.on('error', (err) => this.ctx.log.warn({ segment: this.id, err: err.message }, 'udp head error'));
    this.udp = new UdpRelay(
      socket,
      (client) => this.openUdpUpstream(client),
      this.ctx.udpIdleMs,
      (err) => this.warn.warn({ segment: this.id, err: errorMessage(err) }, 'udp session failed'),
      this.ctx.maxUdpSessions,
      (from) =>
        this.warn.warn(
          { segment: this.id, from, limit: this.ctx.maxUdpSessions },
          'udp session refused: too many (--max-udp-sessions)',
        ),
      this.ctx.dialTimeoutMs,
    );
    this.udpSocket = socket;
    this.udpFd = fd;
  }

  /** Close the UDP head and its sessions, keeping their counts. Idempotent. */
  private closeUdpHead(): void {
    const relay = this.udp;
    if (!relay) return;
    this.udp = undefined;
    this.udpTotals.retire(relay);
    relay.close();
    this.udpSocket?.close();
    this.udpSocket = undefined;
    this.udpFd = -1;
  }

  /**
   * The tail is known (at create time, or when the trigger has run): the head's connections
   * go there from now on, and a tail in a container follows that container.
   */
  async setTail(tail: Tail): Promise<void> {
    await this.pointTail(tail);
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
   * Send the head's connections to this tail. A local TCP tail is dialed by the engine, from
   * inside its namespace.
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
    } else if (head && tail.kind === 'local' && isStream(tail.ep.proto)) {
      await pointStreamTail(tail.ep, this.ctx.engine !== null, (target) => head.setTail(target));
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
    this.down.set(side, container);
    if (side === 'head') {
      this.tcpHead?.stopListening();
      this.closeUdpHead();
      return;
    }
    this.tcpHead?.setTail(null); // every new connection comes to serve(), which waits
    this.udp?.endSessions(); // their upstream sockets are in the dead namespace
    this.peerSessions?.endSessions();
    if (!this.tailBack) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.tailBack = { promise, resolve };
    }
  }

  /** The head's container runs again: listen on the same address and port in its new namespace. */
  private async headUp(ns: string): Promise<void> {
    if (this.closed || !this.listening) return;
    const head: Endpoint = { ...this.head, ns };
    if (isStream(head.proto)) {
      const { fd, identity } = await bindStreamHead(head, this.boundPort);
      if (this.closed || !this.listening || !this.tcpHead) {
        fs.closeSync(fd);
        await releaseStreamHead(head, identity, this.ctx.log);
        return;
      }
      this.tcpHead.relisten(fd);
      this.headIdentity = identity;
    } else {
      this.closeUdpHead();
      await this.openUdpHead(ns, head.host, this.boundPort);
    }
    this.head = head;
    this.down.delete('head');
  }

  /** The tail's container runs again: dial into its new namespace, and let waiting connections go. */
  private async tailUp(ns: string): Promise<void> {
    const tail = this.tail;
    if (this.closed || tail?.kind !== 'local') return;
    await this.pointTail({ kind: 'local', ep: { ...tail.ep, ns } });
    this.tailIsUp();
  }

  private tailIsUp(): void {
    this.down.delete('tail');
    this.tailBack?.resolve();
    this.tailBack = undefined;
  }

  /**
   * Wait while the tail's container is down: resolves when it runs again, rejects after the
   * dial timeout. A connection is never dialed into the namespace of a stopped container.
   */
  private async tailRunning(): Promise<void> {
    const back = this.tailBack;
    if (!back) return;
    let timer: NodeJS.Timeout | undefined;
    const container = this.down.get('tail') ?? '';
    try {
      await Promise.race([
        back.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new WormholeError(
                  'CONTAINER_DOWN',
                  `the tail's container ${container} is not running (waited ${this.ctx.dialTimeoutMs / 1000} s for it)`,
                ),
              ),
            this.ctx.dialTimeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Run the trigger once; concurrent callers wait for the same run; a failure is retried next time. */
  ensureTriggered(): Promise<void> {
    // idle is letting go of the tail: the next run starts once it has
    const releasing = this.idle?.pending();
    if (releasing) return releasing.then(() => this.ensureTriggered());
    if (this.tail) return Promise.resolve();
    if (!this.triggerSteps) return Promise.reject(new Error('segment has no tail'));
    if (!this.triggerRun) {
      this.idle?.running();
      const scope = new DisposableStack();
      this.ctx.log.info({ segment: this.id }, 'trigger running');
      const started = Date.now();
      const ran = this.triggerStats.start();
      this.triggerRun = this.runTrigger(this, this.triggerSteps, scope).then(
        async (tail) => {
          if (this.closed) {
            void scope.dispose();
            ran('the segment was deleted while its trigger ran');
            throw new Error('segment was deleted while its trigger ran');
          }
          // (once: each run after idle puts its scope in this same entry)
          if (!this.triggerScopeKept) {
            this.triggerScopeKept = true;
            this.stack.defer(() => this.triggerScope?.dispose());
          }
          this.triggerScope = scope;
          await this.setTail(tail).catch((err: unknown) => {
            ran(errorMessage(err));
            throw err;
          });
          ran();
          this.idle?.watch();
          this.ctx.log.info(
            { segment: this.id, ms: Date.now() - started, tail: this.tailText() },
            'trigger ran',
          );
        },
        async (err: unknown) => {
          this.triggerRun = undefined;
          if (!this.closed) ran(errorMessage(err));
          await scope.dispose().catch(() => undefined);
          this.ctx.log.error({ segment: this.id, err: errorMessage(err) }, 'trigger failed');
          throw err;
        },
      );
    }
    return this.triggerRun;
  }

  private tailText(): string {
    if (!this.tail) return '';
    if (this.tail.kind === 'set')
      return (this.tailSet?.endpointsNow ?? []).map((e) => describe(e)).join(', ');
    return this.tail.kind === 'local'
      ? describe(this.tail.ep)
      : `peer ${this.tail.host} segment ${this.tail.id}`;
  }

  /**
   * The head's listening socket, for a daemon taking over (undefined once it stopped
   * listening), with a unix head's socket file identity (the successor removes that file).
   */
  listeningFd(): { proto: Protocol; fd: number; identity?: string } | undefined {
    const fd = this.tcpHead ? this.tcpHead.fd : this.udpFd;
    return fd >= 0 ? { proto: this.head.proto, fd, identity: this.headIdentity } : undefined;
  }

  /** Connections open at the head (a daemon handing over waits for them to end). */
  openConnections(): number {
    return this.tcpHead?.stats().open ?? 0;
  }

  /** Stop accepting at the head now; what is open goes on until close(). */
  stopListening(): void {
    this.listening = false;
    this.idle?.stop(); // (a daemon handing over lets its successor decide)
    this.unlisten();
  }

  /**
   * Scale to zero: after `idleMs` with no connection and no byte, let go of what the trigger
   * made (src/segment/idle.ts); `containers`: the trigger runs some, kept across idle.
   */
  scaleToZero(idleMs: number, containers: boolean): void {
    this.idle = new IdleWatch(
      idleMs,
      {
        id: this.id,
        activity: () => {
          const s = this.tcpHead?.stats();
          if (s) return { open: s.open, total: s.total, lastActive: s.lastActive };
          const t = this.udpTotals.traffic(this.udp, this.peerSessions);
          return { open: 0, total: t.datagramsUp ?? 0, lastActive: t.lastActive ?? 0 };
        },
        holdTail: () => {
          if (!this.tcpHead) return 0;
          this.tcpHead.setTail(null); // new connections come to serve(), which waits
          // (the engine dials local tails itself; a peer's are JavaScript's already)
          return this.ctx.engine && this.tail?.kind !== 'peer' ? HOLD_SETTLE_MS : 0;
        },
        resumeTail: async () => {
          if (this.tail && !this.closed) await this.pointTail(this.tail);
        },
        releaseTail: async () => {
          const scope = this.triggerScope;
          this.triggerScope = undefined;
          this.tail = undefined;
          this.triggerRun = undefined;
          this.tailFollow?.dispose(); // its container is stopped on purpose: not "down"
          this.tailFollow = undefined;
          this.tailSet?.dispose(); // (several tails: no more checks or following)
          this.tailSet = undefined;
          this.udp?.endSessions(); // the next datagram opens a session, which runs the trigger
          this.peerSessions?.endSessions(); // (a peer's sessions too: the next attach runs it)
          this.tailIsUp(); // nothing waits for a container that is let go
          await scope?.dispose();
        },
      },
      this.ctx.log,
    );
    if (containers) {
      const kept = new TriggerContainers(this.ctx.containers, this.id, () => this.closed, this.ctx.log);
      this.kept = kept;
      this.stack.defer(() => kept.removeAll());
    }
  }

  /**
   * Take a connection to the tail, running the trigger first if needed. `ready`, when given,
   * is told before bytes flow (used by attach to answer the peer) or with the failure.
   */
  private async serve(client: Client, ready?: (err?: unknown) => void): Promise<void> {
    try {
      await this.ensureTriggered();
      await this.tailRunning();
      if (this.closed) throw new WormholeError('ABORTED', 'the segment closed');
      const tail = this.tail!;
      if (tail.kind === 'peer') {
        // the client's addresses go along: a tail on the peer may want a PROXY header
        const origin = client.origin;
        const stream = await dialWithRetry(
          () => this.ctx.peers.attach(tail.host, tail.id, origin),
          `peer ${tail.host}`,
          this.ctx.dialTimeoutMs,
        );
        if (this.closed) {
          stream.destroy();
          client.drop();
          return;
        }
        ready?.();
        // this segment's own tail wants one: first on the stream, before any client byte
        if (tail.proxy) stream.write(proxyHeader(tail.proxy, origin));
        client.join(stream);
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
      this.peerSessions ??= new PeerSessions(
        (client) => this.openUdpSocket(client),
        this.ctx.udpIdleMs,
        this.ctx.maxUdpSessions,
      );
      // (the client's address, as the head's side said: several tails pick by it)
      const client = origin && 'host' in origin.src ? origin.src.host : '';
      void this.peerSessions.serve(stream, ready, client);
      return;
    }
    const client = this.tcpHead?.adopt(stream, origin);
    if (!client) {
      ready(new WormholeError('REFUSED', `segment ${this.id} is at its connection limit`));
      return;
    }
    void this.serve(client, ready);
  }

  /** A session's upstream: a socket to a local tail, or a stream to the peer's segment. */
  private async openUdpUpstream(client: string): Promise<DatagramUpstream> {
    await this.ensureTriggered();
    const tail = this.tail!;
    if (tail.kind === 'peer') {
      const origin: Origin = {
        src: { host: client, port: 0 },
        dst: { host: this.head.host, port: this.boundPort },
      };
      return openPeerSession(this.ctx.peers, tail.host, tail.id, this.ctx.dialTimeoutMs, origin);
    }
    return this.openUdpSocket(client);
  }

  /** A UDP socket connected to a local tail (picked for this client), made in its namespace. */
  private async openUdpSocket(client: string): Promise<dgram.Socket> {
    await this.ensureTriggered();
    await this.tailRunning();
    const tail = this.tail!;
    const ep =
      tail.kind === 'set' ? this.tailSet?.pickUdp(client) : tail.kind === 'local' ? tail.ep : undefined;
    if (!ep || ep.proto !== 'udp') {
      throw new Error(tail.kind === 'set' ? 'no udp tail is there now' : 'a udp head needs a local udp tail');
    }
    const any = ep.host.includes(':') ? '::' : '0.0.0.0';
    const { socket: up } = await bindUdp(ep.ns, any, 0);
    await new Promise<void>((resolve, reject) => {
      up.once('error', reject);
      up.connect(ep.port, ep.host, () => {
        up.off('error', reject);
        resolve();
      });
    });
    return up;
  }

  /** The segment as `list` shows it. */
  info(): SegmentInfo {
    const state = this.closed
      ? 'closed'
      : this.down.size > 0
        ? 'container-down'
        : this.tail
          ? 'ready'
          : this.triggerRun
            ? 'triggering'
            : this.idle?.idle
              ? 'idle'
              : 'waiting';
    let tail: SegmentInfo['tail'] = null;
    const first = this.tail?.kind === 'set' ? this.tailSet?.endpointsNow[0] : undefined;
    if (this.tail?.kind === 'local' || first) {
      const e = first ?? (this.tail as { ep: Endpoint }).ep;
      tail = {
        proto: e.proto,
        ns: e.nsLabel ?? (e.ns ? e.ns : null),
        host: e.host,
        port: e.port,
        path: e.path,
        container: e.container,
      };
    } else if (this.tail?.kind === 'peer') {
      tail = {
        proto: this.tail.proto,
        ns: null,
        host: '',
        port: 0,
        peer: `${this.tail.host}/${this.tail.id}`,
      };
    }
    const h = this.head;
    const stats = this.tcpHead?.stats();
    const traffic = stats ? tcpTraffic(stats) : this.udpTotals.traffic(this.udp, this.peerSessions);
    const [okAt, failedAt, lastError] = stats
      ? [stats.dialOkAt, stats.dialFailedAt, this.lastDialError]
      : [this.udp?.openOkAt ?? 0, this.udp?.openFailedAt ?? 0, this.udp?.lastError];
    return {
      id: this.id,
      url: this.url,
      head: {
        proto: h.proto,
        ns: h.nsLabel ?? h.ns,
        host: h.host,
        port: this.boundPort,
        path: h.path,
        container: h.container,
      },
      tail,
      state,
      parent: this.parent,
      remote: this.remote,
      connections: traffic.total,
      traffic,
      refused: traffic.refused,
      trigger: this.triggerSteps
        ? { ...this.triggerStats.info(this.tail !== undefined), ...this.idle?.info() }
        : undefined,
      tails:
        this.tail?.kind === 'set'
          ? (this.tailSet?.info(this.tcpHead?.tailStats() ?? []) ?? [])
          : this.tail
            ? [tailHealth(this.tailText(), okAt, failedAt, lastError)]
            : [],
      containers: [...this.containers],
      down: this.down.size > 0 ? [...this.down].map(([end, container]) => ({ end, container })) : undefined,
    };
  }

  /** Stop listening, close connections, release children and containers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.idle?.stop();
    this.tailBack?.resolve(); // waiting connections go, and find the segment closed
    await this.idle?.pending(); // (what idle lets go of is not released twice at once)
    await this.stack.dispose();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
