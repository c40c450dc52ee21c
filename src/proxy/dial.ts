/**
 * Dialing a tail that may not be listening yet: a service in a container that has just
 * started opens its port a little later, so refused connections are retried until a deadline.
 */
import { WormholeError, errnoCode, errorMessage } from '../common/errors';

/**
 * Errors that mean "not there yet", worth another try; for a unix tail, ENOENT (its server
 * has not made the socket file yet) and EAGAIN (its backlog is full) too.
 */
const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EAGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EAI_AGAIN',
]);

/** The least time one attempt is given, even when the dial timeout is spent. */
const MIN_ATTEMPT_MS = 100;

/** Is this dial error worth retrying? */
export function isRetryable(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && RETRYABLE.has(code);
}

/**
 * Call `attempt` until it gives a connected stream, retrying retryable failures with a short
 * back-off until `timeoutMs` has passed or `signal` aborts; each attempt is given the time
 * left (its connect gives up then: a tail that drops SYNs). The last error is kept in the
 * thrown WormholeError (code DIAL_FAILED). `spentMs`: how long the client was dialed already
 * (by the engine, before it handed the client back), taken off the timeout.
 */
export async function dialWithRetry<T>(
  attempt: (leftMs: number) => Promise<T>,
  what: string,
  timeoutMs: number,
  signal?: AbortSignal,
  spentMs = 0,
): Promise<T> {
  const deadline = Date.now() + timeoutMs - spentMs;
  let delay = 50;
  for (;;) {
    try {
      // (at least a moment: a first try is made even when the time is spent)
      return await attempt(Math.max(MIN_ATTEMPT_MS, deadline - Date.now()));
    } catch (err) {
      if (signal?.aborted) throw new WormholeError('ABORTED', `dial ${what} abandoned: the segment closed`);
      if (!isRetryable(err) || Date.now() + delay > deadline) {
        const tried = isRetryable(err) ? ` (retried for ${timeoutMs / 1000} s)` : '';
        throw new WormholeError(
          'DIAL_FAILED',
          `cannot connect to ${what}: ${errnoCode(err) ?? (err instanceof WormholeError ? err.code : errorMessage(err))}${tried}`,
          {
            cause: err,
          },
        );
      }
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 400);
  }
}
