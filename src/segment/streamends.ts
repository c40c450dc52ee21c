/**
 * The two kinds of byte stream end, TCP and unix, behind one face: a head's listening socket
 * (and, for a unix path, the socket file it leaves to remove), and the tail a head's
 * connections go to (the endpoint, and how each mover reaches it). A head
 * of one kind joins a tail of the other as it is: both carry half-close (shutdown(SHUT_WR)).
 */
import { type Protocol, isStream } from '../api/url';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import {
  connectTcp,
  connectUnix,
  listenTcp,
  listenUnix,
  openNamespace,
  openRoot,
  removeUnix,
} from '../netns';
import type * as net from 'node:net';
import type { TailTarget } from '../proxy/head';
import { type Endpoint, describe } from './endpoint';
import { unixDialPlace } from './hostunix';
import { bindAll, rangeCount, tailPortFor } from './range';
import { closeQuietly } from '../proxy/headbase';

/** A stream head's listening sockets: one, or a port range's in port order. */
export interface BoundHead {
  fds: number[];
  /** The port bound (TCP; 0 for unix). */
  port: number;
  /**
   * A unix path head's socket file: what removes it (only if it is still the file this bind
   * made), and its identity (handed to a daemon taking over, which removes it in its turn).
   */
  identity?: string;
}

/**
 * Listen at a stream head: TCP on host:port (every port of a range, all or nothing), or unix
 * at its path (mode, stale socket replaced) or abstract name, inside the head's namespace (and
 * for a path, its filesystem).
 */
export async function bindStreamHead(head: Endpoint, port = head.port): Promise<BoundHead> {
  if (head.proto === 'unix') {
    const { fd, identity } = await listenUnix(head.ns, head.path!, head.mode ?? 0o660);
    return { fds: [fd], port: 0, identity };
  }
  const bound = await bindAll(
    port,
    rangeCount(head),
    (p) => listenTcp(head.ns, head.host, p),
    (b) => closeQuietly(b.fd),
  );
  return { fds: bound.map((b) => b.fd), port: bound[0].port };
}

/** Remove a unix head's socket file (the segment is deleted); a failure is only logged. */
export async function releaseStreamHead(
  head: Endpoint,
  identity: string | undefined,
  log: Logger,
): Promise<void> {
  if (head.proto !== 'unix' || !identity) return;
  await removeUnix(head.ns, head.path!, identity).catch((err: unknown) => {
    // a root or directory that is gone (the head's container was removed): nothing to remove
    if (errnoCode(err) !== 'ENOENT')
      log.warn({ path: head.path, err: errorMessage(err) }, 'unix head socket file not removed');
  });
}

/**
 * A stream tail as a head takes it: the endpoint, with how to open its namespace and
 * filesystem root (for a mover that dials from inside them) and how to connect from here.
 * A class of methods, not an object of closures: a closure and its context for each of the
 * three were 0.15 KiB of every idle segment with 10,000 of them (issue 20); the two openers
 * are getters (absent when not needed, as TailTarget says), made only when a mover asks.
 */
class StreamTarget implements TailTarget {
  readonly host: string;
  readonly port: number;
  readonly path: string | undefined;
  readonly proxy: 1 | 2 | undefined;
  readonly span: boolean;
  readonly what: string;
  mark: number | undefined;

  constructor(private readonly ep: Endpoint) {
    this.host = ep.host;
    this.port = ep.port;
    // (a host path allowed by --allow-unix: looked up inside its allowed directory)
    this.path = ep.proto === 'unix' ? unixDialPlace(ep).path : undefined;
    this.proxy = ep.proxy;
    this.span = ep.portEnd !== undefined;
    this.what = describe(ep);
  }

  get openNamespace(): (() => Promise<number>) | undefined {
    const ns = this.ep.ns;
    return ns === null ? undefined : () => openNamespace(ns);
  }

  get openRoot(): (() => Promise<number>) | undefined {
    const ep = this.ep;
    return ep.proto === 'unix' ? () => openRoot(ep.ns, unixDialPlace(ep).root) : undefined;
  }

  connect(timeoutMs?: number, offset = 0): Promise<net.Socket> {
    const ep = this.ep;
    if (ep.proto === 'unix') {
      const place = unixDialPlace(ep);
      return connectUnix(ep.ns, place.path, place.root);
    }
    return connectTcp(ep.ns, ep.host, tailPortFor(ep, offset), timeoutMs);
  }
}

/** A stream tail as a head takes it; `mark`: a transparent tail's (transparent.ts). */
export function streamTarget(ep: Endpoint, mark?: number): TailTarget {
  const target = new StreamTarget(ep);
  if (mark !== undefined) target.mark = mark;
  return target;
}

/**
 * Refuse, at create time, a head and a tail that cannot be joined: byte streams (tcp, unix)
 * join each other, udp joins only udp; and a PROXY protocol header needs a stream tail.
 */
export function checkJoin(head: Protocol, tail: Protocol, proxy?: 1 | 2): void {
  if (isStream(head) !== isStream(tail))
    throw new WormholeError(
      'PROTO_MISMATCH',
      `the head speaks ${head} but the tail ${tail}: udp joins only udp (tcp and unix join each other)`,
    );
  if (proxy && tail === 'udp')
    throw new WormholeError('PROTO_MISMATCH', 'proxy-protocol needs a tcp or unix tail, not udp');
}
