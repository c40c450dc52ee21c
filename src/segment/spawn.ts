/**
 * What a plan's child steps make (`child`, `chain`, `remote`, `tunnel`, `udptunnel`), and a
 * segment's local tail made from its drafts: the parts of a build that reach beyond the
 * segment itself, kept apart from the manager's registry.
 */
import type { Plan, Step } from '../api/grammar';
import type { DisposableStack } from '../common/disposable';
import { WormholeError, errorMessage } from '../common/errors';
import type { SegmentContext } from './context';
import { type Draft, type Endpoint, checkNotSelf, resolveTail, tailProto } from './endpoint';
import { confineUnixTail } from './hostunix';
import type { Ports } from './keeper';
import { childId, peerKey } from './records';
import type { Segment } from './segment';
import type { Tail } from './spec';
import { checkTail, several, toDraft } from './steps';
import { checkJoin } from './streamends';
import { checkUnixTails } from './tailchecks';

/** What spawning needs of the manager: its context, its build, and deleting what it built. */
export interface SpawnHost {
  readonly ctx: SegmentContext;
  /** Build a segment (and its children) from a plan. */
  build(
    plan: Plan,
    id: string,
    base: Draft,
    parent: string | null,
    remote: boolean,
    ports?: Ports,
  ): Promise<Segment[]>;
  /** Delete a segment and its children; the ids deleted. */
  deleteTree(id: string): Promise<string[]>;
}

/** A remote or tunnel child is one tail: refuse it beside several local ones. */
export function checkOneRemoteTail(peerTail: Tail | undefined, tails: readonly Draft[]): void {
  if (peerTail && several(tails))
    throw new WormholeError(
      'UNSUPPORTED',
      'several tails (also, docker-label) are local: a remote or tunnel child is one tail',
    );
}

/** One tail, or a set of them (several drafts, or a label's containers). */
export async function localTail(
  host: SpawnHost,
  seg: Segment,
  tails: readonly Draft[],
  head: Draft,
): Promise<Tail> {
  if (several(tails)) {
    for (const d of tails) checkJoin(seg.head.proto, tailProto(d, head), d.proxy);
    await checkUnixTails(tails, head, host.ctx.allowUnix);
    // none of them may be the head itself (a container's is looked up later, by the set)
    for (const d of tails)
      if (!d.label && !d.container) {
        const ep = await resolveTail(d, head).catch(() => undefined); // (not there yet: looked for again)
        if (ep) checkNotSelf(seg.head, seg.boundPort, ep);
      }
    return { kind: 'set', drafts: tails.map((d) => ({ ...d })), head: { ...head } };
  }
  const ep = confineUnixTail(await resolveTail(tails[0], head), host.ctx.allowUnix);
  checkTail(seg.head, seg.boundPort, ep);
  return { kind: 'local', ep };
}

/**
 * Create a child (local or on a peer). Returns the parent's tail when the child decides it
 * (chain, remote, tunnel); for a plain child the parent's tail is its own draft.
 */
export async function spawn(
  host: SpawnHost,
  seg: Segment,
  step: Step,
  head: Draft,
  tail: Draft,
  scope: DisposableStack,
  created: Segment[],
  ports?: Ports,
): Promise<Tail | undefined> {
  if (step.op === 'child' || step.op === 'chain') {
    const parentTail = await resolveTail(tail, head);
    const id = childId(seg.id, step.plan);
    const kids = await host.build(step.plan, id, toDraft(parentTail), seg.id, seg.remote, ports);
    scope.defer(async () => void (await host.deleteTree(kids[0].id)));
    created.push(...kids);
    if (step.op === 'child') return undefined;
    const childHead = kids[0].head;
    const ep: Endpoint = { ...childHead, port: kids[0].boundPort };
    checkNotSelf(seg.head, seg.boundPort, ep);
    return { kind: 'local', ep };
  }
  if (step.op !== 'remote' && step.op !== 'tunnel' && step.op !== 'udptunnel') return undefined;
  // the child's head on the peer: a stream (tcp, unless its own actions make it unix) or udp
  const proto = tailProto(tail, head) === 'udp' ? 'udp' : 'tcp';
  checkJoin(head.proto ?? 'tcp', proto, tail.proxy);
  const port = tail.port ?? head.port ?? 0;
  let peerHost: string | undefined;
  if (step.op !== 'remote') {
    const t = await host.ctx.tunnels.ensure(step.host, step.op === 'udptunnel');
    peerHost = t.remoteIp;
  }
  const res = await host.ctx.peers.createChild(step.host, {
    actions: step.actions,
    head: { proto, port, host: peerHost },
    key: peerKey(host.ctx.ownerId, seg.id),
  });
  scope.defer(() =>
    host.ctx.peers.deleteChild(step.host, res.id).catch((err: unknown) => {
      host.ctx.log.warn(
        { segment: seg.id, peer: step.host, child: res.id, err: errorMessage(err) },
        'remote child not deleted',
      );
    }),
  );
  host.ctx.log.info(
    { segment: seg.id, peer: step.host, child: res.id, url: res.url },
    'remote child created',
  );
  if (step.op === 'remote')
    return { kind: 'peer', host: step.host, id: res.id, proto: res.proto, proxy: tail.proxy };
  if (res.proto === 'unix')
    throw new WormholeError(
      'UNSUPPORTED',
      `${step.op} needs a tcp or udp head on the peer, not unix: use remote`,
    );
  return {
    kind: 'local',
    ep: { proto: res.proto, ns: null, host: res.host, port: res.port, proxy: tail.proxy },
  };
}
