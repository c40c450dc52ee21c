/**
 * A time bound on a promise: what the daemon waits for (a peer, the Docker engine, its own
 * segments at stop) it waits for with a limit, so that a stuck party is named, not waited on.
 */

/**
 * Settle like `p`, or reject with `onTimeout()` after `ms`. `p` itself is not cancelled (it
 * may still finish later); its eventual failure is swallowed once the deadline has passed.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}
