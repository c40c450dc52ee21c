/**
 * Segments declared on containers: a label `wormhole.NAME=PLAN` on a container makes the
 * segment `CONTAINER.NAME` (the create grammar as one string, as in `apply`'s file) when the
 * container runs, and deletes it when the container is removed (a stopped container keeps
 * it: the segment follows its container, as any segment with an end in one). In PLAN,
 * `docker-ns self` is the labelled container, and `docker-ns NAME` naming a Compose service
 * of the container's own project is that service's container, so that a Compose file wires
 * its services with no command typed:
 *
 *   app:
 *     labels:
 *       wormhole.db: "url :3306 docker-ns self tail url :3306 docker-ns db"
 *
 * NAME is letters, digits, `-` and `_`: a longer key under `wormhole.` (`wormhole.test.recipe`,
 * say, inherited from an image) is another tool's, not a plan; nor are the daemon's own labels
 * on the containers it runs (wormhole.owner, wormhole.segment, wormhole.step). Everything is matched again (reconciled) on each container
 * event and when the event stream (re)connects, one pass at a time: what is declared and
 * missing is made, what changed is made again, what lost its container or its label goes. A
 * label that cannot be made (a bad plan, a service not running yet) is a failed row with why
 * and a log line, tried again at the next event and every --retry-failed seconds; never a crash.
 */
import { type Action, parsePlan } from '../api/grammar';
import { planActions, samePlan } from '../api/planwords';
import type { SegmentInfo } from '../api/protocol';
import { UsageError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerLister, ContainerRuntime, LabelledContainer } from '../docker/runtime';
import type { SegmentRecord } from '../store';

/** The label prefix; what follows it is the segment's name within its container. */
export const LABEL_PREFIX = 'wormhole.';
/** Labels the daemon puts on the containers it runs itself: never plans. */
const OWN_LABELS = new Set(['wormhole.owner', 'wormhole.segment', 'wormhole.step']);
/** A plan's label: `wormhole.` and a NAME without dots. */
const PLAN_LABEL = /^wormhole\.[A-Za-z0-9_-]{1,63}$/;
const COMPOSE_PROJECT = 'com.docker.compose.project';
const COMPOSE_SERVICE = 'com.docker.compose.service';

/** What labels need of the segment manager. */
export interface LabelTarget {
  /** The records of the segments made from labels. */
  labelRecords(): SegmentRecord[];
  /** Make a segment for a label of container `made.label`. */
  create(actions: Action[], made: { label: string }): Promise<unknown>;
  delete(id: string): Promise<string[]>;
}

/** Whether a label's key declares a segment (`wormhole.NAME`, not one of the daemon's own). */
export function isPlanLabel(key: string): boolean {
  return PLAN_LABEL.test(key) && !OWN_LABELS.has(key);
}

/** One label's segment as its container declares it. */
interface Wanted {
  id: string;
  container: string;
  actions: Action[];
}

/**
 * A label's plan as actions: `docker-ns self` made the container's id, a Compose service of
 * its project its container's name. Throws UsageError (why) on a plan that cannot be made.
 */
export function labelActions(
  plan: string,
  c: LabelledContainer,
  all: readonly LabelledContainer[],
): Action[] {
  const project = c.labels[COMPOSE_PROJECT];
  const actions = planActions(plan).map((a): Action => {
    if (a.verb !== 'docker-ns' || a.args.length === 0) return a;
    if (a.args[0] === 'self') return { verb: 'docker-ns', args: [c.id] };
    if (project === undefined) return a;
    const service = all.find(
      (o) => o.labels[COMPOSE_PROJECT] === project && o.labels[COMPOSE_SERVICE] === a.args[0],
    );
    if (!service) return a; // not a service of the project: a container's name, as in create
    if (!service.running) throw new UsageError(`the service ${a.args[0]} is not running (yet)`);
    return { verb: 'docker-ns', args: [service.name] };
  });
  if (parsePlan(actions).id !== undefined)
    throw new UsageError('a label plan names no id: the segment is CONTAINER.NAME');
  return actions;
}

/** Follows containers' `wormhole.NAME` labels and keeps their segments (see the file's comment). */
export class LabelSegments {
  /** Labels that could not be made, by segment id: listed as failed, tried again. */
  private readonly failures = new Map<string, { container: string; error: string }>();
  private running: Promise<void> | undefined;
  private again = false;
  private stopWatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly lister: ContainerLister,
    private readonly runtime: Pick<ContainerRuntime, 'watch'>,
    private readonly target: LabelTarget,
    private readonly log: Logger,
    private readonly retryMs: number,
  ) {}

  /** Start following (a first pass runs when the event stream connects). */
  start(): void {
    this.stopWatch = this.runtime.watch({
      event: (e) => {
        if (e.action === 'start' || e.action === 'destroy') void this.reconcile();
      },
      connected: () => void this.reconcile(),
    });
    this.timer = setInterval(() => {
      if (this.failures.size > 0) void this.reconcile();
    }, this.retryMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopWatch?.();
    clearInterval(this.timer);
  }

  /** The labels that could not be made, as `list` shows them. */
  failedInfos(): SegmentInfo[] {
    return [...this.failures].map(([id, f]) => ({
      id,
      url: '',
      head: { proto: 'tcp', ns: null, host: '', port: 0 },
      tail: null,
      state: 'failed',
      error: f.error,
      parent: null,
      remote: false,
      connections: 0,
      containers: [],
      label: f.container,
    }));
  }

  /** Match the segments to the labels now; one pass at a time, another after if asked meanwhile. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          this.log.warn(
            { err: errorMessage(err) },
            'labels not read (tried again at the next container event)',
          );
        }
      } while (this.again);
      this.running = undefined;
    })();
    return this.running;
  }

  private async pass(): Promise<void> {
    const all = await this.lister.containers();
    const wanted = new Map<string, Wanted>();
    const failures = new Map<string, { container: string; error: string }>();
    for (const c of all) {
      if (!c.running) continue;
      for (const [key, plan] of Object.entries(c.labels)) {
        if (!isPlanLabel(key)) continue;
        const id = `${c.name}.${key.slice(LABEL_PREFIX.length)}`;
        try {
          wanted.set(id, { id, container: c.name, actions: labelActions(plan, c, all) });
        } catch (err) {
          failures.set(id, { container: c.name, error: `label ${key}: ${errorMessage(err)}` });
        }
      }
    }
    const byName = new Map(all.map((c) => [c.name, c]));
    for (const r of this.target.labelRecords()) {
      const c = byName.get(r.label ?? '');
      const declared = c?.labels[`${LABEL_PREFIX}${r.id.slice((r.label ?? '').length + 1)}`];
      const want = wanted.get(r.id);
      // gone: its container was removed or lost the label; a stopped one keeps its segment
      const gone = !c || declared === undefined;
      const changed = want !== undefined && !samePlan(r.actions, want.actions);
      if (gone || changed) {
        await this.target.delete(r.id).catch((err: unknown) => {
          this.log.warn({ segment: r.id, err: errorMessage(err) }, 'label segment not deleted');
        });
        this.log.info(
          { segment: r.id, container: r.label },
          gone ? 'label gone: segment deleted' : 'label changed',
        );
      }
      if (!changed) wanted.delete(r.id); // (as it is: nothing to make)
    }
    for (const w of wanted.values()) {
      try {
        await this.target.create([{ verb: 'id', args: [w.id] }, ...w.actions], { label: w.container });
        this.log.info({ segment: w.id, container: w.container }, 'segment made from a label');
      } catch (err) {
        failures.set(w.id, { container: w.container, error: errorMessage(err) });
      }
    }
    for (const [id, f] of failures)
      if (this.failures.get(id)?.error !== f.error)
        this.log.warn(
          { segment: id, container: f.container, err: f.error },
          'label not made (list shows it failed)',
        );
    this.failures.clear();
    for (const [id, f] of failures) this.failures.set(id, f);
  }
}
