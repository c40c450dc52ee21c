/**
 * Segments kept on disk: one file per top segment in the state directory, written atomically
 * (a new file, synced, renamed over the old one, the directory synced), so that a crash in the
 * middle of a write leaves the old record or the new one, never half of either. A file that
 * cannot be read back is skipped with the reason, never fatal: the daemon starts without it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ID_PATTERN, VERBS } from '../api/grammar';
import { syncDir, writeFileAtomic } from '../common/atomicfile';
import { errorMessage } from '../common/errors';

/** Bump when a record changes shape; older records are read by migration or skipped. */
export const RECORD_VERSION = 1;

const action = z.object({ verb: z.enum(VERBS), args: z.array(z.string()) }).strict();

/**
 * What it takes to build a top segment again: the actions it was created with, and what the
 * daemon chose then that it must choose the same way again (ids, ports of ephemeral heads).
 */
export const segmentRecordSchema = z
  .object({
    version: z.literal(RECORD_VERSION),
    /** The top segment's id (also the file's name). */
    id: z.string().regex(ID_PATTERN),
    /** `create` from a user, or `peer-create` from another daemon. */
    kind: z.enum(['local', 'peer']),
    actions: z.array(action),
    /** Made by `apply` (only such segments are deleted by `apply --prune`). */
    applied: z.boolean().optional(),
    /** Made from a `wormhole.NAME` label of this container (src/segment/labels.ts). */
    label: z.string().optional(),
    /** A peer-create's head (where the peer's tail points). */
    head: z
      .object({ proto: z.enum(['tcp', 'udp']), host: z.string().optional(), port: z.number().int() })
      .optional(),
    /** A peer-create's identity, the same when the parent asks again after a restart. */
    key: z.string().optional(),
    /** The name of the key that made it (--keys); absent: made before keys had names, by admin. */
    owner: z.string().max(64).optional(),
    /** Every segment built at create time, top first, in build order, with its head's port. */
    built: z.array(z.object({ id: z.string(), port: z.number().int().min(0).max(65535) })),
    /** `false` while the create runs: a crash then leaves a half-built segment to clean. */
    complete: z.boolean(),
    /** Where the head listened, for `list` when the segment cannot be built again. */
    url: z.string(),
    createdAt: z.number(),
  })
  .strict();

export type SegmentRecord = z.infer<typeof segmentRecordSchema>;

/** A file that was not read, and why. */
export interface Skipped {
  file: string;
  why: string;
}

/** The segment records of one state directory. */
export class SegmentStore {
  /** Batches open (batch()): while any is, writes are not synced one by one. */
  private batches = 0;
  /** Writes made while a batch is open, not synced yet. */
  private unsynced = 0;

  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  /** Write (or replace) a record atomically (synced, unless a batch is open). */
  save(record: SegmentRecord): void {
    writeFileAtomic(this.file(record.id), `${JSON.stringify(record)}\n`, 0o600, this.batches === 0);
    if (this.batches > 0) this.unsynced++;
  }

  /** Forget a record (idempotent). */
  forget(id: string): void {
    fs.rmSync(this.file(id), { force: true });
    if (this.batches === 0) syncDir(this.dir);
    else this.unsynced++;
  }

  /**
   * Run `fn` with the records it writes made durable together at its end, by one `syncAll`
   * of the directory's file system (syncfs: the store may not load the addon, its caller
   * gives it), instead of two fsyncs per write: `apply` of 10,000 segments wrote for minutes
   * (about 10 ms a write). Every write of the daemon while a batch is open waits for that
   * sync, a create beside the apply too. A crash before it may lose records written in the
   * batch, or leave one empty: load() skips it, with the reason, as any record it cannot read.
   * syncfs writes out the whole file system's dirty data, other programs' too, and blocks
   * until it is done: a batch that wrote nothing (a dry run, an apply that changed nothing)
   * does not sync.
   */
  async batch<T>(fn: () => Promise<T>, syncAll: (fd: number) => void): Promise<T> {
    this.batches++;
    try {
      return await fn();
    } finally {
      if (--this.batches === 0 && this.unsynced > 0) {
        this.unsynced = 0;
        const fd = fs.openSync(this.dir, 'r');
        try {
          syncAll(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  }

  /**
   * Every record, oldest first (the order they were created in, so that a head port freed
   * and taken again between them goes to the same segment), and the files that were not read.
   * Temporary files of an interrupted write (`ID.json.PID.tmp`) are removed when their
   * writer is dead: their record is the one before. A live writer's (a daemon handing over
   * to this one) is left alone, neither read nor removed.
   */
  load(): { records: SegmentRecord[]; skipped: Skipped[] } {
    const records: SegmentRecord[] = [];
    const skipped: Skipped[] = [];
    for (const name of fs.readdirSync(this.dir).sort()) {
      const file = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        if (!writerAlive(name)) fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const parsed = segmentRecordSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          skipped.push({ file, why: `not a segment record (${issue.path.join('.')}: ${issue.message})` });
        } else if (`${parsed.data.id}.json` !== name) {
          skipped.push({ file, why: `holds segment ${parsed.data.id}, not the one its name says` });
        } else records.push(parsed.data);
      } catch (err) {
        skipped.push({ file, why: errorMessage(err) });
      }
    }
    records.sort((a, b) => a.createdAt - b.createdAt);
    return { records, skipped };
  }
}

/** Is the process whose pid a temporary file's name carries (`NAME.PID.tmp`) alive? */
export function writerAlive(name: string): boolean {
  const m = /\.(\d+)\.tmp$/.exec(name);
  if (!m || Number(m[1]) === process.pid) return false;
  try {
    process.kill(Number(m[1]), 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // (alive, another user's)
  }
}
