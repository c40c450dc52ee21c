/**
 * The create grammar's steps that set an end (url, docker-ns, docker-run, docker-label,
 * proxy-protocol, transparent), applied to drafts; and the small rules the manager checks drafts by.
 */
import type { Step } from '../api/grammar';
import type { Params, Result } from '../api/protocol';
import type { DisposableStack } from '../common/disposable';
import type { SegmentRecord } from '../store';
import type { ContainerRuntime } from './context';
import { type Draft, type Endpoint, applyUrl, checkNotSelf } from './endpoint';
import type { TriggerContainers } from './idle';
import { checkJoin } from './streamends';
import { checkTransparentEnds } from './transparent';

/** Steps that make a child (here or on a peer) rather than set an end. */
export function isChildStep(step: Step): boolean {
  return (
    step.op === 'child' ||
    step.op === 'chain' ||
    step.op === 'remote' ||
    step.op === 'tunnel' ||
    step.op === 'udptunnel'
  );
}

/** A tail must be of a kind the head joins (streams, or udp) and must not be the head itself. */
export function checkTail(head: Endpoint, headPort: number, tail: Endpoint): void {
  checkJoin(head.proto, tail.proto, tail.proxy);
  if (tail.transparent) checkTransparentEnds(head, tail);
  checkNotSelf(head, headPort, tail);
}

/** More than one tail, or a label's containers (any number): a set of tails. */
export function several(tails: readonly Draft[]): boolean {
  return tails.length > 1 || tails.some((d) => d.label !== undefined);
}

/** An endpoint as a draft again (a child's head starts from its parent's tail). */
export function toDraft(e: Endpoint, port = e.port): Draft {
  return {
    proto: e.proto,
    ns: e.ns,
    nsLabel: e.nsLabel,
    host: e.host,
    port,
    container: e.container,
    containerId: e.containerId,
    path: e.path,
    mode: e.mode,
  };
}

/** Who a step's containers are for: a segment's id, its container list, its kept containers. */
export interface StepOwner {
  readonly id: string;
  readonly containers: string[];
  /** A trigger's containers under idle, kept across it (trigger steps only). */
  readonly kept?: TriggerContainers;
}

/**
 * Apply a step that sets an end (`where`: `init/N` or `trigger/N`); what it makes (a
 * container) is released with `scope`.
 */
export async function applyStep(
  containers: ContainerRuntime,
  owner: StepOwner,
  step: Step,
  ends: { head: Draft; tail: Draft },
  scope: DisposableStack,
  where: string,
): Promise<void> {
  const { head, tail } = ends;
  if (step.op === 'docker-label') {
    Object.assign(tail, { label: step.label, ns: null, nsLabel: undefined, container: undefined });
  } else if (step.op === 'url') {
    applyUrl(step.side === 'head' ? head : tail, step.url);
  } else if (step.op === 'docker-ns') {
    const d = step.side === 'head' ? head : tail;
    if (step.container === null) {
      Object.assign(d, { ns: null, nsLabel: undefined, container: undefined, containerId: undefined });
    } else {
      const found = await containers.locate(step.container);
      Object.assign(d, {
        ns: found.nsPath,
        nsLabel: step.container,
        container: step.container,
        containerId: found.id,
      });
    }
  } else if (step.op === 'proxy-protocol') {
    tail.proxy = step.version;
  } else if (step.op === 'transparent') {
    tail.transparent = true;
  } else if (step.op === 'docker-run') {
    const d = step.side === 'head' ? head : tail;
    // a trigger's container under idle is kept: stopped when it idles, started again
    const kept = where.startsWith('trigger/') ? owner.kept : undefined;
    const { id, nsPath } = kept
      ? await kept.run(step.args, where)
      : await containers.run(step.args, owner.id, where);
    if (!owner.containers.includes(id)) owner.containers.push(id);
    scope.defer(() => (kept ? kept.release(id) : containers.remove(id)));
    // (the runtime logs the start, with the segment)
    Object.assign(d, { ns: nsPath, nsLabel: id.slice(0, 12), container: id, containerId: id });
  }
}

/** A peer's child built from its record starts from the head the peer gave. */
export function peerBase(record: SegmentRecord): Draft {
  if (!record.head) return {};
  return { proto: record.head.proto, host: record.head.host ?? '127.0.0.1', port: record.head.port };
}

/** Does a peer ask again for the child this record made? */
export function sameRequest(record: SegmentRecord, params: Params<'peer-create'>): boolean {
  const [a, b] = [record.head, params.head];
  return (
    JSON.stringify(record.actions) === JSON.stringify(params.actions) &&
    a?.proto === b.proto &&
    a.host === b.host &&
    a.port === b.port
  );
}

/** What a peer is answered: the child's id and where its head listens. */
export function peerResult(seg: {
  id: string;
  url: string;
  head: Endpoint;
  boundPort: number;
}): Result<'peer-create'> {
  return { id: seg.id, url: seg.url, proto: seg.head.proto, host: seg.head.host, port: seg.boundPort };
}
