/**
 * Which host paths `docker-run -v SRC:DST` may mount. Anyone holding the key drives a root
 * daemon, and a container with the host's `/` mounted is root on the host: so a host path
 * is refused unless the daemon was started with `--allow-bind DIR` and the path, resolved
 * as the kernel would (symlinks followed), lies under DIR. Named volumes stay allowed: they
 * live in Docker's own storage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError, errnoCode } from '../common/errors';

/**
 * The --allow-bind directories, resolved once at start: each must exist and be a directory.
 * Throws a one-line WormholeError naming the flag.
 */
export function resolveAllowedDirs(dirs: readonly string[]): string[] {
  return dirs.map((dir) => {
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch (err) {
      throw new WormholeError(
        'BAD_FLAG',
        `--allow-bind ${dir} cannot be used (${errnoCode(err) ?? 'unreadable'}): give an existing directory`,
      );
    }
    if (!fs.statSync(real).isDirectory())
      throw new WormholeError('BAD_FLAG', `--allow-bind ${dir} is not a directory: give a directory`);
    return real;
  });
}

/**
 * Resolve a host path as the kernel will when Docker mounts it: the longest part that exists
 * with its symlinks followed, then the rest (which Docker would create as plain directories).
 */
function resolveHostPath(p: string): string {
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

function isUnder(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !path.isAbsolute(rel));
}

/**
 * Refuse every bind (`SRC:DST[:mode]`) whose SRC is a host path outside the allowed
 * directories (already resolved by resolveAllowedDirs). The refusal says which flag allows it.
 */
export function checkBinds(binds: readonly string[], allowed: readonly string[]): void {
  for (const bind of binds) {
    const src = bind.split(':')[0];
    if (!src.startsWith('/')) continue; // a named volume
    const named = `-v ${bind}`;
    if (allowed.length === 0) {
      throw new WormholeError(
        'BIND_REFUSED',
        `docker-run ${named}: host paths are not mounted unless wormholed runs with --allow-bind DIR; a named volume (-v NAME:/dst) is fine`,
      );
    }
    // `..` would be resolved by the kernel after symlinks, not as text: refuse it outright.
    if (src.split('/').some((c) => c === '.' || c === '..'))
      throw new WormholeError('BIND_REFUSED', `docker-run ${named}: write the host path without . or ..`);
    const real = resolveHostPath(src);
    if (!allowed.some((dir) => isUnder(dir, real))) {
      throw new WormholeError(
        'BIND_REFUSED',
        `docker-run ${named}: ${real === src ? src : `${src} (${real})`} is outside the --allow-bind directories (${allowed.join(', ')}): start wormholed with --allow-bind DIR to allow it`,
      );
    }
  }
}
