/**
 * Waiting for something to come about in a test, without a timing assertion: poll until it
 * does, or give up after a patience far above what it needs, saying what was last seen.
 */

/** How long anything may take to come about; far above what it needs. */
export const PATIENCE_MS = 30_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retry `fn` until it returns a value (not undefined) or PATIENCE_MS has passed; the last error says why. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + PATIENCE_MS;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${PATIENCE_MS / 1000} s${last ? ` (last: ${String(last)})` : ''}`);
    }
    await sleep(everyMs);
  }
}

/**
 * Read `get` until `check` holds of what it gives, or PATIENCE_MS has passed; then fail
 * saying what was seen last.
 */
export async function until<T>(what: string, get: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + PATIENCE_MS;
  let v = await get();
  while (!check(v) && Date.now() < deadline) {
    await sleep(100);
    v = await get();
  }
  if (!check(v))
    throw new Error(`${what}: not within ${PATIENCE_MS / 1000} s (last seen: ${JSON.stringify(v)})`);
  return v;
}
