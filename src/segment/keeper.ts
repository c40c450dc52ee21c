/**
 * Keeping segments between runs of the daemon: each top segment's record, written before it
 * is built (incomplete) and again once built; building every record again at start (same
 * ids, same ports); cleaning what a crash left half-built; and the segments that could not
 * be built again, shown as failed and tried again every --retry-failed seconds. The building
 * itself is the manager's (the registry), asked for through KeeperHost.
 */
import { type Plan, parsePlan } from '../api/grammar';
import type { SegmentInfo } from '../api/protocol';
import { WormholeError, errorMessage } from '../common/errors';
import type { SegmentRecord } from '../store';
import type { SegmentContext } from './context';
import { failedInfo, peerChildren } from './records';
import type { Segment } from './segment';

/** Ports of ephemeral heads chosen at the first build, by segment id: a rebuild takes them again. */
export type Ports = ReadonlyMap<string, number>;

/** What the keeper asks of the registry. */
export interface KeeperHost {
  /** Build a top segment (and its create-time children) as the record says. */
  build(record: SegmentRecord, plan: Plan, ports?: Ports): Promise<Segment[]>;
  /** Delete a segment and its children. */
  deleteTree(id: string): Promise<string[]>;
}

/** The records of one daemon's top segments. */
export class SegmentKeeper {
  /** The record of every top segment built, by id. */
  readonly records = new Map<string, SegmentRecord>();
  /** Records that could not be built again at start, and why: `list` shows them, `delete` forgets them. */
  readonly failed = new Map<string, { record: SegmentRecord; error: string }>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(
    private readonly ctx: SegmentContext,
    private readonly host: KeeperHost,
  ) {}

  /**
   * Build a top segment and keep its record: written before the build (incomplete, so that
   * a crash in the middle leaves what to clean) and again, complete, once it is built.
   */
  async buildTop(record: SegmentRecord, plan: Plan, ports?: Ports): Promise<Segment[]> {
    this.ctx.store.save(record);
    let built: Segment[];
    try {
      built = await this.host.build(record, plan, ports);
    } catch (err) {
      // (a record that was complete before stays: a rebuild that fails is kept to retry)
      if (!record.complete) this.ctx.store.forget(record.id);
      throw err;
    }
    const done: SegmentRecord = {
      ...record,
      complete: true,
      url: built[0].url,
      built: built.map((s) => ({ id: s.id, port: s.boundPort })),
    };
    this.ctx.store.save(done);
    this.records.set(done.id, done);
    return built;
  }

  /** Forget a top segment: it is not built again at the next start. */
  forget(id: string): void {
    this.records.delete(id);
    this.failed.delete(id);
    this.ctx.store.forget(id);
  }

  /**
   * Build again every segment the store kept (the daemon starts): complete ones with their
   * ids and ports; half-built ones (a crash cut their create short) are cleaned instead, their
   * children on peers deleted. What cannot be built is kept, shown as failed, tried at the next
   * start. Records are independent of each other, so they are built side by side.
   */
  async restore(records: SegmentRecord[]): Promise<void> {
    let restored = 0;
    await Promise.all(
      records.map(async (record) => {
        if (!record.complete) return this.cleanHalfBuilt(record);
        try {
          await this.rebuild(record);
          restored++;
          this.ctx.log.info({ segment: record.id, url: record.url }, 'segment restored');
        } catch (err) {
          this.failed.set(record.id, { record, error: errorMessage(err) });
          this.ctx.log.warn(
            { segment: record.id, url: record.url, err: errorMessage(err) },
            'segment not restored (kept: list shows it failed; tried again every --retry-failed seconds)',
          );
        }
      }),
    );
    if (records.length > 0)
      this.ctx.log.info({ restored, failed: this.failed.size }, 'segments from the state directory');
    // What failed may work later: a container started after the daemon, a namespace made again.
    this.retryTimer = setInterval(() => void this.retryFailed(), this.ctx.retryFailedMs);
    this.retryTimer.unref();
  }

  /** Build a kept segment as it was: same ids, same head ports. */
  private rebuild(record: SegmentRecord): Promise<Segment[]> {
    const ports = new Map(record.built.map((b) => [b.id, b.port]));
    return this.buildTop(record, { ...parsePlan(record.actions), id: record.id }, ports);
  }

  /** Try the segments that could not be built again; a new reason replaces the old. */
  private async retryFailed(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const [id, { record }] of [...this.failed]) {
        if (!this.failed.has(id)) continue;
        try {
          await this.rebuild(record);
        } catch (err) {
          if (this.failed.has(id)) this.failed.set(id, { record, error: errorMessage(err) });
          continue;
        }
        if (this.failed.delete(id)) this.ctx.log.info({ segment: id, url: record.url }, 'segment restored');
        else await this.host.deleteTree(id).then(() => this.forget(id)); // deleted while it was built
      }
    } finally {
      this.retrying = false;
    }
  }

  /** A create cut short by a crash: delete what it may have made on peers, then forget it. */
  private async cleanHalfBuilt(record: SegmentRecord): Promise<void> {
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

  /** No more retries (the daemon stops). */
  stop(): void {
    clearInterval(this.retryTimer);
  }
}
