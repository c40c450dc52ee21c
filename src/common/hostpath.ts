/**
 * Host paths a root daemon may be led to by a key holder, bounded by directories the
 * operator allows (`--allow-bind` for bind mounts, `--allow-unix` for unix tails): the
 * allowed directories resolved once at start, a path resolved as the kernel would (symlinks
 * followed), and whether it lies under one of them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError, errnoCode } from './errors';

/**
 * The directories given to `flag`, resolved (symlinks followed): each must exist and be a
 * directory. Throws a one-line WormholeError naming the flag.
 */
export function resolveDirs(flag: string, dirs: readonly string[]): string[] {
  return dirs.map((dir) => {
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch (err) {
      throw new WormholeError(
        'BAD_FLAG',
        `${flag} ${dir} cannot be used (${errnoCode(err) ?? 'unreadable'}): give an existing directory`,
      );
    }
    if (!fs.statSync(real).isDirectory())
      throw new WormholeError('BAD_FLAG', `${flag} ${dir} is not a directory: give a directory`);
    return real;
  });
}

/**
 * Resolve a host path as the kernel will: the longest part that exists with its symlinks
 * followed, then the rest (which does not exist yet: made later, or never).
 */
export function resolveHostPath(p: string): string {
  let existing = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(existing), ...rest);
    } catch {
      if (existing === '/') return p;
      rest.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
}

/** Does `p` lie under `dir` (or is it `dir`)? Both resolved. */
export function isUnder(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !path.isAbsolute(rel));
}

/** Does a path have a `.` or `..` part? Those are resolved after symlinks, not as text: refused. */
export function hasDotParts(p: string): boolean {
  return p.split('/').some((c) => c === '.' || c === '..');
}
