/**
 * What the segment layer keeps of a segment between runs of the daemon, and the ids that make
 * building it again land on the same things: a child's id follows from its parent's, and a
 * peer's child from who asked for it, so that a daemon that starts again (or takes over) finds
 * what its predecessor made instead of making it twice.
 */
import { createHash } from 'node:crypto';
import type { Action, Plan } from '../api/grammar';
import type { SegmentInfo } from '../api/protocol';
import { RECORD_VERSION, type SegmentRecord } from '../store';

/** A UUID-shaped id that always follows from `seed`. */
export function derivedId(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The id of a segment's local child (`child`, `chain`), unless the user named it. */
export function childId(parentId: string, plan: Plan): string {
  return plan.id ?? derivedId(`${parentId}/child`);
}

/** What a segment's peer child is asked under: this daemon and that segment. */
export function peerKey(ownerId: string, segmentId: string): string {
  return `${ownerId}/${segmentId}`;
}

/** The id a peer gives the child it makes for `key`, unless the user named it. */
export function peerChildId(key: string, plan: Plan): string {
  return plan.id ?? derivedId(key);
}

/** A record for a segment whose build is starting (complete once it is built). */
export function newRecord(
  id: string,
  kind: SegmentRecord['kind'],
  actions: Action[],
  extra: Pick<SegmentRecord, 'head' | 'key' | 'owner' | 'applied' | 'label'> = {},
): SegmentRecord {
  return {
    version: RECORD_VERSION,
    id,
    kind,
    actions,
    ...extra,
    built: [],
    complete: false,
    url: '',
    createdAt: Date.now(),
  };
}

/** A segment that could not be built again, as `list` shows it: what it was, and why. */
export function failedInfo(record: SegmentRecord, error: string): SegmentInfo {
  const port = record.built[0]?.port ?? 0;
  return {
    id: record.id,
    url: record.url,
    head: {
      proto: record.head?.proto ?? (record.url.startsWith('udp') ? 'udp' : 'tcp'),
      ns: null,
      host: '',
      port,
    },
    tail: null,
    state: 'failed',
    error,
    parent: null,
    remote: record.kind === 'peer',
    owner: record.owner ?? 'admin',
    connections: 0,
    containers: [],
  };
}

/**
 * The peer children a record's plan makes (at create time or by its trigger), as `[host, id]`:
 * what is left to delete on the peers when a build was cut short by a crash.
 */
export function peerChildren(ownerId: string, id: string, plan: Plan): [string, string][] {
  const found: [string, string][] = [];
  for (const step of [...plan.init, ...(plan.trigger ?? [])]) {
    if (step.op === 'child' || step.op === 'chain')
      found.push(...peerChildren(ownerId, childId(id, step.plan), step.plan));
    else if (step.op === 'remote' || step.op === 'tunnel' || step.op === 'udptunnel')
      found.push([step.host, peerChildId(peerKey(ownerId, id), step.plan)]);
  }
  return found;
}
