/**
 * Keeping segments between runs of the daemon: a journal of top segments that the manager
 * writes around each of its builds. begin() writes the record before the build (incomplete,
 * so that a crash in the middle leaves what to clean), commit() writes it again, complete,
 * once built, abort() forgets a record that never was complete. At start the manager builds
 * every complete record again (rebuildPlan: same ids, same ports) and has the keeper clean
 * the half-built ones; what cannot be built again is kept here as failed, for list, and
 * tried again by the manager every --retry-failed seconds. The keeper never builds: it only
 * records what the manager did, so control flows one way (manager -> keeper -> store).
 */
import { type Plan, parsePlan } from '../api/grammar';
import type { SegmentInfo } from '../api/protocol';
import { WormholeError, errorMessage } from '../common/errors';
import { native } from '../native';
import type { SegmentRecord } from '../store';
import type { SegmentContext } from './context';
import { failedInfo, peerChildren } from './records';

/** Ports of ephemeral heads chosen at the first build, by segment id: a rebuild takes them again. */
export type Ports = ReadonlyMap<string, number>;

/** What a build made, as the record keeps it: the top segment's URL, each segment's id and port. */
export interface Built {
  url: string;
  segments: { id: string; port: number }[];
}

/** The records of one daemon's top segments. */
export class SegmentKeeper {
  /**
   * The record of every top segment built, by id, as JSON text: parsed, a record's actions
   * and their words were about 1.2 KiB of heap, the text is a third of that (issue 20's
   * memory per idle segment with 10,000); it is read only by list's owner and label columns,
   * export and a peer's create again.
   */
  private readonly records = new Map<string, string>();
  /** Records that could not be built again at start, and why: `list` shows them, `delete` forgets them. */
  readonly failed = new Map<string, { record: SegmentRecord; error: string }>();

  constructor(private readonly ctx: Pick<SegmentContext, 'store' | 'peers' | 'ownerId' | 'log'>) {}

  /**
   * A top segment is about to be built: a new one's record is written, incomplete. A complete
   * record (a kept segment built again) is on disk as it is already: rewriting it at each
   * start cost two fsyncs per segment, minutes for 10,000.
   */
  begin(record: SegmentRecord): void {
    if (!record.complete) this.ctx.store.save(record);
  }

  /** It is built: the record is written complete, with what was built (unless that is what it says). */
  commit(record: SegmentRecord, built: Built): void {
    const done: SegmentRecord = { ...record, complete: true, url: built.url, built: built.segments };
    if (!record.complete || JSON.stringify(done) !== JSON.stringify(record)) this.ctx.store.save(done);
    // (JSON.stringify's text is a rope of the parts it was built in: a copy through UTF-8 is
    // one flat string, about 0.15 KiB smaller a record)
    this.records.set(done.id, Buffer.from(JSON.stringify(done)).toString());
  }

  /** The record of top segment `id`, if it is built. */
  record(id: string): SegmentRecord | undefined {
    const text = this.records.get(id);
    return text === undefined ? undefined : (JSON.parse(text) as SegmentRecord);
  }

  /** The record of every top segment built. */
  built(): SegmentRecord[] {
    return Array.from(this.records.values(), (text) => JSON.parse(text) as SegmentRecord);
  }

  /** Run `fn` with the records it writes synced together at its end (SegmentStore.batch). */
  batch<T>(fn: () => Promise<T>): Promise<T> {
    return this.ctx.store.batch(fn, (fd) => native().syncFs(fd));
  }

  /**
   * Its build failed: a record that never was complete is forgotten; one complete before (a
   * rebuild that failed) stays, to be tried again.
   */
  abort(record: SegmentRecord): void {
    if (!record.complete) this.ctx.store.forget(record.id);
  }

  /** Forget a top segment: it is not built again at the next start. */
  forget(id: string): void {
    this.records.delete(id);
    this.failed.delete(id);
    this.ctx.store.forget(id);
  }

  /** How a kept record is built again: its plan (with its id) and the ports its heads had. */
  rebuildPlan(record: SegmentRecord): { plan: Plan; ports: Ports } {
    const ports = new Map(record.built.map((b) => [b.id, b.port]));
    return { plan: { ...parsePlan(record.actions), id: record.id }, ports };
  }

  /** A kept record could not be built again: listed as failed, with why (a newer reason replaces it). */
  failedToBuild(record: SegmentRecord, err: unknown): void {
    this.failed.set(record.id, { record, error: errorMessage(err) });
  }

  /** A create cut short by a crash: delete what it may have made on peers, then forget it. */
  async cleanHalfBuilt(record: SegmentRecord): Promise<void> {
    const plan = parsePlan(record.actions);
    try {
      for (const [host, id] of peerChildren(this.ctx.ownerId, record.id, plan))
        await this.ctx.peers.deleteChild(host, id).catch((err: unknown) => {
          if (!(err instanceof WormholeError && err.code === 'NOT_FOUND')) throw err;
        });
      this.ctx.store.forget(record.id);
      this.ctx.log.info({ segment: record.id }, 'cleaned a segment a crash left half-built');
    } catch (err) {
      this.ctx.log.warn(
        { segment: record.id, err: errorMessage(err) },
        'a segment a crash left half-built is not cleaned yet (tried again at the next start)',
      );
    }
  }

  /** The segments that could not be built again, as `list` shows them. */
  failedInfos(): SegmentInfo[] {
    return [...this.failed.values()].map((f) => failedInfo(f.record, f.error));
  }
}
