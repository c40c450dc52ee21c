/**
 * A file written atomically: a new file beside it, synced, renamed over the old one, the
 * directory synced, so that a crash in the middle of a write leaves the old content or the
 * new, never half of either (the segment records, the tunnel state).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Write `text` to `file` atomically, mode `mode`. The temporary file is `FILE.PID.tmp`: a
 * reader of the directory knows whose write it was. `sync` false: neither the file nor the
 * directory is synced here, the caller syncs many writes at once (a syncfs after them).
 */
export function writeFileAtomic(file: string, text: string, mode = 0o600, sync = true): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, text);
    if (sync) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  if (sync) syncDir(path.dirname(file));
}

/** A rename (or a removal) in `dir` is durable only once the directory is synced. */
export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
