/**
 * Port ranges (SPEC.md "Port ranges"): a head `url :A-B` listens on every port from A to B,
 * bound all or nothing; a tail `:C-D` of the same length takes head port A+i to C+i, a tail
 * with one port takes them all. The head's sockets stay in port order everywhere (the
 * engine's group, the JavaScript movers, a takeover's manifest): a socket's index in them is
 * its place in the range.
 */
import { WormholeError, errorMessage } from '../common/errors';
import type { Endpoint } from './endpoint';

/** How many ports an end listens on or spans: B - A + 1 for a range, else 1. */
export function rangeCount(ep: Pick<Endpoint, 'port' | 'portEnd'>): number {
  return ep.portEnd === undefined ? 1 : ep.portEnd - ep.port + 1;
}

/** The tail port a client of the head's port at `offset` (its place in the range) goes to. */
export function tailPortFor(tail: Pick<Endpoint, 'port' | 'portEnd'>, offset: number): number {
  return tail.portEnd === undefined ? tail.port : tail.port + offset;
}

/**
 * Bind `count` ports from `first` with `bindOne`, in order: all of them, or (one fails) none,
 * every socket bound so far closed before the error (which names the port and the range) is
 * thrown.
 */
export async function bindAll<T>(
  first: number,
  count: number,
  bindOne: (port: number) => Promise<T>,
  closeOne: (bound: T) => void,
): Promise<T[]> {
  const bound: T[] = [];
  try {
    for (let i = 0; i < count; i++) bound.push(await bindOne(first + i));
    return bound;
  } catch (err) {
    for (const b of bound) closeOne(b);
    if (count === 1) throw err;
    const code = err instanceof WormholeError ? err.code : 'SYSTEM_ERROR';
    throw new WormholeError(
      code,
      `port range ${first}-${first + count - 1}: ${errorMessage(err)} (no port of the range was kept)`,
    );
  }
}
