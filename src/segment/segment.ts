/**
 * One segment at run time: a head that listens, a tail it connects to, and what it owns
 * (its listener, the containers it started, its children), released in reverse order.
 */
import type * as dgram from 'node:dgram';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { SegmentInfo } from '../api/protocol';
import type { Step } from '../api/grammar';
import { DisposableStack } from '../common/disposable';
import { errorMessage } from '../common/errors';
import { RateLimitedLog } from '../common/ratelog';
import { bindUdp, connectTcp, listenTcp } from '../netns';
import { dialWithRetry, whenConnected } from '../proxy/dial';
import { splice } from '../proxy/tcp';
import { UdpRelay } from '../proxy/udp';
import type { SegmentContext } from './context';
import { type Draft, type Endpoint, describe } from './endpoint';

/** Where a segment's tail is: a local endpoint, or a segment on a peer reached by attach. */
export type Tail =
  { kind: 'local'; ep: Endpoint } | { kind: 'peer'; host: string; id: string; proto: 'tcp' | 'udp' };

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
  tailDraft: Draft = {};
  tail: Tail | undefined;
  triggerSteps: Step[] | null = null;
  connections = 0;
  /** Connections (and UDP datagrams of new sessions) refused at the cap. */
  private refusedTcp = 0;
  /** Client connections open now (the cap counts these). */
  private open = 0;
  private udp: UdpRelay | undefined;
  /**
   * Stops the head accepting at once, and resolves when the listener is gone, which for TCP
   * is after its open connections are (close() destroys those first). Set by listen().
   */
  private unlisten: () => Promise<void> = () => Promise.resolve();
  /** Repeated warnings (a burst of drops, EMFILE) become one line with a count. */
  private readonly warn: RateLimitedLog;
  private active = new Set<Duplex>();
  private triggerRun: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly id: string,
    readonly parent: string | null,
    /** Created by a peer for one of its segments. */
    readonly remote: boolean,
    private readonly ctx: SegmentContext,
    private readonly runTrigger: TriggerRunner,
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
    if (head.proto === 'tcp') {
      const server = await listenTcp(head.ns, head.host, head.port, (socket) => this.accept(socket));
      this.boundPort = (server.address() as net.AddressInfo).port;
      // accept(2) failing (EMFILE when out of fds) is an 'error' on the listener, once per try
      server.on('error', (err) => this.warn.warn({ segment: this.id, err: err.message }, 'accept failed'));
      this.unlisten = once(() => new Promise<void>((resolve) => server.close(() => resolve())));
    } else {
      const socket = await bindUdp(head.ns, head.host, head.port);
      socket.on('error', (err) =>
        this.ctx.log.warn({ segment: this.id, err: err.message }, 'udp head error'),
      );
      this.boundPort = socket.address().port;
      const relay = new UdpRelay(
        socket,
        () => this.openUdpUpstream(),
        this.ctx.udpIdleMs,
        (err) => this.warn.warn({ segment: this.id, err: errorMessage(err) }, 'udp session failed'),
        this.ctx.maxUdpSessions,
        (from) =>
          this.warn.warn(
            { segment: this.id, from, limit: this.ctx.maxUdpSessions },
            'udp session refused: too many (--max-udp-sessions)',
          ),
      );
      this.udp = relay;
      this.unlisten = once(async () => {
        relay.close();
        socket.close();
      });
    }
    this.stack.defer(() => this.unlisten());
    // Open connections go before the listener (disposed first, registered last).
    this.stack.defer(() => {
      for (const s of this.active) s.destroy();
    });
  }

  /** Run the trigger once; concurrent callers wait for the same run; a failure is retried next time. */
  ensureTriggered(): Promise<void> {
    if (this.tail) return Promise.resolve();
    if (!this.triggerSteps) return Promise.reject(new Error('segment has no tail'));
    if (!this.triggerRun) {
      const scope = new DisposableStack();
      this.ctx.log.info({ segment: this.id }, 'trigger running');
      const started = Date.now();
      this.triggerRun = this.runTrigger(this, this.triggerSteps, scope).then(
        (tail) => {
          if (this.closed) {
            void scope.dispose();
            throw new Error('segment was deleted while its trigger ran');
          }
          this.tail = tail;
          this.stack.add(scope);
          this.ctx.log.info(
            { segment: this.id, ms: Date.now() - started, tail: this.tailText() },
            'trigger ran',
          );
        },
        async (err: unknown) => {
          this.triggerRun = undefined;
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
    return this.tail.kind === 'local'
      ? describe(this.tail.ep)
      : `peer ${this.tail.host} segment ${this.tail.id}`;
  }

  /**
   * Stop accepting at the head (daemon stop: before anything slower is released). Not
   * awaited: a TCP listener's close waits for its open connections, which close() ends.
   */
  stopListening(): void {
    void this.unlisten();
  }

  /** A TCP connection arrived at the head (paused until the tail is connected). */
  private accept(socket: net.Socket): void {
    // The cap (--max-connections): refused at once, counted, and logged once per burst.
    if (this.open >= this.ctx.maxConnections) {
      this.refusedTcp++;
      socket.destroy();
      this.warn.warn(
        { segment: this.id, limit: this.ctx.maxConnections },
        'connection refused: too many open (--max-connections)',
      );
      return;
    }
    this.open++;
    socket.once('close', () => this.open--);
    this.connections++;
    this.track(socket);
    socket.on('error', () => undefined);
    void this.serve(socket);
  }

  private track(stream: Duplex): void {
    this.active.add(stream);
    stream.once('close', () => this.active.delete(stream));
  }

  /**
   * Connect `client` to the tail, running the trigger first if needed. `ready`, when given,
   * is told before bytes flow (used by attach to answer the peer) or with the failure.
   */
  async serve(client: Duplex, ready?: (err?: unknown) => void): Promise<void> {
    const abort = new AbortController();
    const onGone = (): void => abort.abort();
    client.once('close', onGone);
    let upstream: Duplex;
    try {
      await this.ensureTriggered();
      upstream = await this.dialTail(abort.signal);
    } catch (err) {
      client.off('close', onGone);
      if (!abort.signal.aborted)
        this.warn.warn({ segment: this.id, err: errorMessage(err) }, 'connection dropped');
      if (ready) ready(err);
      else client.destroy();
      return;
    }
    client.off('close', onGone);
    if (client.destroyed || this.closed) {
      upstream.destroy();
      return;
    }
    this.track(upstream);
    ready?.();
    splice(client, upstream, (stats) =>
      this.ctx.log.debug({ segment: this.id, ...stats }, 'connection closed'),
    );
  }

  /** Accept a stream handed over by a peer's attach, as if it had connected to the head. */
  attach(stream: Duplex, ready: (err?: unknown) => void): void {
    this.connections++;
    this.track(stream);
    void this.serve(stream, ready);
  }

  private dialTail(signal: AbortSignal): Promise<Duplex> {
    const tail = this.tail!;
    if (tail.kind === 'peer') {
      return dialWithRetry(
        () => this.ctx.peers.attach(tail.host, tail.id),
        `peer ${tail.host}`,
        this.ctx.dialTimeoutMs,
        signal,
      );
    }
    const ep = tail.ep;
    return dialWithRetry(
      () => whenConnected(connectTcp(ep.ns, ep.host, ep.port)),
      describe(ep),
      this.ctx.dialTimeoutMs,
      signal,
    );
  }

  private async openUdpUpstream(): Promise<dgram.Socket> {
    await this.ensureTriggered();
    const tail = this.tail!;
    if (tail.kind !== 'local' || tail.ep.proto !== 'udp') {
      throw new Error('a udp head needs a local udp tail');
    }
    const ep = tail.ep;
    const any = ep.host.includes(':') ? '::' : '0.0.0.0';
    const up = await bindUdp(ep.ns, any, 0);
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
    const state = this.closed ? 'closed' : this.tail ? 'ready' : this.triggerRun ? 'triggering' : 'waiting';
    let tail: SegmentInfo['tail'] = null;
    if (this.tail?.kind === 'local') {
      const e = this.tail.ep;
      tail = {
        proto: e.proto,
        ns: e.nsLabel ?? (e.ns ? e.ns : null),
        host: e.host,
        port: e.port,
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
    return {
      id: this.id,
      url: this.url,
      head: {
        proto: h.proto,
        ns: h.nsLabel ?? h.ns,
        host: h.host,
        port: this.boundPort,
        container: h.container,
      },
      tail,
      state,
      parent: this.parent,
      remote: this.remote,
      connections: this.connections,
      refused: this.refusedTcp + (this.udp?.refused ?? 0),
      containers: [...this.containers],
    };
  }

  /** Stop listening, close connections, release children and containers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stack.dispose();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** A function that runs once; later calls get the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
