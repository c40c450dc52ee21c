/**
 * Where the container engine is: DOCKER_HOST when it is set; else Docker's socket; else, on a
 * host with no Docker socket, rootful Podman's (its Docker-compatible API, which `podman
 * system service` or the `podman.socket` unit serves). Which engine it is only changes what
 * messages tell a user to start.
 */

/** Docker's socket when DOCKER_HOST is not set. */
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';
/** Rootful Podman's socket (Docker's API), used when there is no Docker socket. */
export const PODMAN_HOST = 'unix:///run/podman/podman.sock';

/** Whether a unix socket path exists (fs.existsSync; a fake in tests). */
export type Exists = (path: string) => boolean;

/** The path of a `unix://` address, or undefined for any other kind (TCP). */
export function unixPath(host: string): string | undefined {
  return host.startsWith('unix://') ? host.slice('unix://'.length) : undefined;
}

/**
 * The engine's address: `dockerHost` (DOCKER_HOST, empty counting as unset) wins; else
 * Docker's socket if it exists; else Podman's if that exists; else Docker's, for messages
 * that say it is not running.
 */
export function engineHost(dockerHost: string | undefined, exists: Exists): string {
  if (dockerHost) return dockerHost;
  if (exists(unixPath(DEFAULT_DOCKER_HOST) as string)) return DEFAULT_DOCKER_HOST;
  if (exists(unixPath(PODMAN_HOST) as string)) return PODMAN_HOST;
  return DEFAULT_DOCKER_HOST;
}

/** Whether the address looks like Podman's (its socket's path names it). */
export function isPodman(host: string): boolean {
  return /podman/i.test(unixPath(host) ?? '');
}

/** What to start when nothing answers at `host`, for messages. */
export function startHint(host: string): string {
  return isPodman(host) ? "start Podman's API (podman system service, or podman.socket)" : 'start dockerd';
}
