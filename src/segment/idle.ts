/**
 * Scale to zero (SPEC.md, "Scale to zero"): a segment with `idle DURATION` and a trigger lets
 * go of what its trigger made once nothing has used it for DURATION, and its trigger is armed
 * again: the next connection runs it again and waits for it, as the first one did.
 *
 * Activity is read from the counters the segment keeps anyway (the engine's, the JavaScript
 * mover's, the UDP relay's): connections open and in all, and when a byte last moved, sampled
 * by one timer per segment while its trigger's tail is there. Nothing is done per connection.
 * A connection that is open is activity for as long as it is open, however quiet; for UDP only
 * datagrams count (a session is only a client address remembered).
 *
 * What the trigger made is released: its containers are stopped, not removed (their files
 * stay), and the next run starts the same containers again; they are removed with the
 * segment. With `idle-action pause` they are paused instead (frozen, memory and namespace
 * kept: the next run thaws them, and the service answers as it was, with no start to wait for). Its children, local and on peers, are deleted (a peer removes their containers
 * with them) and made again by the next run.
 */
import type { IdleAction, Step } from '../api/grammar';
import type { DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerRuntime } from './context';

/** What the counters say: connections open (UDP: 0) and in all, and when a byte last moved. */
export interface Activity {
  open: number;
  /** Connections (UDP: datagrams from clients) since the segment was made. */
  total: number;
  /** ms since the epoch; 0: never. */
  lastActive: number;
}

/**
 * The idle decision: nothing open, and nothing for `idleMs` since `lastActive` (the last byte,
 * or the last moment a connection was seen open, whichever is later).
 */
export function isIdle(open: number, lastActive: number, now: number, idleMs: number): boolean {
  return open === 0 && now - lastActive >= idleMs;
}

/** How often the counters are read: a tenth of the idle time, between 100 ms and 5 s. */
export function checkEvery(idleMs: number): number {
  return Math.min(5000, Math.max(100, Math.floor(idleMs / 10)));
}

/** What the watch needs of its segment. */
export interface IdleSegment {
  readonly id: string;
  activity(): Activity;
  /**
   * New connections stop going to the tail (they wait for what follows). Resolves once the
   * mover has taken the change: a connection that reached the tail meanwhile is in the
   * counters by then.
   */
  holdTail(): Promise<void>;
  /** The tail is kept after all: connections go to it again. */
  resumeTail(): Promise<void>;
  /** Forget the tail and release what the trigger made; the trigger is armed again. */
  releaseTail(): Promise<void>;
}

/** One segment's idle timer and what it decided. */
export class IdleWatch {
  /** When it last let go of its trigger's work (ms since the epoch). */
  idledAt: number | undefined;
  /** Released, and not run again since. */
  idle = false;
  private timer: NodeJS.Timeout | undefined;
  /** The last moment the segment was seen busy (a connection open, a new one counted). */
  private busyAt = 0;
  private wasOpen = false;
  private seenTotal = 0;
  private releasing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly idleMs: number,
    private readonly seg: IdleSegment,
    private readonly log: Logger,
  ) {}

  /** The trigger has run: its tail is there from now, and watched. */
  watch(): void {
    if (this.stopped) return;
    clearInterval(this.timer);
    const a = this.seg.activity();
    this.busyAt = Date.now();
    this.wasOpen = a.open > 0;
    this.seenTotal = a.total;
    this.timer = setInterval(() => this.check(), checkEvery(this.idleMs));
    this.timer.unref();
  }

  /** The trigger runs (again). */
  running(): void {
    this.idle = false;
  }

  /** A release under way, which the next run waits for; undefined when there is none. */
  pending(): Promise<void> | undefined {
    return this.releasing;
  }

  /** No more watching: the segment closes, or its daemon hands over to another. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** For list: the idle time, and when it last idled. */
  info(): { idleMs: number; idledAt?: number } {
    return { idleMs: this.idleMs, idledAt: this.idledAt };
  }

  private check(): void {
    if (this.releasing || this.stopped) return;
    const now = Date.now();
    const a = this.seg.activity();
    // a connection open now, or at the last look (it closed since), or one that came and
    // went in between: busy until now
    if (a.open > 0 || this.wasOpen || a.total !== this.seenTotal) this.busyAt = now;
    this.wasOpen = a.open > 0;
    this.seenTotal = a.total;
    const last = Math.max(a.lastActive, this.busyAt);
    if (isIdle(a.open, last, now, this.idleMs)) void this.release(now - last);
  }

  private async release(idleFor: number): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    let done!: () => void;
    this.releasing = new Promise<void>((resolve) => (done = resolve));
    try {
      const before = this.seg.activity();
      await this.seg.holdTail();
      const after = this.seg.activity();
      if (this.stopped || after.open > 0 || after.total !== before.total) {
        // a connection came as it was decided: the tail stays
        await this.seg.resumeTail();
        this.watch();
        return;
      }
      const started = Date.now();
      this.idle = true;
      this.idledAt = started;
      await this.seg.releaseTail();
      this.log.info(
        { segment: this.seg.id, idleForMs: idleFor, releaseMs: Date.now() - started },
        'idle: released what the trigger made',
      );
    } catch (err) {
      this.log.warn(
        { segment: this.seg.id, err: errorMessage(err) },
        'idle: releasing what the trigger made failed (the trigger is armed again)',
      );
    } finally {
      this.releasing = undefined;
      done();
    }
  }
}

/**
 * A segment's TriggerContainers when its trigger runs a container (`docker-run`), removed
 * with the segment (`stack`); undefined otherwise.
 */
export function keptContainers(
  spec: { trigger: readonly Step[] | null; idleAction?: IdleAction },
  ctx: { containers: ContainerRuntime; log: Logger },
  id: string,
  closing: () => boolean,
  stack: DisposableStack,
): TriggerContainers | undefined {
  if (!spec.trigger?.some((s) => s.op === 'docker-run')) return undefined;
  const kept = new TriggerContainers(ctx.containers, id, closing, ctx.log, spec.idleAction ?? 'stop');
  stack.defer(() => kept.removeAll());
  return kept;
}

/**
 * The containers a segment's trigger runs, kept across idle: stopped (or paused) when it idles
 * (or when a run fails), started again (or thawed: the runtime's start does either) by the
 * next run, removed with the segment.
 */
export class TriggerContainers {
  /** The container of each trigger step (`trigger/N`). */
  private readonly byStep = new Map<string, string>();

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly segmentId: string,
    /** True once the segment is being deleted: containers are removed, not stopped. */
    private readonly closing: () => boolean,
    private readonly log: Logger,
    readonly action: IdleAction = 'stop',
  ) {}

  /** The step's container, running: the one kept for it started again, or a new one. */
  async run(args: string[], step: string): Promise<{ id: string; nsPath: string }> {
    const kept = this.byStep.get(step);
    if (kept !== undefined) {
      try {
        return await this.runtime.start(kept);
      } catch (err) {
        if (!(err instanceof WormholeError && err.code === 'CONTAINER_NOT_FOUND')) throw err;
        this.byStep.delete(step);
        this.log.warn(
          { segment: this.segmentId, container: kept, step },
          'the container idle stopped was removed meanwhile: running a new one',
        );
      }
    }
    // (a daemon that took over finds its predecessor's, running or stopped by idle)
    const made = await this.runtime.run(args, this.segmentId, step, { reuse: true });
    this.byStep.set(step, made.id);
    return made;
  }

  /** Let a container go: stopped or paused (idle, a failed run), or removed when the segment closes. */
  release(id: string): Promise<void> {
    if (this.closing()) return this.runtime.remove(id);
    return this.action === 'pause' ? this.runtime.pause(id) : this.runtime.stop(id);
  }

  /** The segment is deleted: every container it kept goes, and any a predecessor left. */
  async removeAll(): Promise<void> {
    const ids = [...this.byStep.values()];
    this.byStep.clear();
    await Promise.all(ids.map((id) => this.runtime.remove(id)));
    await this.runtime
      .removeFor(this.segmentId)
      .catch((err: unknown) =>
        this.log.warn(
          { segment: this.segmentId, err: errorMessage(err) },
          'could not look for containers left by an earlier daemon',
        ),
      );
  }
}
