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

/** Is this dial error worth retrying? */
export function isRetryable(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && RETRYABLE.has(code);
}

/**
 * Call `attempt` until it gives a connected stream, retrying retryable failures with a short
 * back-off until `timeoutMs` has passed or `signal` aborts. The last error is kept in the
 * thrown WormholeError (code DIAL_FAILED).
 */
export async function dialWithRetry<T>(
  attempt: () => Promise<T>,
  what: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    try {
      return await attempt();
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
