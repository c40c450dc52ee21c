/**
 * The segments the state directory keeps, built again when the daemon starts, and those that
 * could not be, tried again every --retry-failed seconds until they build or are deleted.
 */
import { WormholeError, errorMessage } from '../common/errors';
import type { SegmentRecord } from '../store';
import type { SegmentContext } from './context';
import type { SegmentKeeper } from './keeper';
import type { Segment } from './segment';

/** What restoring needs of the manager. */
export interface RestoreHost {
  readonly ctx: SegmentContext;
  readonly keeper: SegmentKeeper;
  /** Build a kept segment as it was: same ids, same head ports. */
  rebuild(record: SegmentRecord): Promise<Segment[]>;
  /** Delete a segment and its children; the ids deleted. */
  deleteTree(id: string): Promise<string[]>;
}

/** One daemon's restoring at start, and its retries of what failed. */
export class Restorer {
  private timer: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(private readonly host: RestoreHost) {}

  /**
   * Build again every segment the store kept (the daemon starts): complete ones with their
   * ids and ports; half-built ones (a crash cut their create short) are cleaned instead, their
   * children on peers deleted. What cannot be built is kept, shown as failed, tried again
   * every --retry-failed seconds. Records are independent of each other: built side by side.
   */
  async restore(records: SegmentRecord[]): Promise<void> {
    const { ctx, keeper } = this.host;
    let restored = 0;
    await Promise.all(
      records.map(async (record) => {
        if (!record.complete) return keeper.cleanHalfBuilt(record);
        try {
          await this.host.rebuild(record);
          restored++;
          ctx.log.info({ segment: record.id, url: record.url }, 'segment restored');
        } catch (err) {
          if (err instanceof WormholeError && err.code === 'ABORTED') return; // deleted meanwhile
          keeper.failedToBuild(record, err);
          ctx.log.warn(
            { segment: record.id, url: record.url, err: errorMessage(err) },
            'segment not restored (kept: list shows it failed; tried again every --retry-failed seconds)',
          );
        }
      }),
    );
    if (records.length > 0)
      ctx.log.info({ restored, failed: keeper.failed.size }, 'segments from the state directory');
    // What failed may work later: a container started after the daemon, a namespace made again.
    this.timer = setInterval(() => void this.retryFailed(), ctx.retryFailedMs);
    this.timer.unref();
  }

  /** Try the segments that could not be built again; a new reason replaces the old. */
  private async retryFailed(): Promise<void> {
    const { ctx, keeper } = this.host;
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const [id, { record }] of [...keeper.failed]) {
        if (!keeper.failed.has(id)) continue;
        try {
          await this.host.rebuild(record);
        } catch (err) {
          if (keeper.failed.has(id)) keeper.failedToBuild(record, err);
          continue;
        }
        if (keeper.failed.delete(id)) ctx.log.info({ segment: id, url: record.url }, 'segment restored');
        else await this.host.deleteTree(id).then(() => keeper.forget(id)); // deleted while it was built
      }
    } finally {
      this.retrying = false;
    }
  }

  /** No more retries (the daemon stops). */
  stop(): void {
    clearInterval(this.timer);
  }
}
