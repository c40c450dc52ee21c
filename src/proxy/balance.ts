/**
 * How a head with several tails picks one for a connection: round-robin; least-conn (the
 * tail with the fewest open connections); source (rendezvous hashing of the client's address,
 * so a client keeps its tail while that tail stays). Healthy tails first; when none is, the
 * others (a stale check must not refuse a client a tail that works).
 *
 * The pick itself is the engine's (native/pick.c, through the addon's pickTail), whichever
 * mover carries the connection: the engine for what it dials, this Balancer for what
 * JavaScript carries (WORMHOLE_ENGINE=off, a peer's attach, UDP sessions). One hash and one
 * algorithm, so that a client maps to the same tail with either mover.
 */
import { placed } from '../common/slots';
import { native } from '../native';

export const POLICIES = ['round-robin', 'least-conn', 'source'] as const;
export type Policy = (typeof POLICIES)[number];

/** The engine's number for a policy. */
export function policyCode(p: Policy): number {
  return native().engineConstants.policies[p];
}

/** Slots of tails (null: empty), their health and open counts, and the pick. */
export class Balancer<T> {
  // (each sized to its slots, not grown by V8's 17 at a time: common/slots.ts)
  private tails: (T | null)[] = [];
  private up: boolean[] = [];
  private open: number[] = [];
  private keys: string[] = [];
  /** The pick's cursor (round-robin's next slot), as the engine keeps one per group. */
  private cursor = 0;
  policy: Policy = 'round-robin';
  /**
   * Connections open per slot that another mover carries for the same head (the engine's),
   * so that least-conn counts every open connection of the head.
   */
  openElsewhere: (() => readonly (number | undefined)[]) | undefined;

  /** The tail in each slot (null or a hole: none). */
  get slots(): readonly (T | null)[] {
    return this.tails;
  }

  /** Put a tail in a slot (null empties it); `key` names it for source affinity. */
  set(slot: number, tail: T | null, key = ''): void {
    this.tails = placed(this.tails, slot, tail);
    this.up = placed(this.up, slot, true);
    this.open = placed(this.open, slot, 0);
    this.keys = placed(this.keys, slot, key);
  }

  setHealth(slot: number, up: boolean): void {
    if (this.slots[slot]) this.up[slot] = up;
  }

  /** Any tail at all? */
  get empty(): boolean {
    return !this.slots.some((t) => t !== null && t !== undefined);
  }

  /** The slot to try next, not in `tried`; -1 when every one was tried. `client`: its address. */
  pick(tried: ReadonlySet<number>, client = ''): number {
    const elsewhere = this.policy === 'least-conn' ? this.openElsewhere?.() : undefined;
    const { slot, cursor } = native().pickTail({
      policy: policyCode(this.policy),
      client,
      cursor: this.cursor,
      tails: Array.from(this.slots, (t, i) =>
        t
          ? {
              key: this.keys[i],
              up: this.up[i],
              open: this.open[i] + (elsewhere?.[i] ?? 0),
              tried: tried.has(i),
            }
          : null,
      ),
    });
    this.cursor = cursor;
    return slot;
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
