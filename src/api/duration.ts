/**
 * Durations as the create grammar takes them (`idle 30s`, `health 2s`): a number with a unit,
 * `ms`, `s`, `m` or `h`, or a plain number of seconds. Decimals are accepted (`1.5m`, `0.5`).
 */
import { UsageError } from '../common/errors';

const UNIT_MS: Record<string, number> = { '': 1000, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration accepted: about 24 days, what a Node timer can wait. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * `30s`, `5m`, `1h`, `250ms` or `45` (seconds) -> milliseconds. Anything else, zero, or more than
 * MAX_DURATION_MS is a UsageError naming `what` (the action it was given to).
 */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `${what} "${text}" is not a duration: write it as 30s, 5m, 1h or a number of seconds`,
    );
  }
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? '']);
  if (ms <= 0) throw new UsageError(`${what} "${text}" must be longer than zero`);
  if (ms > MAX_DURATION_MS) throw new UsageError(`${what} "${text}" is too long: at most 596h (24 days)`);
  return ms;
}
