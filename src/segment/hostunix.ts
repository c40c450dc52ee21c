/**
 * Unix tails on the host's own filesystem. The daemon connects as root, so a tail at
 * `/var/run/docker.sock` (or the system bus) would hand root to whoever reaches the head:
 * such a tail is dialed only when its path, resolved as the kernel would (symlinks
 * followed), lies under a directory the operator allowed with `wormholed --allow-unix DIR`,
 * as `--allow-bind` does for bind mounts (src/docker/binds.ts).
 *
 * The check at create is not enough: a symlink made under DIR afterwards (by whoever may
 * write there) would lead the next dial out. So an allowed tail is dialed as a container's
 * socket is, with DIR as the root of the lookup (openat2 RESOLVE_IN_ROOT: src/netns,
 * native/unixsock.c): `/` and `..` stay at DIR, and every dial stays inside it.
 *
 * Paths inside a container are the container's (its root, /proc/PID/root) and stay as they
 * are; abstract names (`@name`) have no path. A namespace named by a process whose root is
 * the host's (`/proc/1/ns/net`) is the host's filesystem, and is checked as such.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError } from '../common/errors';
import { hasDotParts, isUnder, resolveHostPath } from '../common/hostpath';
import { rootOf } from '../netns';
import { type Endpoint, describe } from './endpoint';

/** Is this end's filesystem the host's own (the host's namespace, a named one, or a process of the host's)? */
function onHostFs(ns: string | null): boolean {
  const root = rootOf(ns);
  if (root === null) return true;
  try {
    const [a, b] = [fs.statSync(root), fs.statSync('/')];
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    // a root that cannot be looked at is not known to be a container's: checked as the host's
    return true;
  }
}

/**
 * A tail as it may be dialed: a host-path unix tail confined to the --allow-unix directory
 * it lies under (`allowed`: resolved at start), or refused in one line naming the flag. Any
 * other tail comes back as it is.
 */
export function confineUnixTail(ep: Endpoint, allowed: readonly string[]): Endpoint {
  const p = ep.path;
  if (ep.proto !== 'unix' || !p?.startsWith('/') || !onHostFs(ep.ns)) return ep;
  const tail = describe(ep);
  if (allowed.length === 0)
    throw new WormholeError(
      'UNIX_REFUSED',
      `the tail ${tail} is a socket on the host, which the daemon would dial as root: allowed only under wormholed --allow-unix DIR`,
    );
  if (hasDotParts(p))
    throw new WormholeError('UNIX_REFUSED', `the tail ${tail}: write its path without . or ..`);
  const real = resolveHostPath(p);
  const dir = allowed.find((d) => isUnder(d, real));
  if (dir === undefined)
    throw new WormholeError(
      'UNIX_REFUSED',
      `the tail ${tail}${real === p ? '' : ` (${real})`} is outside the --allow-unix directories (${allowed.join(', ')}): start wormholed with --allow-unix DIR to allow it`,
    );
  return { ...ep, confined: { root: dir, path: `/${path.relative(dir, real)}` } };
}

/** Where a unix tail is dialed: its filesystem root (null: the host's "/") and its path there. */
export function unixDialPlace(ep: Endpoint): { root: string | null; path: string } {
  return ep.confined ?? { root: rootOf(ep.ns), path: ep.path ?? '' };
}
