/**
 * `apply`: the daemon's top segments made to match a declared set. Each declared id whose
 * plan is new is created, one whose plan changed is built again (deleted, then created), one
 * whose plan is the same is left alone (its connections stay open); with `prune`, a segment an
 * earlier apply made for the same key (never one made by `create`, nor another key's) that the
 * set no longer names is deleted.
 *
 * All or nothing: every plan is checked (the grammar, the id) before anything changes, and if
 * a step fails on the way (a port in use, an image that will not run) the steps already done
 * are undone in reverse, the old plans built again from their records, so that the daemon is
 * left as it was and the error names the id that failed. (An undo that fails in its turn is
 * logged; the segment it concerned is then missing, as after a failed create.)
 */
import { type Action, parsePlan } from '../api/grammar';
import { samePlan } from '../api/planwords';
import type { Params, Result } from '../api/protocol';
import { UsageError, WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { SegmentRecord } from '../store';

/** What apply needs of the segment manager. */
export interface ApplyTarget {
  localRecords(): SegmentRecord[];
  hasId(id: string): boolean;
  create(actions: Action[], made: { owner: string; applied: boolean }): Promise<unknown>;
  delete(id: string): Promise<string[]>;
}

type Change = Result<'apply'>['changes'][number]['change'];
/** One step of an apply, with what it takes to undo it. */
interface Step {
  id: string;
  change: Exclude<Change, 'unchanged'>;
  /** The plan to build (created, changed). */
  actions?: Action[];
  /** The record it replaces (changed, deleted): built again to undo. */
  old?: SegmentRecord;
}

/** `actions` with the top segment's id set to `id` (a plan in apply's file names none). */
function withId(id: string, actions: Action[]): Action[] {
  const named = parsePlan(actions).id;
  if (named !== undefined && named !== id)
    throw new UsageError(`its plan names another id (${named}): the id is the key in the file`);
  return named === undefined ? [{ verb: 'id', args: [id] }, ...actions] : actions;
}

/** Decide each id's change; throws, naming the id, on the first plan that cannot be applied. */
function planSteps(
  target: ApplyTarget,
  p: Params<'apply'>,
  owner: string,
): { steps: Step[]; unchanged: string[] } {
  const mine = new Map(target.localRecords().map((r) => [r.id, r]));
  const steps: Step[] = [];
  const unchanged: string[] = [];
  const named = new Set<string>();
  for (const { id, actions } of p.segments) {
    if (named.has(id)) throw new WormholeError('USAGE', `segment ${id} is declared twice`);
    named.add(id);
    let full: Action[];
    try {
      full = withId(id, actions);
    } catch (err) {
      throw new WormholeError('USAGE', `segment ${id}: ${errorMessage(err)}`);
    }
    const old = mine.get(id);
    if (!old) {
      if (target.hasId(id))
        throw new WormholeError(
          'ID_EXISTS',
          `segment ${id}: the id is taken by a segment not made by create or apply (a child, or a peer's): rename it`,
        );
      steps.push({ id, change: 'created', actions: full });
    } else if (samePlan(old.actions, full)) unchanged.push(id);
    else steps.push({ id, change: 'changed', actions: full, old });
  }
  if (p.prune)
    for (const r of mine.values())
      if (r.applied && (r.owner ?? 'admin') === owner && !named.has(r.id))
        steps.push({ id: r.id, change: 'deleted', old: r });
  // deletions first: a pruned segment may hold the port a new plan takes
  const order: Record<Step['change'], number> = { deleted: 0, changed: 1, created: 2 };
  steps.sort((a, b) => order[a.change] - order[b.change]);
  return { steps, unchanged };
}

/**
 * Apply a declared set of segments for the key `owner` (what it creates is its own); the
 * change made (or, dry, to be made) for each id. `progress` is told after each step.
 */
export async function applySegments(
  target: ApplyTarget,
  p: Params<'apply'>,
  owner: string,
  log: Logger,
  progress?: (done: number, total: number) => void,
): Promise<Result<'apply'>> {
  const { steps, unchanged } = planSteps(target, p, owner);
  const changes = [
    ...steps.map(({ id, change }) => ({ id, change })),
    ...unchanged.map((id) => ({ id, change: 'unchanged' as const })),
  ];
  if (p.dryRun) return { changes };
  const done: Step[] = [];
  for (const step of steps) {
    try {
      if (step.old) await target.delete(step.id);
      if (step.actions) await target.create(step.actions, { owner, applied: true });
      done.push(step);
      progress?.(done.length, steps.length);
    } catch (err) {
      // the step itself may have deleted the old one before its create failed: undone too
      await undo(target, [...done, { ...step, actions: undefined }], log);
      if (err instanceof WormholeError)
        throw new WormholeError(err.code, `segment ${step.id}: ${err.message} (nothing was changed)`);
      throw err;
    }
  }
  log.info({ changes: steps.map((s) => `${s.change} ${s.id}`) }, 'applied');
  return { changes };
}

/** Undo steps in reverse: what was created goes, what was replaced or deleted is built again. */
async function undo(target: ApplyTarget, done: Step[], log: Logger): Promise<void> {
  for (const step of done.reverse()) {
    try {
      if (step.actions) await target.delete(step.id);
      if (step.old && !target.hasId(step.id))
        await target.create(step.old.actions, {
          owner: step.old.owner ?? 'admin',
          applied: step.old.applied === true,
        });
    } catch (err) {
      log.warn(
        { segment: step.id, err: errorMessage(err) },
        'apply failed, and its undo failed for this segment',
      );
    }
  }
}
