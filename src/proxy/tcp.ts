/**
 * Moves bytes between two open byte streams. Knows nothing of namespaces, Docker or the API.
 *
 * - backpressure: pipe() stops reading one side while the other's buffer is full;
 * - half-close: a FIN from one side becomes end() on the other, and the reverse direction
 *   keeps flowing (both sockets are made with allowHalfOpen);
 * - reset: ECONNRESET on one side resets the other (RST, not a clean FIN), so a client
 *   sees what the server did.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { errnoCode } from '../common/errors';

/** Bytes moved by one proxied connection, reported when both sides have closed. */
export interface SpliceStats {
  /** From the first stream (the client) to the second (the tail). */
  up: number;
  /** From the second stream back to the first. */
  down: number;
  /** The error that ended it, if any (ECONNRESET for a reset). */
  error?: string;
}

/**
 * Reset a plain TCP socket; anything else can only be torn down: a unix socket has no reset
 * (Node refuses resetAndDestroy on it), and a stream on a peer channel sends its RST frame
 * when it is destroyed before both ends have closed.
 */
function reset(stream: Duplex): void {
  if (stream instanceof net.Socket && !(stream instanceof tls.TLSSocket) && !stream.destroyed) {
    try {
      stream.resetAndDestroy();
    } catch {
      stream.destroy();
    }
  } else {
    stream.destroy();
  }
}

/** Bytes read from a stream: a socket's, or a peer channel's stream's (which counts them too). */
function bytesIn(stream: Duplex): number {
  const n = (stream as { bytesRead?: unknown }).bytesRead;
  return typeof n === 'number' ? n : 0;
}

/** Join `client` and `upstream` both ways until both have closed. */
export function splice(client: Duplex, upstream: Duplex, onDone?: (stats: SpliceStats) => void): void {
  let error: string | undefined;
  let open = 2;
  const onError = (other: Duplex) => (err: Error) => {
    error ??= errnoCode(err) ?? err.message;
    if (errnoCode(err) === 'ECONNRESET') reset(other);
    else other.destroy();
  };
  const onClose = (): void => {
    if (--open > 0) return;
    onDone?.({ up: bytesIn(client), down: bytesIn(upstream), error });
  };
  client.on('error', onError(upstream));
  upstream.on('error', onError(client));
  client.on('close', onClose);
  upstream.on('close', onClose);
  // A stream that closes without an error after the other has gone (e.g. destroyed by us)
  // needs nothing more; one that closes abruptly takes the other down too.
  client.on('close', () => {
    if (!upstream.destroyed && !upstream.writableEnded) upstream.destroy();
  });
  upstream.on('close', () => {
    if (!client.destroyed && !client.writableEnded) client.destroy();
  });
  client.pipe(upstream);
  upstream.pipe(client);
}
