/**
 * Talking to peers: other daemons with the same key, reached on their TLS-PSK port.
 */
import type { Duplex } from 'node:stream';
import type { Method, Params, Result } from '../api/protocol';
import { type Connection, connect } from '../client';
import { parseDaemonAddress } from '../common/address';
import { WormholeError } from '../common/errors';
import type { Origin } from '../proxy/proxyproto';
import type { PeerLink } from '../segment/context';

/** Rewrites connection errors so that they name the peer and say what to check. */
function peerError(host: string, err: unknown): unknown {
  if (!(err instanceof WormholeError)) return err;
  if (err.code === 'DAEMON_UNREACHABLE' || err.code === 'TIMEOUT') {
    const why = /\((E[A-Z_]+)\)/.exec(err.message)?.[1] ?? err.code;
    return new WormholeError(
      'PEER_UNREACHABLE',
      `peer ${host} is not reachable (${why}): is wormholed running there, on that port?`,
    );
  }
  if (err.code === 'AUTH_FAILED') {
    return new WormholeError(
      'PEER_REFUSED',
      `peer ${host} refused us: its key differs from ours (both need the same key.secret)`,
    );
  }
  return err;
}

/**
 * How long a peer may take to answer, so that every request to this daemon is answered in a
 * bounded time even when a peer hangs. A peer-create may pull images there: it gets longer.
 */
const PEER_LIMIT_MS: Partial<Record<Method, number>> = { ping: 10_000, 'peer-create': 300_000 };
const PEER_DEFAULT_LIMIT_MS = 60_000;

/** The daemon's side of peer traffic. */
export class Peers implements PeerLink {
  constructor(private key: Buffer) {}

  /**
   * The key for connections to peers from now on (SIGHUP: a rotated key file). Open ones
   * (an attached stream carrying a remote segment's connection) keep the key they were
   * made with; every new request or attach uses this one.
   */
  setKey(key: Buffer): void {
    this.key = key;
  }

  private async open(host: string): Promise<Connection> {
    try {
      // `:PORT` (empty host) is 127.0.0.1:PORT, as everywhere in the grammar
      return await connect(parseDaemonAddress(host), this.key);
    } catch (err) {
      throw peerError(host, err);
    }
  }

  /** One request to a peer. */
  async call<M extends Method>(host: string, method: M, params: Params<M>): Promise<Result<M>> {
    const conn = await this.open(host);
    try {
      return await conn.call(method, params, PEER_LIMIT_MS[method] ?? PEER_DEFAULT_LIMIT_MS);
    } catch (err) {
      throw peerError(host, err);
    } finally {
      conn.close();
    }
  }

  /** Round trip to a peer, in milliseconds. */
  async ping(host: string): Promise<number> {
    const started = process.hrtime.bigint();
    await this.call(host, 'ping', {});
    return Number(process.hrtime.bigint() - started) / 1e6;
  }

  createChild(host: string, params: Params<'peer-create'>): Promise<Result<'peer-create'>> {
    return this.call(host, 'peer-create', params);
  }

  async deleteChild(host: string, id: string): Promise<void> {
    await this.call(host, 'delete', { id });
  }

  async attach(host: string, id: string, origin?: Origin): Promise<Duplex> {
    const conn = await this.open(host);
    try {
      return await conn.attach(id, origin);
    } catch (err) {
      conn.close();
      throw peerError(host, err);
    }
  }
}
