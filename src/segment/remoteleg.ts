/**
 * The remote leg: a byte stream to the tail of a segment on a peer (an `attach` over the
 * daemons' encrypted channel), retried for the dial timeout. TCP connections and UDP
 * sessions over `remote` both open theirs here, so how the leg is carried changes in one place.
 */
import type { Duplex } from 'node:stream';
import { dialWithRetry } from '../proxy/dial';
import type { Origin } from '../proxy/proxyproto';
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
