/**
 * While a tail's container is down: new connections (and UDP sessions) wait for it to run
 * again, up to the dial timeout; none is dialed into the namespace of a stopped container.
 */
import { WormholeError } from '../common/errors';
import type { ReadyGate } from './ready';

/** One segment's wait for its tail's container. */
export class TailWait {
  private back: { promise: Promise<void>; resolve: () => void } | undefined;

  /** The tail's container stopped: what asks from now on waits. */
  hold(): void {
    if (this.back) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.back = { promise, resolve };
  }

  /** It runs again (or the segment closes, or the tail is let go): what waits goes on. */
  release(): void {
    this.back?.resolve();
    this.back = undefined;
  }

  /**
   * Resolves at once, or when the container runs again; rejects after `ms`, naming it. With a
   * `ready` gate, then waits for the tail to be ready, in what is left of `ms`.
   */
  async wait(container: string, ms: number, ready?: ReadyGate): Promise<void> {
    const started = Date.now();
    await this.waitBack(container, ms);
    await ready?.wait(Math.max(0, ms - (Date.now() - started)));
  }

  private async waitBack(container: string, ms: number): Promise<void> {
    const back = this.back;
    if (!back) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        back.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new WormholeError(
                  'CONTAINER_DOWN',
                  `the tail's container ${container} is not running (waited ${ms / 1000} s for it)`,
                ),
              ),
            ms,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
