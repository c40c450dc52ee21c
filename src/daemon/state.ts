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
  private readonly lockFile: string;

  constructor(readonly dir: string) {
    this.lockFile = path.join(dir, 'wormholed.pid');
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.lock();
      const ownerFile = path.join(dir, 'owner-id');
      if (!fs.existsSync(ownerFile)) fs.writeFileSync(ownerFile, `${randomUUID()}\n`, { mode: 0o600 });
      this.ownerId = fs.readFileSync(ownerFile, 'utf8').trim();
    } catch (err) {
      if (err instanceof WormholeError) throw err;
      throw stateDirError(dir, err);
    }
  }

  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(this.lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        return;
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
    }
    throw new WormholeError('STATE_LOCKED', `cannot lock the state directory ${this.dir}`);
  }

  /** A file path inside the state directory. */
  file(name: string): string {
    return path.join(this.dir, name);
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
