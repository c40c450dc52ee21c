/**
 * The segment registry and the create grammar's execution: turns a plan into segments,
 * step by step, and deletes them with everything they own.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import { type Action, type Plan, type Step, parsePlan } from '../api/grammar';
import type { Params, Result, SegmentInfo } from '../api/protocol';
import { DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import type { SegmentContext } from './context';
import { type Draft, type Endpoint, applyUrl, checkNotSelf, resolveHead, resolveTail } from './endpoint';
import { ContainerFollower } from './follow';
import { Segment, type Tail } from './segment';

function isChildStep(step: Step): boolean {
  return (
    step.op === 'child' ||
    step.op === 'chain' ||
    step.op === 'remote' ||
    step.op === 'tunnel' ||
    step.op === 'udptunnel'
  );
}

/** Head and tail speak the same protocol (conversion between socket types is not built yet). */
function checkSameProto(head: string, tail: string): void {
  if (head !== tail) {
    throw new WormholeError(
      'PROTO_MISMATCH',
      `the head speaks ${head} but the tail ${tail}: give both the same protocol`,
    );
  }
}

/** A tail must speak the head's protocol and must not be the head itself. */
function checkTail(head: Endpoint, headPort: number, tail: Endpoint): void {
  checkSameProto(head.proto, tail.proto);
  checkNotSelf(head, headPort, tail);
}

function toDraft(e: Endpoint, port = e.port): Draft {
  return {
    proto: e.proto,
    ns: e.ns,
    nsLabel: e.nsLabel,
    host: e.host,
    port,
    container: e.container,
    containerId: e.containerId,
  };
}

/** Owns every segment of one daemon. */
export class SegmentManager {
  private readonly segments = new Map<string, Segment>();
  /** Ends in containers follow them across restarts. */
  private readonly follower: ContainerFollower;

  constructor(private readonly ctx: SegmentContext) {
    this.follower = new ContainerFollower(ctx.containers, ctx.log);
  }

  /** Create the segments a list of actions describes; the first is the top one. */
  async create(actions: Action[]): Promise<Segment[]> {
    const plan = parsePlan(actions);
    return this.build(plan, {}, null, false);
  }

  /** A peer asks for a child segment of one of its segments. */
  async createForPeer(params: Params<'peer-create'>): Promise<Result<'peer-create'>> {
    const plan = parsePlan(params.actions);
    const base: Draft = {
      proto: params.head.proto,
      host: params.head.host ?? '127.0.0.1',
      port: params.head.port,
    };
    const [seg] = await this.build(plan, base, null, true);
    return { id: seg.id, url: seg.url, proto: seg.head.proto, host: seg.head.host, port: seg.boundPort };
  }

  /** Build one segment (and, recursively, its create-time children). */
  private async build(plan: Plan, base: Draft, parent: string | null, remote: boolean): Promise<Segment[]> {
    const id = plan.id ?? randomUUID();
    if (this.segments.has(id))
      throw new WormholeError(
        'ID_EXISTS',
        `a segment with id ${id} exists already: delete it or pick another id`,
      );
    const seg = new Segment(
      id,
      parent,
      remote,
      this.ctx,
      (s, steps, scope) => this.trigger(s, steps, scope),
      this.follower,
    );
    this.segments.set(id, seg);
    const created: Segment[] = [seg];
    try {
      const head: Draft = { ...base };
      const tail: Draft = {};
      const childStep = plan.init.find(isChildStep);
      for (const step of plan.init)
        if (!isChildStep(step)) await this.apply(seg, step, head, tail, seg.stack);
      if (plan.trigger) await this.prepareTrigger(plan.trigger);
      const headEp = await resolveHead(head);
      if (!plan.trigger && !childStep && headEp.port !== 0) {
        // refuse a tail that is the head before taking the port, so the reason is the real one
        checkTail(headEp, headEp.port, await resolveTail(tail, head));
      }
      await seg.listen(headEp);
      seg.headDraft = head;
      let peerTail: Tail | undefined;
      if (childStep) peerTail = await this.spawn(seg, childStep, head, tail, seg.stack, created);
      seg.tailDraft = tail;
      if (plan.trigger) {
        seg.triggerSteps = plan.trigger;
        this.checkStatically(seg, plan.trigger);
      } else {
        await seg.setTail(peerTail ?? (await this.localTail(seg, tail, head)));
      }
      this.ctx.log.info(
        { segment: id, url: seg.url, parent, remote, trigger: plan.trigger !== null },
        'segment created',
      );
      return created;
    } catch (err) {
      this.segments.delete(id);
      await seg.close().catch(() => undefined);
      throw err;
    }
  }

  private async localTail(seg: Segment, tail: Draft, head: Draft): Promise<Tail> {
    const ep = await resolveTail(tail, head);
    checkTail(seg.head, seg.boundPort, ep);
    return { kind: 'local', ep };
  }

  /** The first connection: run the trigger's steps from the create-time drafts. */
  private async trigger(seg: Segment, steps: Step[], scope: DisposableStack): Promise<Tail> {
    const head: Draft = { ...seg.headDraft };
    const tail: Draft = { ...seg.tailDraft };
    let peerTail: Tail | undefined;
    for (const step of steps) {
      if (isChildStep(step)) peerTail = await this.spawn(seg, step, head, tail, scope, []);
      else await this.apply(seg, step, head, tail, scope);
    }
    return peerTail ?? (await this.localTail(seg, tail, head));
  }

  /** Before a trigger is armed: pull its images now, so the first connection does not wait. */
  private async prepareTrigger(steps: Step[]): Promise<void> {
    for (const step of steps) {
      if (step.op === 'docker-run') await this.ctx.containers.prepare(step.args);
    }
  }

  /** Refuse at create time a trigger whose tail could only ever be the head itself. */
  private checkStatically(seg: Segment, steps: Step[]): void {
    const tail: Draft = { ...seg.tailDraft };
    for (const s of steps) if (s.op === 'url') applyUrl(tail, s.url, false);
    checkSameProto(seg.head.proto, tail.proto ?? seg.head.proto);
    if (steps.some((s) => s.op !== 'url') || (tail.ns && !fs.existsSync(tail.ns))) return;
    const port = tail.port ?? seg.headDraft.port ?? 0;
    if (port === 0)
      throw new WormholeError('TAIL_NO_PORT', 'the tail has no port: name one, e.g. "tail url :80"');
    if (tail.host === undefined || tail.host === seg.head.host) {
      checkNotSelf(seg.head, seg.boundPort, {
        proto: tail.proto ?? seg.head.proto,
        ns: tail.ns ?? null,
        host: tail.host ?? seg.head.host,
        port,
      });
    }
  }

  /** Apply a step that sets an end. */
  private async apply(
    seg: Segment,
    step: Step,
    head: Draft,
    tail: Draft,
    scope: DisposableStack,
  ): Promise<void> {
    if (step.op === 'url') {
      applyUrl(step.side === 'head' ? head : tail, step.url);
    } else if (step.op === 'docker-ns') {
      const d = step.side === 'head' ? head : tail;
      if (step.container === null) {
        Object.assign(d, { ns: null, nsLabel: undefined, container: undefined, containerId: undefined });
      } else {
        const found = await this.ctx.containers.locate(step.container);
        Object.assign(d, {
          ns: found.nsPath,
          nsLabel: step.container,
          container: step.container,
          containerId: found.id,
        });
      }
    } else if (step.op === 'docker-run') {
      const d = step.side === 'head' ? head : tail;
      const { id, nsPath } = await this.ctx.containers.run(step.args, seg.id);
      seg.containers.push(id);
      scope.defer(() => this.ctx.containers.remove(id));
      // (the runtime logs the start, with the segment)
      Object.assign(d, { ns: nsPath, nsLabel: id.slice(0, 12), container: id, containerId: id });
    }
  }

  /**
   * Create a child (local or on a peer). Returns the parent's tail when the child decides it
   * (chain, remote, tunnel); for a plain child the parent's tail is its own draft.
   */
  private async spawn(
    seg: Segment,
    step: Step,
    head: Draft,
    tail: Draft,
    scope: DisposableStack,
    created: Segment[],
  ): Promise<Tail | undefined> {
    if (step.op === 'child' || step.op === 'chain') {
      const parentTail = await resolveTail(tail, head);
      const kids = await this.build(step.plan, toDraft(parentTail), seg.id, seg.remote);
      scope.defer(async () => void (await this.deleteTree(kids[0].id)));
      created.push(...kids);
      if (step.op === 'child') return undefined;
      const childHead = kids[0].head;
      const ep: Endpoint = { ...childHead, port: kids[0].boundPort };
      checkNotSelf(seg.head, seg.boundPort, ep);
      return { kind: 'local', ep };
    }
    if (step.op !== 'remote' && step.op !== 'tunnel' && step.op !== 'udptunnel') return undefined;
    const proto = tail.proto ?? head.proto ?? 'tcp';
    if (step.op === 'remote' && proto === 'udp') {
      throw new WormholeError(
        'UNSUPPORTED',
        'remote carries TCP only: for UDP use "tunnel HOST", whose datagrams cross the encrypted L3 tunnel',
      );
    }
    const port = tail.port ?? head.port ?? 0;
    let peerHost: string | undefined;
    if (step.op !== 'remote') {
      const t = await this.ctx.tunnels.ensure(step.host, step.op === 'udptunnel');
      peerHost = t.remoteIp;
    }
    const res = await this.ctx.peers.createChild(step.host, {
      actions: step.actions,
      head: { proto, port, host: peerHost },
    });
    scope.defer(() =>
      this.ctx.peers.deleteChild(step.host, res.id).catch((err: unknown) => {
        this.ctx.log.warn(
          { segment: seg.id, peer: step.host, child: res.id, err: errorMessage(err) },
          'remote child not deleted',
        );
      }),
    );
    this.ctx.log.info(
      { segment: seg.id, peer: step.host, child: res.id, url: res.url },
      'remote child created',
    );
    if (step.op === 'remote') return { kind: 'peer', host: step.host, id: res.id, proto: res.proto };
    return { kind: 'local', ep: { proto: res.proto, ns: null, host: res.host, port: res.port } };
  }

  /**
   * Delete a segment and its children; the ids deleted. A child made by `child` or `chain` is
   * refused, naming its parent: its head is the parent's tail, and deleting it alone would
   * leave the parent listed as ready with a tail that is gone. Deleting the parent deletes it.
   */
  async delete(id: string): Promise<string[]> {
    const seg = this.segments.get(id);
    if (!seg) throw new WormholeError('NOT_FOUND', `no segment with id ${id}: 'wormhole list' shows them`);
    if (seg.parent !== null && this.segments.has(seg.parent)) {
      throw new WormholeError(
        'HAS_PARENT',
        `segment ${id} is a child of ${seg.parent}, which needs it: delete ${seg.parent} (its children go with it)`,
      );
    }
    return this.deleteTree(id);
  }

  /** Stop every head from accepting (daemon stop), before anything slower is released. */
  stopListening(): void {
    for (const s of this.segments.values()) s.stopListening();
  }

  private async deleteTree(id: string): Promise<string[]> {
    const seg = this.segments.get(id);
    if (!seg) return [];
    const before = new Set(this.segments.keys());
    await seg.close();
    this.segments.delete(id);
    this.ctx.log.info({ segment: id }, 'segment deleted');
    return [...before].filter((k) => !this.segments.has(k));
  }

  /** A peer hands over a stream for segment `id`'s tail. */
  attach(id: string, stream: Duplex, ready: (err?: unknown) => void): void {
    const seg = this.segments.get(id);
    if (!seg) {
      ready(new WormholeError('NOT_FOUND', `no segment with id ${id} here`));
      return;
    }
    seg.attach(stream, ready);
  }

  /** Every segment, parents before their children. */
  list(): SegmentInfo[] {
    return [...this.segments.values()].map((s) => s.info());
  }

  /** Delete every segment (daemon shutdown). */
  async closeAll(): Promise<void> {
    const tops = [...this.segments.values()].filter((s) => s.parent === null || !this.segments.has(s.parent));
    await Promise.allSettled(tops.map((s) => this.deleteTree(s.id)));
    await Promise.allSettled([...this.segments.keys()].map((k) => this.deleteTree(k)));
  }
}
