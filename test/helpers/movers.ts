/**
 * Both movers: a suite inside forEachMover runs once with the splice engine moving the bytes
 * and once with the JavaScript mover the daemon falls back to when the engine cannot start
 * (WORMHOLE_ENGINE=off). What a user sees must not depend on which one runs.
 */
import { describe } from 'node:test';
import type { DaemonOpts } from './daemon';

/** Which mover a suite runs with. */
export type Mover = 'engine' | 'javascript';

/** The daemon options that choose a mover (merged into the suite's own). */
export function moverOpts(mover: Mover, opts: DaemonOpts = {}): DaemonOpts {
  return mover === 'javascript' ? { ...opts, env: { ...opts.env, WORMHOLE_ENGINE: 'off' } } : opts;
}

/**
 * describe(`${title} (engine mover)`) and describe(`${title} (javascript mover)`), each
 * running `body` with its mover; `body` starts its daemon with `moverOpts(mover, ...)`.
 */
export function forEachMover(title: string, body: (mover: Mover) => void): void {
  for (const mover of ['engine', 'javascript'] as const)
    describe(`${title} (${mover} mover)`, () => body(mover));
}
