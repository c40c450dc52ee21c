/**
 * The daemon's state directory: one per daemon, so that several can run on one machine.
 * It holds a lock (the pid of the daemon using it) and the daemon's owner id, which labels
 * the containers it starts so that a restarted daemon finds what a crashed one left behind.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';

/** Where state lives unless --state-dir says otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/wormhole';

/** An opened, locked state directory. */
export class StateDir {
  readonly ownerId: string;
  /**
   * The last daemon on this directory did not stop cleanly (its lock was left behind, or it
   * could not remove its containers): what it started must be looked for and removed.
   */
  readonly uncleanStop: boolean;
  /** With takeover: the running daemon this one takes over from. */
  readonly predecessor: number | undefined;
  private readonly lockFile: string;
  private readonly pendingFile: string;

  /**
   * Open and lock the directory. With `takeover`, a live daemon's lock is what is wanted
   * (there must be one): this daemon claims the lock once it serves (claim()).
   */
  constructor(
    readonly dir: string,
    takeover = false,
  ) {
    this.lockFile = path.join(dir, 'wormholed.pid');
    this.pendingFile = path.join(dir, 'cleanup-pending');
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (takeover) {
        this.predecessor = this.running();
        if (this.predecessor === undefined)
          throw new WormholeError(
            'TAKEOVER_FAILED',
            `no wormholed runs on the state directory ${dir}: start without --takeover`,
          );
        this.uncleanStop = false;
      } else this.uncleanStop = this.lock() || fs.existsSync(this.pendingFile);
      const ownerFile = path.join(dir, 'owner-id');
      if (!fs.existsSync(ownerFile)) fs.writeFileSync(ownerFile, `${randomUUID()}\n`, { mode: 0o600 });
      this.ownerId = fs.readFileSync(ownerFile, 'utf8').trim();
    } catch (err) {
      if (err instanceof WormholeError) throw err;
      throw stateDirError(dir, err);
    }
  }

  /** Take the lock; true if a dead daemon's lock was found (it crashed). */
  private lock(): boolean {
    let stale = false;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(this.lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        return stale;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number(fs.readFileSync(this.lockFile, 'utf8').trim());
      if (pid > 0 && pid !== process.pid && alive(pid)) {
        throw new WormholeError(
          'STATE_LOCKED',
          `another wormholed (pid ${pid}) uses the state directory ${this.dir}: stop it, or give this one --state-dir DIR`,
        );
      }
      fs.rmSync(this.lockFile, { force: true });
      stale = true;
    }
    throw new WormholeError('STATE_LOCKED', `cannot lock the state directory ${this.dir}`);
  }

  /** The pid of a live daemon holding the lock, if any. */
  private running(): number | undefined {
    let pid = 0;
    try {
      pid = Number(fs.readFileSync(this.lockFile, 'utf8').trim());
    } catch {
      return undefined;
    }
    return pid > 0 && pid !== process.pid && alive(pid) ? pid : undefined;
  }

  /** After a takeover: the lock is this daemon's (the predecessor, exiting, leaves it be). */
  claim(): void {
    const tmp = `${this.lockFile}.${process.pid}`;
    fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    fs.renameSync(tmp, this.lockFile);
  }

  /** A file path inside the state directory. */
  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Remember (or forget) that containers may be left to remove at the next start. */
  cleanupPending(pending: boolean): void {
    if (pending) fs.writeFileSync(this.pendingFile, '', { mode: 0o600 });
    else fs.rmSync(this.pendingFile, { force: true });
  }

  /** Release the lock. */
  release(): void {
    try {
      if (Number(fs.readFileSync(this.lockFile, 'utf8').trim()) === process.pid) fs.rmSync(this.lockFile);
    } catch {
      // already gone
    }
  }
}

/** Why a state directory cannot be used, in one line that says what to do. */
function stateDirError(dir: string, err: unknown): WormholeError {
  const code = errnoCode(err);
  const why =
    code === 'EEXIST'
      ? 'is a file, not a directory'
      : code === 'ENOTDIR'
        ? 'is under a file, not a directory'
        : code === 'EACCES' || code === 'EPERM'
          ? 'is not writable (run as root)'
          : code === 'EROFS'
            ? 'is on a read-only file system'
            : `cannot be used (${code ?? errorMessage(err)})`;
  return new WormholeError(
    'STATE_DIR',
    `state directory ${dir} ${why}: give --state-dir a directory of its own`,
  );
}

/** Is a process with this pid running (ours to signal or not)? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
