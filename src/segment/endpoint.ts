/**
 * Heads and tails: the drafts that create actions fill in, and the resolved endpoints with
 * SPEC.md's defaults applied.
 */
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import type { Protocol, UrlParts } from '../api/url';
import { formatUrl } from '../api/url';
import { WormholeError } from '../common/errors';
import { namespaceIdentity, namespacePath } from '../netns';

/** What the actions have said so far about one end; unset parts are undefined. */
export interface Draft {
  proto?: Protocol;
  /** Namespace file; null is the host's own namespace. */
  ns?: string | null;
  /** The user's word for the namespace (name, path or container), for display. */
  nsLabel?: string;
  host?: string;
  port?: number;
  /** The container whose namespace this is, if any. */
  container?: string;
  /** That container's full id when it was looked up (events name containers by it). */
  containerId?: string;
  /** `docker-label KEY=VALUE`: every running container with the label is a tail. */
  label?: string;
}

/** A fully resolved local end. */
export interface Endpoint {
  proto: Protocol;
  ns: string | null;
  nsLabel?: string;
  host: string;
  port: number;
  container?: string;
  containerId?: string;
}

/** The loopback address SPEC.md uses when a URL names no host. */
export const DEFAULT_HOST = '127.0.0.1';

/**
 * Apply a URL's parts to a draft. A namespace must exist unless `checkNs` is false (a
 * trigger's namespace may appear before the first connection; the trigger checks it then).
 */
export function applyUrl(draft: Draft, url: UrlParts, checkNs = true): void {
  if (url.proto) draft.proto = url.proto;
  if (url.host !== undefined) draft.host = url.host;
  if (url.port !== undefined) draft.port = url.port;
  if (url.ns !== undefined) {
    const nsPath = namespacePath(url.ns);
    if (checkNs) namespaceIdentity(nsPath);
    draft.ns = nsPath;
    draft.nsLabel = url.ns;
    draft.container = undefined;
    draft.containerId = undefined;
  }
}

/** Turn a host name into an address (numeric addresses pass through). */
export async function resolveHost(host: string): Promise<string> {
  if (net.isIP(host)) return host;
  try {
    const { address } = await dns.lookup(host);
    return address;
  } catch {
    throw new WormholeError('HOST_NOT_FOUND', `cannot resolve host "${host}"`);
  }
}

/** The head with defaults: tcp, 127.0.0.1, the port given (0: ephemeral), host namespace. */
export async function resolveHead(d: Draft): Promise<Endpoint> {
  return {
    proto: d.proto ?? 'tcp',
    ns: d.ns ?? null,
    nsLabel: d.nsLabel,
    host: await resolveHost(d.host ?? DEFAULT_HOST),
    port: d.port ?? 0,
    container: d.container,
    containerId: d.containerId,
  };
}

/**
 * The tail with defaults: the head's protocol, 127.0.0.1, the head's port (as configured),
 * the host's namespace. A tail without a port is an error.
 */
export async function resolveTail(d: Draft, head: Draft): Promise<Endpoint> {
  const port = d.port ?? head.port ?? 0;
  if (port === 0) {
    throw new WormholeError('TAIL_NO_PORT', 'the tail has no port: name one, e.g. "tail url :80"');
  }
  return {
    proto: d.proto ?? head.proto ?? 'tcp',
    ns: d.ns ?? null,
    nsLabel: d.nsLabel,
    host: await resolveHost(d.host ?? DEFAULT_HOST),
    port,
    container: d.container,
    containerId: d.containerId,
  };
}

function wildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** Refuse a tail that is the head itself: the segment would proxy to itself. */
export function checkNotSelf(head: Endpoint, boundPort: number, tail: Endpoint): void {
  const sameNs = namespaceIdentity(head.ns) === namespaceIdentity(tail.ns);
  const sameHost = head.host === tail.host || wildcard(head.host);
  if (head.proto === tail.proto && sameNs && sameHost && boundPort === tail.port) {
    throw new WormholeError(
      'SELF_PROXY',
      `the tail ${describe(tail)} is the head itself: it would proxy to itself; give the tail another port, host or namespace`,
    );
  }
}

/** A URL for display: `tcp://[ns@]host:port`. */
export function describe(e: Endpoint, port = e.port): string {
  // a full container id is shortened as docker does; a name is shown as it is
  const container =
    e.container && /^[0-9a-f]{64}$/.test(e.container) ? e.container.slice(0, 12) : e.container;
  return formatUrl(e.proto, e.host, port, container ? `docker:${container}` : e.nsLabel);
}
