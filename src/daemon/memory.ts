/**
 * Memory given back after a bulk change (issue 20). An `apply` of thousands of segments (or
 * a restart building them again, or a script deleting them) allocates fast: V8 grows its
 * young generation to its maximum (32 MiB for its two halves) and the change's garbage is
 * promoted into old-generation pages that stay half empty. V8 shrinks neither on its own
 * while the daemon sits idle after the change, so both stayed in the daemon's RSS: 10 KiB
 * per idle segment with 10,000 of them, 4 of it live. Once the change is over and the daemon
 * idle, one collection for low memory (native/heap.cc) compacts the heap and unmaps what it
 * freed. A burst of thousands of `remote` connections handed to a peer channel's engine is
 * the same (issue 17: the young generation grown by 10,000 handoffs was about half of what an
 * idle stream cost the head's daemon), and counts the same way.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/log';
import { native } from '../native';

/**
 * Segments made or removed, or clients handed to a channel, within BULK_WINDOW_MS, that
 * make a change bulk: below it the garbage is a few MiB at most, and V8's own collections
 * keep up with it.
 */
export const BULK_CHANGES = 500;
/**
 * The time within which BULK_CHANGES make a bulk change: a trickle (a client every few
 * seconds over a `remote` segment, a script creating a segment now and then) never adds up
 * to one, and so never costs the daemon a full collection every few hundred connections.
 */
export const BULK_WINDOW_MS = 5000;
/** How often a bulk change is looked at to see whether it is over. */
const CHECK_MS = 100;
/**
 * The event loop's busy share over the last check below which the daemon is idle: the
 * change's reply written, its records saved (collected before, what they allocate after the
 * collection would be promoted into the old generation and stay).
 */
const IDLE_UTILIZATION = 0.25;

/** Counts segments made and removed and clients handed off; collects once a bulk change is over and the daemon idle. */
export class MemoryGiveBack {
  private changes = 0;
  /** When the count of changes started (Date.now()): it starts again after BULK_WINDOW_MS. */
  private since = 0;
  /** A segment made or removed since the last check. */
  private recent = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    /** What collects (the addon's; a test's stand-in). */
    private readonly reduce: () => void = () => native().reduceMemory(),
  ) {}

  /** A segment was made or removed, or a client handed to a channel. */
  changed(): void {
    this.recent = true;
    if (this.timer) {
      this.changes++; // (a bulk change under way: counted until its collection)
      return;
    }
    const now = Date.now();
    if (now - this.since > BULK_WINDOW_MS) {
      this.changes = 0;
      this.since = now;
    }
    if (++this.changes >= BULK_CHANGES) this.watch();
  }

  /**
   * Check every CHECK_MS: collect at the first check with no change since the one before and
   * an event loop mostly idle (never in the middle of an apply: one collection, after it).
   */
  private watch(): void {
    let last = performance.eventLoopUtilization();
    this.recent = false;
    const check = (): void => {
      const now = performance.eventLoopUtilization();
      const busy = performance.eventLoopUtilization(now, last).utilization;
      last = now;
      const over = !this.recent && busy < IDLE_UTILIZATION;
      this.recent = false;
      if (!over) return arm();
      this.timer = undefined;
      this.collect();
    };
    // (unref: a daemon that stops does not wait for it)
    const arm = (): void => void (this.timer = setTimeout(check, CHECK_MS)).unref();
    arm();
  }

  /**
   * Collect and compact now. The event loop waits for it (tens of ms, to a few hundred for a
   * heap of 100 MiB on a busy machine); connections the engine carries move meanwhile.
   */
  private collect(): void {
    const changes = this.changes;
    this.changes = 0;
    const before = process.memoryUsage.rss();
    const started = performance.now();
    this.reduce();
    const MiB = (n: number): number => Math.round(n / 104857.6) / 10;
    this.log.info(
      {
        changes,
        ms: Math.round(performance.now() - started),
        rssBeforeMiB: MiB(before),
        rssAfterMiB: MiB(process.memoryUsage.rss()),
      },
      'memory given back after a bulk change',
    );
  }
}
