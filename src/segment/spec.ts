/**
 * What a segment is made from: its spec (decided by the manager before the segment exists,
 * checked when it is made), what it calls on, and where its tail is.
 */
import type { Cidr } from '../api/cidr';
import type { IdleAction, ReadyCheck } from '../api/grammar';
import type { Step } from '../api/grammar';
import type { Protocol } from '../api/url';
import type { DisposableStack } from '../common/disposable';
import { WormholeError } from '../common/errors';
import type { Policy } from '../proxy/balance';
import type { SegmentContext } from './context';
import type { Draft, Endpoint } from './endpoint';
import type { ContainerFollower } from './follow';
import type { Segment } from './segment';

/**
 * Where a segment's tail is: a local endpoint, or a segment on a peer reached by attach
 * (with the PROXY protocol version its connections start with, when the tail wants one).
 */
export type Tail =
  | { kind: 'local'; ep: Endpoint }
  | { kind: 'peer'; host: string; id: string; proto: Protocol; proxy?: 1 | 2 }
  /** Several tails (`also`, `docker-label`): their drafts, resolved and followed by a TailSet. */
  | { kind: 'set'; drafts: Draft[]; head: Draft };

/** Runs a trigger's steps; given by the manager, which knows how to apply steps. */
export type TriggerRunner = (seg: Segment, steps: Step[], scope: DisposableStack) => Promise<Tail>;

/**
 * What a segment is built from, decided by the manager before it exists (the create-time
 * steps applied, the head resolved); checked when the segment is made.
 */
export interface SegmentSpec {
  id: string;
  parent: string | null;
  /** Created by a peer for one of its segments. */
  remote: boolean;
  /** Where the head listens (port 0: any, and boundPort says which). */
  head: Endpoint;
  /** The drafts after the create-time steps; a trigger starts from these. */
  headDraft: Draft;
  /** The tails' drafts (more than one after `also`). */
  tailDrafts: Draft[];
  /** With several tails: how one is picked, and how often they are checked (null: never). */
  balance: Policy;
  healthMs: number | null;
  /** The trigger's steps (null: the tail is set at create time). */
  trigger: Step[] | null;
  /** Scale to zero after this long without use (with a trigger only). */
  idleMs?: number;
  /** What idle does to the trigger's containers (default stop). */
  idleAction?: IdleAction;
  /** `allow`: the only networks the head takes clients from (absent: any). */
  allow?: Cidr[];
  /** `wake-on-data`: a client counts only from its first byte (with a trigger only). */
  wakeOnData?: boolean;
  /** `ready`: the tail is dialed only once it is ready (src/segment/ready.ts). */
  ready?: ReadyCheck;
  /** `dial-timeout`: this segment's own --dial-timeout (ms). */
  dialTimeoutMs?: number;
  /** What the create-time steps made (their containers): released with the segment. */
  made: { scope: DisposableStack; containers: string[] };
}

/** What a segment calls on besides its spec. */
export interface SegmentDeps {
  ctx: SegmentContext;
  runTrigger: TriggerRunner;
  /** Keeps ends in containers with their containers across restarts. */
  follower: ContainerFollower;
}

/** Refuse a spec no segment can be built from (a bug in its maker, not the user's input). */
export function checkSpec(spec: SegmentSpec): void {
  const wrong = (what: string): never => {
    throw new WormholeError('INTERNAL', `segment ${spec.id}: ${what}`);
  };
  if (spec.tailDrafts.length === 0) wrong('no tail draft');
  if (spec.healthMs !== null && !(spec.healthMs > 0)) wrong('a health interval must be positive');
  if (spec.idleMs !== undefined && !spec.trigger) wrong('idle needs a trigger');
  if (spec.idleMs !== undefined && !(spec.idleMs > 0)) wrong('an idle time must be positive');
  if (spec.dialTimeoutMs !== undefined && !(spec.dialTimeoutMs > 0)) wrong('a dial timeout must be positive');
}
