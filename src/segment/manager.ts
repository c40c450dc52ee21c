/**
 * The segment registry and the create grammar's execution: turns a plan into segments,
 * step by step, and deletes them with everything they own.
 */
import { applySegments } from './apply';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type Action, type Plan, type Step, parsePlan } from '../api/grammar';
import { parseCidr } from '../api/cidr';
import type { Params, Result, SegmentInfo } from '../api/protocol';
import type { Protocol } from '../api/url';
import { DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import type { Origin } from '../proxy/proxyproto';
import type { SegmentRecord } from '../store';
import { Builds } from './builds';
import type { SegmentContext } from './context';
import { ChangeGate } from './gate';
import { type Draft, resolveHead, resolveTail } from './endpoint';
import { ContainerFollower } from './follow';
import { type Ports, SegmentKeeper } from './keeper';
import { newRecord, peerChildId } from './records';
import { Restorer } from './restore';
import { Segment } from './segment';
import { type SpawnHost, checkOneRemoteTail, localTail, spawn } from './spawn';
import type { SegmentDeps, Tail } from './spec';
import {
  type StepOwner,
  applyStep,
  checkTail,
  isChildStep,
  peerBase,
  peerResult,
  sameRequest,
  several,
} from './steps';
import { checkTriggerStatically, checkUnixTails } from './tailchecks';
import { checkTransparentPlan } from './transparent';

/** How often tails are checked unless `health` says otherwise. */
const DEFAULT_HEALTH_MS = 5000;

/** The id taken: by a segment, one being built, or one that could not be built again. */
function idTaken(id: string): WormholeError {
  return new WormholeError(
    'ID_EXISTS',
    `a segment with id ${id} exists already: delete it or pick another id`,
  );
}

/**
 * Owns every segment of one daemon: builds them from plans, keeps the top ones in its
 * keeper's journal (written around each build), builds them again at start.
 */
export class SegmentManager {
  private readonly segments = new Map<string, Segment>();
  /** Ids of segments being built (their create-time steps run before the segment exists). */
  private readonly building = new Set<string>();
  /** The top segments' builds in flight, which a delete may abort (src/segment/builds.ts). */
  private readonly tops = new Builds();
  /** Creates and deletes, shut around a takeover (src/segment/gate.ts). */
  readonly gate = new ChangeGate();
  /** The top segments' records: kept, built again at start (src/segment/keeper.ts). */
  private readonly keeper: SegmentKeeper;
  /** What every segment is made with. */
  private readonly deps: SegmentDeps;
  /** Kept segments built again at start, and those that failed tried again (restore.ts). */
  private readonly restorer: Restorer;
  /** What spawning children needs of this manager (src/segment/spawn.ts). */
  private readonly spawnHost: SpawnHost;

  constructor(private readonly ctx: SegmentContext) {
    // (a head asks who made its segment: a peer with that key is dialed by the engine)
    ctx.ownerOf ??= (id) => this.ownerOf(id);
    this.keeper = new SegmentKeeper(ctx);
    this.restorer = new Restorer({
      ctx,
      keeper: this.keeper,
      rebuild: (record) => this.rebuild(record),
      deleteTree: (id) => this.deleteTree(id),
    });
    this.spawnHost = {
      ctx,
      build: (plan, id, base, parent, remote, ports) => this.build(plan, id, base, parent, remote, ports),
      deleteTree: (id) => this.deleteTree(id),
    };
    this.deps = {
      ctx,
      runTrigger: (s, steps, scope) => this.trigger(s, steps, scope),
      // ends in containers follow them across restarts
      follower: new ContainerFollower(ctx.containers, ctx.log),
    };
  }

  /** Build again every segment the store kept (the daemon starts): restore.ts. */
  restore(records: SegmentRecord[]): Promise<void> {
    return this.restorer.restore(records);
  }

  /** Build a kept segment as it was: same ids, same head ports. */
  private rebuild(record: SegmentRecord): Promise<Segment[]> {
    const { plan, ports } = this.keeper.rebuildPlan(record);
    return this.buildTop(record, plan, ports);
  }

  /**
   * Build a top segment, its record journaled around the build: written before it
   * (incomplete, so that a crash in the middle leaves what to clean), complete after. A
   * delete meanwhile aborts it (builds.ts): what was made goes, the record is forgotten. A
   * record that cannot be written complete (a full disk) takes the segment down again: the
   * client is told it failed, and nothing is left serving.
   */
  private async buildTop(record: SegmentRecord, plan: Plan, ports?: Ports): Promise<Segment[]> {
    const id = record.id;
    this.tops.start(id, record.owner ?? 'admin');
    try {
      this.keeper.begin(record);
      let built: Segment[] | undefined;
      try {
        built = await this.build(plan, id, peerBase(record), null, record.kind === 'peer', ports);
        this.tops.check(id);
        this.keeper.commit(record, {
          url: built[0].url,
          segments: built.map((s) => ({ id: s.id, port: s.boundPort })),
        });
        return built;
      } catch (err) {
        if (built) await this.deleteTree(id); // (built, then deleted meanwhile or not recorded)
        this.forgetBuild(record);
        if (!built || err instanceof WormholeError) throw err;
        throw new WormholeError(
          'STATE_DIR',
          `segment ${id} was built but its record could not be written (${errorMessage(err)}): it was removed again; make room in the state directory, then create it again`,
        );
      }
    } finally {
      this.tops.end(id);
    }
  }

  /** A build did not end in a record: a new one is forgotten, and any deleted meanwhile. */
  private forgetBuild(record: SegmentRecord): void {
    try {
      // (deleted meanwhile: forgotten even when complete, a rebuild at start)
      if (this.tops.aborted(record.id)) this.keeper.forget(record.id);
      else this.keeper.abort(record);
    } catch (err) {
      // (the next start finds it incomplete, and cleans it then)
      this.ctx.log.warn({ segment: record.id, err: errorMessage(err) }, 'segment record not forgotten');
    }
  }

  /**
   * Create the segments a list of actions describes; the first is the top one. `owner`: the
   * name of the key that asks (kept in the record, shown by list); `applied`: made by `apply`
   * (which alone may prune it); `label`: made from a label of that container (labels.ts).
   */
  create(
    actions: Action[],
    made: Pick<SegmentRecord, 'owner' | 'applied' | 'label'> = {},
  ): Promise<Segment[]> {
    return this.gate.run(() => {
      const plan = parsePlan(actions);
      const id = plan.id ?? randomUUID();
      this.checkFree(id);
      return this.buildTop(newRecord(id, 'local', actions, { owner: 'admin', ...made }), plan);
    });
  }

  /** The records of the top segments a user made here (create, apply), failed ones too. */
  localRecords(): SegmentRecord[] {
    return this.allRecords().filter((r) => r.kind === 'local' && r.label === undefined);
  }

  /** The records of the segments made from containers' labels (labels.ts). */
  labelRecords(): SegmentRecord[] {
    return this.allRecords().filter((r) => r.label !== undefined);
  }

  /** The container whose label made top segment `id`, if one did. */
  labelOf(id: string): string | undefined {
    return (this.keeper.record(id) ?? this.keeper.failed.get(id)?.record)?.label;
  }

  private allRecords(): SegmentRecord[] {
    return [...this.keeper.built(), ...[...this.keeper.failed.values()].map((f) => f.record)];
  }

  /** `wormhole apply` for the key `owner`: the top segments made to match a declared set (apply.ts). */
  apply(
    params: Params<'apply'>,
    owner = 'admin',
    progress?: (done: number, total: number) => void,
  ): Promise<Result<'apply'>> {
    // (thousands of records: synced once at the end, not two fsyncs each)
    return this.keeper.batch(() => applySegments(this, params, owner, this.ctx.log, progress));
  }

  /** Whether `id` is taken (a segment, one being built or undone, one that failed to build again). */
  hasId(id: string): boolean {
    return this.segments.has(id) || this.building.has(id) || this.tops.has(id) || this.keeper.failed.has(id);
  }

  /**
   * A peer asks for a child segment of one of its segments. Asked again under the same key
   * (the peer restarted, or another daemon took over from it) for the same thing, the child
   * already here is the answer: a peer keeps one child per parent segment.
   */
  createForPeer(params: Params<'peer-create'>, owner = 'admin'): Promise<Result<'peer-create'>> {
    return this.gate.run(() => this.createChild(params, owner));
  }

  private async createChild(params: Params<'peer-create'>, owner: string): Promise<Result<'peer-create'>> {
    const plan = parsePlan(params.actions);
    const id = params.key ? peerChildId(params.key, plan) : (plan.id ?? randomUUID());
    const had = this.keeper.record(id);
    // (only the key that asked first, or admin, may have its child back or replace it)
    const mine = (r: SegmentRecord): boolean => owner === 'admin' || (r.owner ?? 'admin') === owner;
    if (had && params.key && had.key === params.key && mine(had)) {
      if (sameRequest(had, params)) return peerResult(this.segments.get(id)!);
      // the parent was made again with other actions: this child is stale
      await this.deleteTree(id);
      this.keeper.forget(id);
    }
    const seen = this.keeper.failed.get(id);
    if (seen && params.key && seen.record.key === params.key && mine(seen.record)) this.keeper.forget(id);
    this.checkFree(id);
    const record = newRecord(id, 'peer', params.actions, { head: params.head, key: params.key, owner });
    const [seg] = await this.buildTop(record, plan);
    return peerResult(seg);
  }

  /** Refuse an id taken by a segment (built, being built or undone), or by one that could not be built again. */
  private checkFree(id: string): void {
    if (this.hasId(id)) throw idTaken(id);
  }

  /**
   * Build one segment (and, recursively, its create-time children): run its create-time
   * steps, make it from what they decided, open its head, make its children, set its tail
   * (or arm its trigger), and only then let its head accept.
   */
  private async build(
    plan: Plan,
    id: string,
    base: Draft,
    parent: string | null,
    remote: boolean,
    ports?: Ports,
  ): Promise<Segment[]> {
    if (this.segments.has(id) || this.building.has(id)) throw idTaken(id);
    this.building.add(id);
    // what the create-time steps make is the segment's once it exists
    const made = { scope: new DisposableStack(), containers: [] as string[] };
    let seg: Segment | undefined;
    try {
      // (before any step makes anything)
      checkTransparentPlan(plan, { base: base.proto, engine: this.ctx.engine !== null, remote });
      const head: Draft = { ...base };
      // `also` starts another tail from a copy of the one before: the last is the one set
      const tails: Draft[] = [{}];
      const childStep = plan.init.find(isChildStep);
      const owner: StepOwner = { id, containers: made.containers };
      for (const [i, step] of plan.init.entries()) {
        const tail = tails[tails.length - 1];
        if (step.op === 'also') tails.push({ ...tail });
        else if (!isChildStep(step))
          await applyStep(this.ctx.containers, owner, step, { head, tail }, made.scope, `init/${i}`);
        this.tops.check(id); // (a delete during a step: what it made goes with the scope)
      }
      const tail = tails[tails.length - 1];
      if (plan.trigger) await this.prepareTrigger(plan.trigger);
      this.tops.check(id);
      const headEp = await resolveHead(head);
      // an ephemeral head built again gets the port it had
      if (headEp.port === 0) headEp.port = ports?.get(id) ?? 0;
      if (!plan.trigger && !childStep && headEp.port !== 0 && !several(tails)) {
        // refuse a tail that is the head before taking the port, so the reason is the real one
        checkTail(headEp, headEp.port, await resolveTail(tail, head));
      }
      // a host unix tail is refused before the head is made (nothing made)
      if (!plan.trigger && !childStep) await checkUnixTails(tails, head, this.ctx.allowUnix);
      seg = new Segment(
        {
          id,
          parent,
          remote,
          head: headEp,
          headDraft: head,
          tailDrafts: tails,
          balance: plan.balance ?? 'round-robin',
          healthMs: plan.healthMs === undefined ? DEFAULT_HEALTH_MS : plan.healthMs,
          trigger: plan.trigger,
          idleMs: plan.trigger ? plan.idle : undefined,
          idleAction: plan.idleAction,
          allow: plan.allow?.map(parseCidr),
          wakeOnData: plan.trigger ? plan.wakeOnData : undefined,
          ready: plan.ready,
          dialTimeoutMs: plan.dialTimeoutMs,
          made,
        },
        this.deps,
      );
      this.segments.set(id, seg);
      this.ctx.churned?.();
      this.building.delete(id);
      const created: Segment[] = [seg];
      await seg.open();
      let peerTail: Tail | undefined;
      if (childStep)
        peerTail = await spawn(this.spawnHost, seg, childStep, head, tail, seg.stack, created, ports);
      checkOneRemoteTail(peerTail, tails);
      if (plan.trigger) await checkTriggerStatically(seg, plan.trigger, this.ctx.allowUnix);
      else await seg.setTail(peerTail ?? (await localTail(this.spawnHost, seg, tails, head)));
      this.tops.check(id);
      // the tail is set (or the trigger armed): no client finds the segment without one
      seg.accept();
      this.ctx.log.info(
        { segment: id, url: seg.url, parent, remote, trigger: plan.trigger !== null },
        'segment created',
      );
      return created;
    } catch (err) {
      this.building.delete(id);
      if (seg) {
        if (this.segments.get(id) === seg) this.segments.delete(id);
        await seg.close().catch(() => undefined);
      } else await made.scope.dispose().catch(() => undefined);
      throw err;
    }
  }

  /** The first connection: run the trigger's steps from the create-time drafts. */
  private async trigger(seg: Segment, steps: Step[], scope: DisposableStack): Promise<Tail> {
    const head: Draft = { ...seg.headDraft };
    const tails: Draft[] = seg.tailDrafts.map((d) => ({ ...d }));
    let peerTail: Tail | undefined;
    for (const [i, step] of steps.entries()) {
      const tail = tails[tails.length - 1];
      if (step.op === 'also') tails.push({ ...tail });
      else if (isChildStep(step)) peerTail = await spawn(this.spawnHost, seg, step, head, tail, scope, []);
      else await applyStep(this.ctx.containers, seg, step, { head, tail }, scope, `trigger/${i}`);
    }
    checkOneRemoteTail(peerTail, tails);
    return peerTail ?? (await localTail(this.spawnHost, seg, tails, head));
  }

  /** Before a trigger is armed: pull its images now, so the first connection does not wait. */
  private async prepareTrigger(steps: Step[]): Promise<void> {
    for (const step of steps) {
      if (step.op === 'docker-run') await this.ctx.containers.prepare(step.args);
    }
  }

  /**
   * Delete a segment and its children; the ids deleted. A child made by `child` or `chain` is
   * refused, naming its parent: its head is the parent's tail, and deleting it alone would
   * leave the parent listed as ready with a tail that is gone. Deleting the parent deletes it.
   */
  delete(id: string): Promise<string[]> {
    return this.gate.run(() => this.deleteTop(id));
  }

  private async deleteTop(id: string): Promise<string[]> {
    if (this.tops.abort(id)) {
      // still being built: the build unwinds by itself; what it opened already goes now
      const deleted = await this.deleteTree(id);
      this.ctx.log.info({ segment: id }, 'segment deleted while it was being created: its build is undone');
      return deleted.length > 0 ? deleted : [id];
    }
    const seg = this.segments.get(id);
    if (!seg && this.keeper.failed.has(id)) {
      this.keeper.forget(id);
      this.ctx.log.info({ segment: id }, 'segment deleted (it had not been built again)');
      return [id];
    }
    if (!seg) throw new WormholeError('NOT_FOUND', `no segment with id ${id}: 'wormhole list' shows them`);
    if (seg.parent !== null && this.segments.has(seg.parent)) {
      throw new WormholeError(
        'HAS_PARENT',
        `segment ${id} is a child of ${seg.parent}, which needs it: delete ${seg.parent} (its children go with it)`,
      );
    }
    const deleted = await this.deleteTree(id);
    this.keeper.forget(id);
    return deleted;
  }

  /** Every head's listening socket, for a daemon taking over (the heads keep theirs). */
  listeningSockets(): { segment: string; proto: Protocol; fds: readonly number[]; identity?: string }[] {
    const out: { segment: string; proto: Protocol; fds: readonly number[]; identity?: string }[] = [];
    for (const s of this.segments.values()) {
      const l = s.listeningFd();
      if (l) out.push({ segment: s.id, ...l });
    }
    return out;
  }

  /** Connections open across every head (a daemon that handed over drains them). */
  openConnections(): number {
    let n = 0;
    for (const s of this.segments.values()) n += s.openConnections();
    return n;
  }

  /** Stop every head from accepting (daemon stop), before anything slower is released. */
  stopListening(): void {
    for (const s of this.segments.values()) s.stopListening();
  }

  private async deleteTree(id: string): Promise<string[]> {
    const seg = this.segments.get(id);
    if (!seg) return [];
    const before = new Set(this.segments.keys());
    await this.closeTree(id, seg);
    return [...before].filter((k) => !this.segments.has(k));
  }

  /** deleteTree without saying what went: closeAll's, for which that is the whole set each time. */
  private async closeTree(id: string, seg: Segment): Promise<void> {
    await seg.close();
    this.segments.delete(id);
    this.ctx.churned?.();
    this.ctx.log.info({ segment: id }, 'segment deleted');
  }

  /** A peer hands over a stream for segment `id`'s tail (`origin`: the client it carries). */
  attach(id: string, stream: Duplex, ready: (err?: unknown) => void, origin?: Origin): void {
    const seg = this.segments.get(id);
    if (!seg) {
      ready(new WormholeError('NOT_FOUND', `no segment with id ${id} here`));
      return;
    }
    seg.attach(stream, ready, origin);
  }

  /**
   * The name of the key that made a segment (its top segment's record says; one made before
   * keys had names was made with -K's, admin); undefined: no such segment.
   */
  ownerOf(id: string): string | undefined {
    let top = this.segments.get(id);
    // (one still being built is its creator's: another key may not abort it)
    const building = this.tops.owner(id);
    if (building !== undefined && (!top || top.parent === null)) return building;
    if (!top) {
      const failed = this.keeper.failed.get(id);
      return failed && (failed.record.owner ?? 'admin');
    }
    // a child's owner is its top segment's (a parent deleted first leaves the child on top)
    const parentOf = (s: Segment): Segment | undefined =>
      s.parent === null ? undefined : this.segments.get(s.parent);
    for (let up = parentOf(top); up; up = parentOf(up)) top = up;
    return this.keeper.record(top.id)?.owner ?? 'admin';
  }

  /**
   * The segments, parents before their children, then those that failed to build again: `count`
   * rows from row `from` (only those are described: a page of 10,000 is not the work of all).
   */
  list(from = 0, count = Infinity): SegmentInfo[] {
    const rows = [...this.segments.values()].slice(from, from + count).map((s): SegmentInfo => {
      const label = this.labelOf(s.id);
      return { ...s.info(), owner: this.ownerOf(s.id), ...(label === undefined ? {} : { label }) };
    });
    if (rows.length >= count) return rows;
    const start = Math.max(0, from - this.segments.size);
    return [...rows, ...this.keeper.failedInfos().slice(start, start + count - rows.length)];
  }

  /** How many rows list() has. */
  listSize(): number {
    return this.segments.size + this.keeper.failed.size;
  }

  /** Delete every segment (daemon shutdown). */
  async closeAll(): Promise<void> {
    this.restorer.stop();
    const tops = [...this.segments.values()].filter((s) => s.parent === null || !this.segments.has(s.parent));
    // (not deleteTree: its set of every id, made for each of 10,000 segments, took minutes)
    await Promise.allSettled(tops.map((s) => this.closeTree(s.id, s)));
    await Promise.allSettled([...this.segments].map(([k, s]) => this.closeTree(k, s)));
  }
}
