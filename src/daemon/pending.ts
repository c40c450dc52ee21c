/**
 * API connections that have not authenticated yet: TCP sockets in their TLS handshake, which
 * anyone who reaches the port can open. They get a budget of their own, apart from the
 * authenticated connections' (--max-api-connections), so that a flood of them never locks a
 * CLI or a peer out:
 * - per source address, a bound: the rest of a flood from one address is refused at once;
 * - overall, a bound: when it is full, a newcomer takes the place of the oldest socket of the
 *   address that holds the most, unless its own address holds as many (a flood from many
 *   addresses crowds out its own sockets first, not a client's one handshake);
 * - a short wait for the first bytes: a real client sends its hello at once; a socket that
 *   sends nothing is closed well before the handshake's own timeout.
 */
import type * as net from 'node:net';

/** How many unauthenticated connections may be open, and for how long one may be silent. */
export interface PendingLimits {
  /** Open at once from one source address. */
  perSource: number;
  /** Open at once from everywhere. */
  total: number;
  /** A socket that has sent no byte after this long is closed. */
  firstBytesMs: number;
}

/**
 * Unless told otherwise. Per address, room for a peer's burst (each proxied connection over
 * `remote` is a handshake of its own, a few milliseconds long); overall, a bound on memory;
 * 2 s for a hello that a client sends as soon as it is connected.
 */
export const PENDING_LIMITS: PendingLimits = { perSource: 128, total: 512, firstBytesMs: 2000 };

/** Why a socket was not let in (for a rate-limited log line). */
export type Refusal = (socket: net.Socket, why: string) => void;

/** The same TCP connection seen as the raw socket or as the TLS socket over it. */
function keyOf(s: net.Socket): string {
  return `${s.remoteAddress} ${s.remotePort} ${s.localAddress} ${s.localPort}`;
}

/** The budget of connections still in their handshake. */
export class PendingBudget {
  /** Each source's sockets, oldest first. */
  private readonly bySource = new Map<string, net.Socket[]>();
  /** Each socket and its source, by keyOf. */
  private readonly byKey = new Map<string, { socket: net.Socket; from: string }>();

  constructor(
    private readonly limits: PendingLimits,
    private readonly refuse: Refusal,
  ) {}

  /** Open now. */
  get size(): number {
    return this.byKey.size;
  }

  /** A TCP socket was accepted: count it (true), or close it at once (false). */
  admit(socket: net.Socket): boolean {
    const from = socket.remoteAddress ?? '';
    const mine = this.bySource.get(from) ?? [];
    if (mine.length >= this.limits.perSource) {
      this.refuse(socket, `${mine.length} from ${from} still in their TLS handshake`);
      socket.destroy();
      return false;
    }
    if (this.byKey.size >= this.limits.total && !this.evictFor(mine.length)) {
      this.refuse(socket, `${this.byKey.size} connections still in their TLS handshake`);
      socket.destroy();
      return false;
    }
    const key = keyOf(socket);
    mine.push(socket);
    this.bySource.set(from, mine);
    this.byKey.set(key, { socket, from });
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, this.limits.firstBytesMs);
    socket.once('close', () => {
      clearTimeout(silent);
      this.forget(key);
    });
    return true;
  }

  /** The connection over this socket authenticated: it leaves this budget. */
  done(socket: net.Socket): void {
    this.forget(keyOf(socket));
  }

  /**
   * Make room for a newcomer whose address holds `held`: close the oldest socket of the
   * address that holds the most, if that is more than `held`.
   */
  private evictFor(held: number): boolean {
    let most: net.Socket[] | undefined;
    for (const list of this.bySource.values()) if (!most || list.length > most.length) most = list;
    if (!most || most.length <= held) return false;
    const oldest = most[0];
    this.forget(keyOf(oldest));
    oldest.destroy();
    return true;
  }

  private forget(key: string): void {
    const entry = this.byKey.get(key);
    if (!entry) return;
    this.byKey.delete(key);
    const { socket, from } = entry;
    const list = (this.bySource.get(from) ?? []).filter((s) => s !== socket);
    if (list.length > 0) this.bySource.set(from, list);
    else this.bySource.delete(from);
  }
}
