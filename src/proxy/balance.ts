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

/** One slot's tail, with its health, its open count and its name for source affinity. */
interface Slot<T> {
  tail: T;
  up: boolean;
  open: number;
  key: string;
}

/** Who counts connections to the same tails that another mover carries (the engine's head). */
export interface OpenElsewhere {
  openElsewhere(): readonly (number | undefined)[];
}

/** Slots of tails (null: empty), their health and open counts, and the pick. */
export class Balancer<T> {
  /**
   * One record a slot, in one array sized to the slots (common/slots.ts): four arrays, one
   * for each of the four, were 0.2 KiB more of every idle segment (issue 20).
   */
  private entries: (Slot<T> | null)[] = [];
  /** The pick's cursor (round-robin's next slot), as the engine keeps one per group. */
  private cursor = 0;
  policy: Policy = 'round-robin';

  /** The tail in each slot (null or a hole: none). */
  get slots(): readonly (T | null)[] {
    return Array.from(this.entries, (e) => e?.tail ?? null);
  }

  /** How many slots (some may be empty). */
  get size(): number {
    return this.entries.length;
  }

  /** The tail in slot i (null: none). */
  tail(i: number): T | null {
    return this.entries[i]?.tail ?? null;
  }

  /** Put a tail in a slot (null empties it); `key` names it for source affinity. */
  set(slot: number, tail: T | null, key = ''): void {
    this.entries = placed(this.entries, slot, tail === null ? null : { tail, up: true, open: 0, key });
  }

  setHealth(slot: number, up: boolean): void {
    const e = this.entries[slot];
    if (e) e.up = up;
  }

  /** Any tail at all? */
  get empty(): boolean {
    return !this.entries.some((e) => e);
  }

  /**
   * The slot to try next, not in `tried`; -1 when every one was tried. `client`: its address.
   * `elsewhere`: for least-conn, the open counts another mover keeps for the same tails.
   */
  pick(tried: ReadonlySet<number>, client = '', elsewhere?: OpenElsewhere): number {
    const other = this.policy === 'least-conn' ? elsewhere?.openElsewhere() : undefined;
    const { slot, cursor } = native().pickTail({
      policy: policyCode(this.policy),
      client,
      cursor: this.cursor,
      tails: Array.from(this.entries, (e, i) =>
        e ? { key: e.key, up: e.up, open: e.open + (other?.[i] ?? 0), tried: tried.has(i) } : null,
      ),
    });
    this.cursor = cursor;
    return slot;
  }

  /** A connection to slot i opened; the returned function says it closed. */
  opened(slot: number): () => void {
    const e = this.entries[slot];
    if (e) e.open++;
    return () => {
      // (a slot given a new tail since counts from 0 again: not this one's to count down)
      if (e && this.entries[slot] === e) e.open--;
    };
  }
}
