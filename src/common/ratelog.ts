/**
 * Rate-limited warnings: a burst of the same event (a refused connection, EMFILE on accept,
 * a failed UDP session) becomes one log line at once and, if it repeats, one more line per
 * interval with how many were left out. Without it one burst of 10,000 refused connections
 * is 10,000 log lines, and the log itself becomes the next resource to run out.
 */
import type { Logger } from './log';

/** How long repeats of one kind are folded into a single line, unless told otherwise. */
export const REPEAT_INTERVAL_MS = 5000;

interface Pending {
  /** Repeats folded since the last line. */
  count: number;
  /** The fields of the last repeat, logged with the count. */
  fields: Record<string, unknown>;
  timer: NodeJS.Timeout;
}

/** Folds repeated warnings of one kind (the message is the kind) into one line per interval. */
export class RateLimitedLog {
  /** Kinds logged within the interval; made at the first warning (every segment has one of these, and an empty Map is 184 bytes: issue 20). */
  private pending: Map<string, Pending> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = REPEAT_INTERVAL_MS,
  ) {}

  /** Log `msg` now, or count it if `msg` was logged less than an interval ago. */
  warn(fields: Record<string, unknown>, msg: string): void {
    const pending = (this.pending ??= new Map());
    const p = pending.get(msg);
    if (p) {
      p.count++;
      p.fields = fields;
      return;
    }
    this.log.warn(fields, msg);
    const timer = setTimeout(() => this.flush(msg), this.intervalMs);
    // A pending count must never keep the daemon alive at exit.
    timer.unref();
    pending.set(msg, { count: 0, fields, timer });
  }

  private flush(msg: string): void {
    const pending = this.pending!; // (set by the warn() that started the timer)
    const p = pending.get(msg);
    pending.delete(msg);
    if (p && p.count > 0) {
      // The repeats open a new interval of their own, so a steady stream is one line per interval.
      this.log.warn({ ...p.fields, repeated: p.count, seconds: this.intervalMs / 1000 }, msg);
      const timer = setTimeout(() => this.flush(msg), this.intervalMs);
      timer.unref();
      pending.set(msg, { count: 0, fields: p.fields, timer });
    }
  }
}
