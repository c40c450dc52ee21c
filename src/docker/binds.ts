/**
 * Which host paths `docker-run -v SRC:DST` may mount. Anyone holding the key drives a root
 * daemon, and a container with the host's `/` mounted is root on the host: so a host path
 * is refused unless the daemon was started with `--allow-bind DIR` and the path, resolved
 * as the kernel would (symlinks followed), lies under DIR. Named volumes stay allowed: they
 * live in Docker's own storage.
 *
 * Docker follows a symlink in a bind's source at every start of the container, not only the
 * first (issue 18, hole 4): so the binds are checked again before every start (an idle
 * restart, an adoption), and whoever may write under DIR must not be able to swap a source
 * for a link to `/`. Hence DIR must belong to root and be writable by no one else, and a
 * source may not lie inside another container's writable bind (that container could do it).
 */
import * as fs from 'node:fs';
import { WormholeError } from '../common/errors';
import { hasDotParts, isUnder, resolveDirs, resolveHostPath } from '../common/hostpath';

/**
 * The --allow-bind directories, resolved once at start: each must exist, be a directory,
 * belong to root and be writable by no one else. Throws a one-line WormholeError naming the flag.
 */
export function resolveAllowedDirs(dirs: readonly string[]): string[] {
  const real = resolveDirs('--allow-bind', dirs);
  for (const [i, dir] of real.entries()) {
    const st = fs.statSync(dir);
    const shown = dir === dirs[i] ? dir : `${dirs[i]} (${dir})`;
    if (st.uid !== 0)
      throw new WormholeError(
        'BAD_FLAG',
        `--allow-bind ${shown} belongs to uid ${st.uid}, not root: whoever owns it could link a mount to /; give a directory of root's`,
      );
    if ((st.mode & 0o022) !== 0)
      throw new WormholeError(
        'BAD_FLAG',
        `--allow-bind ${shown} is writable by others (mode ${(st.mode & 0o777).toString(8)}): they could link a mount to /; chmod go-w it`,
      );
  }
  return real;
}

/**
 * Refuse every bind (`SRC:DST[:mode]`) whose SRC is a host path outside the allowed
 * directories (already resolved by resolveAllowedDirs), or inside one of `writable`: the
 * host paths other containers have mounted writable (resolved). The refusal says why.
 */
export function checkBinds(
  binds: readonly string[],
  allowed: readonly string[],
  writable: readonly string[] = [],
): void {
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
    if (hasDotParts(src))
      throw new WormholeError('BIND_REFUSED', `docker-run ${named}: write the host path without . or ..`);
    const real = resolveHostPath(src);
    if (!allowed.some((dir) => isUnder(dir, real))) {
      throw new WormholeError(
        'BIND_REFUSED',
        `docker-run ${named}: ${real === src ? src : `${src} (${real})`} is outside the --allow-bind directories (${allowed.join(', ')}): start wormholed with --allow-bind DIR to allow it`,
      );
    }
    const inside = writable.find((w) => isUnder(w, real));
    if (inside !== undefined)
      throw new WormholeError(
        'BIND_REFUSED',
        `docker-run ${named}: ${real} lies inside ${inside}, which another container mounts writable and could turn into a link out: give a directory no container writes to`,
      );
  }
}

/** The host paths of a container's writable binds (Docker's Mounts), resolved. */
export function writableSources(
  mounts: readonly { Type?: string; Source?: string; RW?: boolean }[],
): string[] {
  return mounts
    .filter((m) => m.Type === 'bind' && m.RW !== false && m.Source?.startsWith('/'))
    .map((m) => resolveHostPath(m.Source!));
}
