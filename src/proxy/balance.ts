/**
 * How a head with several tails picks one for a connection, as the engine does in C
 * (native/engine.c, pick_tail) for the connections it dials: round-robin; least-conn (the
 * tail with the fewest open connections); source (rendezvous hashing of the client's address,
 * so a client keeps its tail while that tail stays). Healthy tails first; when none is, the
 * others (a stale check must not refuse a client a tail that works). The JavaScript mover and
 * UDP sessions pick here.
 */
import { createHash } from 'node:crypto';

export const POLICIES = ['round-robin', 'least-conn', 'source'] as const;
export type Policy = (typeof POLICIES)[number];

/** The engine's number for a policy. */
export function policyCode(p: Policy): number {
  return POLICIES.indexOf(p);
}

function hash(text: string): bigint {
  return createHash('sha256').update(text).digest().readBigUInt64BE(0);
}

/** Slots of tails (null: empty), their health and open counts, and the pick. */
export class Balancer<T> {
  readonly slots: (T | null)[] = [];
  private readonly up: boolean[] = [];
  private readonly open: number[] = [];
  private readonly keys: bigint[] = [];
  private rr = 0;
  policy: Policy = 'round-robin';

  /** Put a tail in a slot (null empties it); `key` names it for source affinity. */
  set(slot: number, tail: T | null, key = ''): void {
    this.slots[slot] = tail;
    this.up[slot] = true;
    this.open[slot] = 0;
    this.keys[slot] = hash(key);
  }

  setHealth(slot: number, up: boolean): void {
    if (this.slots[slot]) this.up[slot] = up;
  }

  /** Any tail at all? */
  get empty(): boolean {
    return !this.slots.some((t) => t !== null && t !== undefined);
  }

  /** The slot to try next, not in `tried`; -1 when every one was tried. */
  pick(tried: ReadonlySet<number>, client = ''): number {
    const n = this.slots.length;
    const src = this.policy === 'source' ? hash(client) : 0n;
    for (const any of [false, true]) {
      let best = -1;
      let bestOpen = Infinity;
      let bestScore = -1n;
      for (let k = 0; k < n; k++) {
        const i = (this.rr + k) % n;
        if (!this.slots[i] || tried.has(i) || (!any && !this.up[i])) continue;
        if (this.policy === 'round-robin') {
          this.rr = i + 1;
          return i;
        }
        if (this.policy === 'least-conn') {
          if (this.open[i] < bestOpen) [best, bestOpen] = [i, this.open[i]];
        } else {
          const score = hash(`${src}:${this.keys[i]}`);
          if (score > bestScore) [best, bestScore] = [i, score];
        }
      }
      if (best >= 0) {
        if (this.policy === 'least-conn') this.rr = best + 1;
        return best;
      }
    }
    return -1;
  }

  /** A connection to slot i opened; the returned function says it closed. */
  opened(slot: number): () => void {
    this.open[slot] = (this.open[slot] ?? 0) + 1;
    const tail = this.slots[slot];
    return () => {
      if (this.slots[slot] === tail) this.open[slot]--;
    };
  }
}
