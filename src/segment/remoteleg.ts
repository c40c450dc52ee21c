/**
 * The remote leg: a byte stream to the tail of a segment on a peer (an `attach` over the
 * daemons' encrypted channel), retried for the dial timeout. TCP connections and UDP
 * sessions over `remote` both open theirs here, so how the leg is carried changes in one place.
 */
import type { Duplex } from 'node:stream';
import type { Client } from '../proxy/head';
import { dialWithRetry } from '../proxy/dial';
import { type Origin, proxyHeader } from '../proxy/proxyproto';
import type { PeerLink } from './context';

/** A stream to peer `host`'s segment `id` (`origin`: the client it carries, for a PROXY header there). */
export function dialRemote(
  peers: PeerLink,
  host: string,
  id: string,
  dialTimeoutMs: number,
  origin?: Origin,
): Promise<Duplex> {
  return dialWithRetry(() => peers.attach(host, id, origin), `peer ${host}`, dialTimeoutMs);
}

/**
 * A TCP client's socket given to the engine's channel to the peer, with the attach (and the
 * tail's PROXY header, when it wants one) ahead of its bytes: no JavaScript per byte. Retried
 * as dialRemote is while the channel cannot be had. False, with the client untouched, when
 * the channel is JavaScript's or the client's socket cannot be given.
 */
export function carryRemote(
  peers: PeerLink,
  tail: { host: string; id: string; proxy?: 1 | 2 },
  origin: Origin | undefined,
  client: Client,
  dialTimeoutMs: number,
): Promise<boolean> {
  const attachFd = peers.attachFd?.bind(peers);
  if (!attachFd || !client.takeFd) return Promise.resolve(false);
  const take = client.takeFd.bind(client);
  const first = tail.proxy ? proxyHeader(tail.proxy, origin) : undefined;
  return dialWithRetry(
    () => attachFd(tail.host, tail.id, origin, first, take),
    `peer ${tail.host}`,
    dialTimeoutMs,
  );
}

/**
 * A TCP client joined to peer `tail.host`'s segment: on the engine's channel when it can be,
 * else over an attach stream (with the tail's PROXY header first, before any client byte).
 * `ready` is told once bytes may flow; a segment closed meanwhile drops the client.
 */
export async function joinRemote(
  peers: PeerLink,
  tail: { host: string; id: string; proxy?: 1 | 2 },
  client: Client,
  dialTimeoutMs: number,
  isClosed: () => boolean,
  ready?: (err?: unknown) => void,
): Promise<void> {
  // the client's addresses go along: a tail on the peer may want a PROXY header
  const origin = client.origin;
  if (await carryRemote(peers, tail, origin, client, dialTimeoutMs)) return ready?.();
  const stream = await dialRemote(peers, tail.host, tail.id, dialTimeoutMs, origin);
  if (isClosed()) {
    stream.destroy();
    client.drop();
    return;
  }
  ready?.();
  if (tail.proxy) stream.write(proxyHeader(tail.proxy, origin));
  client.join(stream);
}
