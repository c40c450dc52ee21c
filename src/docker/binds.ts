/**
 * Which host paths `docker-run -v SRC:DST` may mount. Anyone holding the key drives a root
 * daemon, and a container with the host's `/` mounted is root on the host: so a host path
 * is refused unless the daemon was started with `--allow-bind DIR` and the path, resolved
 * as the kernel would (symlinks followed), lies under DIR. Named volumes stay allowed: they
 * live in Docker's own storage.
 */
import { WormholeError } from '../common/errors';
import { hasDotParts, isUnder, resolveDirs, resolveHostPath } from '../common/hostpath';

/**
 * The --allow-bind directories, resolved once at start: each must exist and be a directory.
 * Throws a one-line WormholeError naming the flag.
 */
export function resolveAllowedDirs(dirs: readonly string[]): string[] {
  return resolveDirs('--allow-bind', dirs);
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
    if (hasDotParts(src))
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
