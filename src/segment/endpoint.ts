/**
 * Heads and tails: the drafts that create actions fill in, and the resolved endpoints with
 * SPEC.md's defaults applied.
 */
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Protocol, UrlParts } from '../api/url';
import { formatUnixUrl, formatUrl } from '../api/url';
import { WormholeError } from '../common/errors';
import { namespaceIdentity, namespacePath, rootOf } from '../netns';
import { namespaceAddress } from '../netns/policy';

/** What the actions have said so far about one end; unset parts are undefined. */
export interface Draft {
  proto?: Protocol;
  /** Namespace file; null is the host's own namespace. */
  ns?: string | null;
  /** The user's word for the namespace (name, path or container), for display. */
  nsLabel?: string;
  host?: string;
  port?: number;
  /** The last port of a range `:port-portEnd` (SPEC.md "Port ranges"); undefined: one port. */
  portEnd?: number;
  /** The container whose namespace this is, if any. */
  container?: string;
  /** That container's full id when it was looked up (events name containers by it). */
  containerId?: string;
  /** A unix socket: `/path` (in the end's filesystem) or `@name` (abstract). */
  path?: string;
  /** A unix head's socket file mode. */
  mode?: number;
  /** A tail's PROXY protocol version: each connection to it starts with the header. */
  proxy?: 1 | 2;
  /** `transparent`: the tail is dialed from the client's own address and port. */
  transparent?: boolean;
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
  /**
   * A range's last port: a head listens on port..portEnd; a tail takes head port i to tail
   * port i (port + i - the head's port). Undefined: one port (a tail's takes every head port).
   */
  portEnd?: number;
  container?: string;
  containerId?: string;
  /** A unix socket's address (host is '' and port 0 then). */
  path?: string;
  /** A unix head's socket file mode. */
  mode?: number;
  /** A tail's PROXY protocol version. */
  proxy?: 1 | 2;
  /** A tail dialed from the client's own address and port (src/segment/transparent.ts). */
  transparent?: boolean;
  /**
   * A unix tail on the host's filesystem, allowed by --allow-unix (src/segment/hostunix.ts):
   * the allowed directory and the socket's path inside it, dialed with that directory as
   * the root of every lookup, as a container's root is.
   */
  confined?: { root: string; path: string };
}

/** The loopback address SPEC.md uses when a URL names no host. */
export const DEFAULT_HOST = '127.0.0.1';

/** A unix head's socket file mode when the URL gives none: owner and group may connect. */
export const DEFAULT_MODE = 0o660;

/**
 * Apply a URL's parts to a draft. A namespace must exist unless `checkNs` is false (a
 * trigger's namespace may appear before the first connection; the trigger checks it then).
 */
export function applyUrl(draft: Draft, url: UrlParts, checkNs = true): void {
  if (url.proto) draft.proto = url.proto;
  if (url.host !== undefined) draft.host = url.host;
  if (url.port !== undefined) {
    draft.port = url.port;
    draft.portEnd = url.portEnd; // (a single port after a range ends the range)
  }
  if (url.path !== undefined) draft.path = url.path;
  if (url.mode !== undefined) draft.mode = url.mode;
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
  if (d.proto === 'unix') {
    if (!d.path)
      throw new WormholeError('NO_PATH', 'a unix head needs a path: url unix:///PATH or unix://@NAME');
    return { ...unixEnd(d, d.path), mode: d.mode ?? DEFAULT_MODE };
  }
  return {
    proto: d.proto ?? 'tcp',
    ns: d.ns ?? null,
    nsLabel: d.nsLabel,
    host: await resolveHost(d.host ?? DEFAULT_HOST),
    port: d.port ?? 0,
    portEnd: d.portEnd,
    container: d.container,
    containerId: d.containerId,
  };
}

/**
 * The tail with defaults: the head's protocol, 127.0.0.1, the head's port (as configured),
 * the host's namespace. A tail without a port is an error.
 */
export async function resolveTail(d: Draft, head: Draft): Promise<Endpoint> {
  const proto = tailProto(d, head);
  if (proto === 'unix') {
    const address = d.path ?? (head.proto === 'unix' ? head.path : undefined);
    if (!address)
      throw new WormholeError(
        'TAIL_NO_PATH',
        'the unix tail has no path: name one, e.g. "tail url unix:///run/app.sock"',
      );
    return { ...unixEnd(d, address), proxy: d.proxy, transparent: d.transparent };
  }
  const port = d.port ?? head.port ?? 0;
  // a tail with no port of its own takes the head's: a head range, port i to port i
  const portEnd = d.port !== undefined ? d.portEnd : head.portEnd;
  if (port === 0) {
    throw new WormholeError('TAIL_NO_PORT', 'the tail has no port: name one, e.g. "tail url :80"');
  }
  return {
    proto,
    ns: d.ns ?? null,
    nsLabel: d.nsLabel,
    host: await resolveHost(d.host ?? (await defaultTailHost(d))),
    port,
    portEnd,
    container: d.container,
    containerId: d.containerId,
    proxy: d.proxy,
    transparent: d.transparent,
  };
}

/**
 * A tail's host when its URL names none: 127.0.0.1, or for a transparent tail in a namespace
 * of its own (a container's) that namespace's own address: a loopback tail cannot be
 * transparent (src/segment/transparent.ts), and the container's address is not known
 * before it runs.
 */
async function defaultTailHost(d: Draft): Promise<string> {
  if (!d.transparent || !d.ns) return DEFAULT_HOST;
  return (await namespaceAddress(d.ns).catch(() => undefined)) ?? DEFAULT_HOST;
}

/**
 * The tail's protocol when its URL named none: the head's, except that a tail given a host
 * or a port behind a unix head is TCP (`url unix:///run/db.sock tail url :3306`), and a unix
 * head's tail with neither is the same path elsewhere (`tail docker-ns $c`).
 */
export function tailProto(d: Draft, head: Draft): Protocol {
  if (d.proto) return d.proto;
  if (head.proto === 'unix') return d.port !== undefined || d.host !== undefined ? 'tcp' : 'unix';
  return head.proto ?? 'tcp';
}

/** A unix end: its socket's address, no host or port. */
function unixEnd(d: Draft, address: string): Endpoint {
  return {
    proto: 'unix',
    ns: d.ns ?? null,
    nsLabel: d.nsLabel,
    host: '',
    port: 0,
    path: address,
    container: d.container,
    containerId: d.containerId,
  };
}

function wildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** Where a unix address lives: its filesystem root's identity, or its namespace's (abstract). */
function unixPlace(e: Endpoint): string {
  if (e.path?.startsWith('@')) return `net ${namespaceIdentity(e.ns)}`;
  try {
    const st = fs.statSync(rootOf(e.ns) ?? '/', { bigint: true });
    return `fs ${st.dev}:${st.ino} ${path.normalize(e.path ?? '')}`;
  } catch {
    return `fs ${rootOf(e.ns)} ${e.path}`;
  }
}

/** Refuse a tail that is the head itself: the segment would proxy to itself. */
export function checkNotSelf(head: Endpoint, boundPort: number, tail: Endpoint): void {
  if (head.proto === 'unix' || tail.proto === 'unix') {
    if (head.proto === tail.proto && head.path === tail.path && unixPlace(head) === unixPlace(tail))
      throw new WormholeError(
        'SELF_PROXY',
        `the tail ${describe(tail)} is the head itself: it would proxy to itself; give the tail another path or namespace`,
      );
    return;
  }
  const sameNs = namespaceIdentity(head.ns) === namespaceIdentity(tail.ns);
  const sameHost = head.host === tail.host || wildcard(head.host);
  // (ranges: any port in both would reach itself)
  const headEnd = boundPort + (head.portEnd ?? head.port) - head.port;
  const overlaps = boundPort <= (tail.portEnd ?? tail.port) && tail.port <= headEnd;
  if (head.proto === tail.proto && sameNs && sameHost && overlaps) {
    throw new WormholeError(
      'SELF_PROXY',
      `the tail ${describe(tail)} is the head itself: it would proxy to itself; give the tail another port, host or namespace`,
    );
  }
}

/** A URL for display: `tcp://[ns@]host:port` (`:A-B` for a range), `unix://[ns@]/path`. */
export function describe(e: Endpoint, port = e.port): string {
  // a full container id is shortened as docker does; a name is shown as it is
  const container =
    e.container && /^[0-9a-f]{64}$/.test(e.container) ? e.container.slice(0, 12) : e.container;
  const ns = container ? `docker:${container}` : e.nsLabel;
  if (e.proto === 'unix') return formatUnixUrl(e.path ?? '', ns);
  return formatUrl(e.proto, e.host, port, ns, e.portEnd);
}
