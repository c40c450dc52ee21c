/**
 * Talking to peers (other daemons with the same key) over one channel each
 * (src/peer/channel.ts): opened on first need over an authenticated TLS connection, kept
 * open, watched by keepalives, opened again with backoff when it drops. Every call (ping,
 * peer-create, delete, peer-tunnel) and every attach (a remote segment's connection, a UDP
 * session) is a stream on it: no handshake per connection.
 *
 * Segments ask for a stream (PeerLink.attach) and know nothing of frames. A channel is made
 * by the side that needs it: a daemon whose segments reach a peer dials it; the peer serves
 * the streams on the channel it accepted (src/daemon/server.ts).
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { encodeFrame, readFrame } from '../api/frame';
import {
  MAX_FRAME,
  type Method,
  type Params,
  type PeerInfo,
  PROTOCOL_VERSION,
  type Result,
  responseSchema,
} from '../api/protocol';
import { Connection, connect } from '../client';
import { parseDaemonAddress } from '../common/address';
import { withDeadline } from '../common/deadline';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { Engine } from '../proxy/engine';
import { Channel, type ChannelOptions, type PeerChannel } from './channel';
import { EngineChannel, takeOver } from './enginechannel';
import { MAX_TARGET, encodeTarget } from './target';

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
  if (err.code === 'VERSION_MISMATCH')
    return new WormholeError('VERSION_MISMATCH', `peer ${host} refused us: ${err.message}`);
  return err;
}

/** An attach request for the peer's segment `id`, as the first bytes of a stream. */
function attachRequest(id: string, origin: Params<'attach'>['origin'] | undefined): Buffer {
  const params: Params<'attach'> = origin ? { id, origin } : { id };
  return encodeFrame({ v: PROTOCOL_VERSION, id: 1, method: 'attach', params });
}

/**
 * How long a peer may take to answer, so that every request to this daemon is answered in a
 * bounded time even when a peer hangs. A peer-create may pull images there: it gets longer.
 */
const PEER_LIMIT_MS: Partial<Record<Method, number>> = { ping: 10_000, 'peer-create': 300_000 };
const PEER_DEFAULT_LIMIT_MS = 60_000;
/** A channel that dropped is opened again after this, doubled each failure up to the max. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

/** One peer: its channel (when up), how it is doing, and its counters. */
interface Line {
  host: string;
  state: PeerInfo['state'];
  since: number;
  channel?: PeerChannel;
  dialing?: Promise<PeerChannel>;
  /** Whether a channel was ever up: only such a peer is dialed again on its own. */
  wasUp: boolean;
  retry?: NodeJS.Timeout;
  backoffMs: number;
  lastError?: string;
  /** Bytes of the channels that closed (the open one's are added when asked). */
  bytesUp: number;
  bytesDown: number;
}

/** The daemon's side of peer traffic. */
export class Peers {
  private readonly lines = new Map<string, Line>();
  private closed = false;
  /** The engine, when it runs: channels are offered its format (enginechannel.ts). */
  private engine: Engine | null = null;
  /** The address warmUp pings (this daemon's own): its line is dropped after. */
  private warming: string | undefined;

  constructor(
    private key: Buffer,
    private readonly log: Logger,
    /**
     * Told of each client handed to a channel's engine: after thousands, once the daemon is
     * idle, it gives back the memory the burst left (src/daemon/memory.ts; issue 17's idle
     * stream: V8's young generation grown by 10,000 handoffs was half of what each cost).
     */
    private readonly handedOff?: () => void,
  ) {}

  /**
   * The key for channels opened from now on (SIGHUP: a rotated key file). A channel already
   * open keeps the key it was made with.
   */
  setKey(key: Buffer): void {
    this.key = key;
  }

  /** Offer the engine's format on the channels dialed from now on (null: the JavaScript one). */
  useEngine(engine: Engine | null): void {
    this.engine = engine;
  }

  /** The channel to `host`: the open one, the one being opened, or a new one. */
  private channel(host: string): Promise<PeerChannel> {
    if (this.closed) return Promise.reject(new WormholeError('ABORTED', 'the daemon is stopping'));
    let line = this.lines.get(host);
    if (!line) {
      line = { host, state: 'down', since: Date.now(), wasUp: false, backoffMs: 0, bytesUp: 0, bytesDown: 0 };
      this.lines.set(host, line);
    }
    // (one the peer told to go away takes no new streams, though its event may not be here yet)
    if (line.channel && !line.channel.draining) return Promise.resolve(line.channel);
    if (line.dialing) return line.dialing;
    const l = line;
    clearTimeout(l.retry);
    l.retry = undefined;
    const dialing = this.dial(l).finally(() => {
      l.dialing = undefined;
    });
    l.dialing = dialing;
    return dialing;
  }

  /** A new channel to `host` (dialing side), in the engine's format when both can. */
  private async open(
    host: string,
    opts: Omit<ChannelOptions<Duplex>, 'dialer' | 'peer' | 'log'>,
  ): Promise<PeerChannel> {
    // `:PORT` (empty host) is 127.0.0.1:PORT, as everywhere in the grammar
    const conn = await connect(parseDaemonAddress(host), this.key);
    let socket: Duplex;
    let engine: boolean;
    let dial: boolean;
    try {
      ({ stream: socket, engine, dial } = await conn.channelWith(this.engine !== null));
    } catch (err) {
      conn.close();
      throw err;
    }
    if (this.closed) {
      socket.destroy();
      throw new WormholeError('ABORTED', 'the daemon is stopping');
    }
    const all: ChannelOptions<Duplex> = { ...opts, dialer: true, peer: host, log: this.log, peerDials: dial };
    const taken = engine && this.engine ? takeOver(socket as TLSSocket) : undefined;
    if (engine && !taken) {
      socket.destroy();
      throw new WormholeError(
        'PEER_UNREACHABLE',
        `peer ${host}: the connection cannot be handed to the engine`,
      );
    }
    return taken && this.engine
      ? new EngineChannel(this.engine, socket as TLSSocket, taken, all)
      : new Channel(socket, all);
  }

  /**
   * Once at the start: a `ping self` request to this daemon's own API (`self`), which opens a
   * channel to itself, pings on it, and closes it. The first call to a real peer then takes
   * code paths already run: Node's TLS and OpenSSL's first use, the request's parsing and the
   * ping handler, this file's channel(), dial() and ping() (each compiled on its first call:
   * 0.5 ms of the first ping when only open() was warmed), the `channel` request on both
   * sides, the exporter, the engine's channel (issue 17: 19.6 ms cold, target 5). The line to
   * `self` is forgotten after: `peers` never lists it.
   */
  async warmUp(self: string): Promise<void> {
    this.warming = self;
    const conn = await connect(parseDaemonAddress(self), this.key);
    try {
      await conn.call('ping', { host: self }, PEER_LIMIT_MS.ping);
    } finally {
      conn.close();
      this.forget(self);
      this.warming = undefined;
    }
  }

  /** Drop the line to `host` and close its channel, dialing it no more (warmUp's `self`). */
  private forget(host: string): void {
    const line = this.lines.get(host);
    if (!line) return;
    this.lines.delete(host);
    clearTimeout(line.retry);
    const channel = line.channel;
    // (lost() then finds the line without it: no warning, no retry)
    line.channel = undefined;
    line.wasUp = false;
    channel?.close();
  }

  private async dial(line: Line): Promise<PeerChannel> {
    line.state = 'connecting';
    try {
      const channel: PeerChannel = await this.open(line.host, {
        onClose: (why) => this.lost(line, channel, why),
        // (its daemon was taken over: new streams go on a new channel, to its successor)
        onGoAway: () => {
          if (line.channel === channel) line.channel = undefined;
        },
      });
      if (this.lines.get(line.host) !== line) {
        // (forgotten while it opened: warmUp's line to `self` whose ping timed out)
        channel.close();
        throw new WormholeError('ABORTED', `the channel to ${line.host} is no longer wanted`);
      }
      line.channel = channel;
      this.moved(line, 'up');
      line.wasUp = true;
      line.backoffMs = 0;
      line.lastError = undefined;
      // (the warm-up's channel to this daemon itself is no news)
      this.log[line.host === this.warming ? 'debug' : 'info'](
        { peer: line.host, mover: channel instanceof EngineChannel ? 'engine' : 'javascript' },
        'peer channel up',
      );
      return channel;
    } catch (err) {
      const e = peerError(line.host, err);
      line.lastError = errorMessage(e);
      this.moved(line, 'down');
      this.retryLater(line);
      throw e;
    }
  }

  private moved(line: Line, state: PeerInfo['state']): void {
    if (line.state !== state) line.since = Date.now();
    line.state = state;
  }

  /** A channel ended: keep its counters, and open it again soon. */
  private lost(line: Line, channel: PeerChannel, why: string): void {
    line.bytesUp += channel.bytesUp;
    line.bytesDown += channel.bytesDown;
    if (line.channel !== channel) return;
    line.channel = undefined;
    if (this.closed) return;
    line.lastError = why;
    this.moved(line, 'down');
    this.log.warn({ peer: line.host, why }, 'peer channel lost: opening it again');
    this.retryLater(line);
  }

  /** Dial again after the backoff, if the peer was ever up (a typo in `ping HOST` is not). */
  private retryLater(line: Line): void {
    if (this.closed || !line.wasUp || line.retry) return;
    line.backoffMs = Math.min(Math.max(line.backoffMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
    line.retry = setTimeout(() => {
      line.retry = undefined;
      this.channel(line.host).catch(() => undefined);
    }, line.backoffMs);
    line.retry.unref();
  }

  /**
   * Use a stream to `host`, as a connection speaking the API's requests. A channel that died
   * under it before we knew (its peer restarted) gets one more try, on a new channel.
   */
  private async onStream<T>(host: string, use: (conn: Connection) => Promise<T>): Promise<T> {
    for (let tries = 0; ; tries++) {
      const channel = await this.channel(host);
      try {
        return await use(new Connection(channel.open(), `peer ${host}`, MAX_FRAME));
      } catch (err) {
        const lost = err instanceof WormholeError && err.code === 'CONNECTION_LOST';
        if (tries === 0 && lost && channel.closed) continue;
        throw peerError(host, err);
      }
    }
  }

  /** One request to a peer. */
  call<M extends Method>(host: string, method: M, params: Params<M>): Promise<Result<M>> {
    return this.onStream(host, async (conn) => {
      try {
        return await conn.call(method, params, PEER_LIMIT_MS[method] ?? PEER_DEFAULT_LIMIT_MS);
      } finally {
        conn.close();
      }
    });
  }

  /** Round trip to a peer, in milliseconds: a keepalive frame on its channel. */
  async ping(host: string): Promise<number> {
    const channel = await this.channel(host);
    const limit = PEER_LIMIT_MS.ping!;
    return withDeadline(
      channel.ping(),
      limit,
      () => new WormholeError('NO_REPLY', `peer ${host} did not answer a ping within ${limit / 1000} s`),
    ).catch((err: unknown) => {
      throw err instanceof WormholeError
        ? err
        : new WormholeError('PEER_UNREACHABLE', `peer ${host}: ${errorMessage(err)}`);
    });
  }

  createChild(host: string, params: Params<'peer-create'>): Promise<Result<'peer-create'>> {
    return this.call(host, 'peer-create', params);
  }

  async deleteChild(host: string, id: string): Promise<void> {
    await this.call(host, 'delete', { id });
  }

  /**
   * A byte stream to the tail of the peer's segment `id` (see PeerLink in src/segment), given
   * at once: the attach request leaves with the stream's OPEN, and the caller's bytes may
   * follow it without waiting for the reply (the peer reads them once its tail is connected),
   * so a connection costs no round trip before its first byte. The reply is taken off the
   * stream's first bytes; a refusal (logged here) destroys the stream, which resets the client.
   */
  async attach(host: string, id: string, origin?: Params<'attach'>['origin']): Promise<Duplex> {
    const channel = await this.channel(host);
    const request = attachRequest(id, origin);
    // (the engine drops the reply itself; a refusal resets the stream, and the peer logs why)
    if (channel instanceof EngineChannel) return channel.openAttach(request);
    const stream = (channel as Channel).open();
    let got = Buffer.alloc(0);
    const refused = (err: WormholeError): Buffer => {
      this.log.warn({ peer: host, segment: id, err: err.message }, 'connection dropped: the peer refused it');
      stream.destroy(err);
      return Buffer.alloc(0);
    };
    stream.expectPreface((payload) => {
      got = got.length === 0 ? payload : Buffer.concat([got, payload]);
      let frame: ReturnType<typeof readFrame>;
      try {
        frame = readFrame(got);
      } catch (err) {
        return refused(err as WormholeError);
      }
      if (!frame) return undefined;
      const res = responseSchema.safeParse(frame.value);
      if (!res.success)
        return refused(new WormholeError('BAD_RESPONSE', `peer ${host} sent a malformed reply`));
      if (!res.data.ok) return refused(new WormholeError(res.data.error.code, res.data.error.message));
      return frame.rest;
    });
    stream.write(request);
    return stream;
  }

  /**
   * An attach carried by the engine from end to end (see PeerLink.attachFd in src/segment):
   * the client's fd is given to the engine's channel with the request and `first` before its
   * bytes. False, with nothing taken, when the channel to `host` is JavaScript's.
   */
  async attachFd(
    host: string,
    id: string,
    origin: Params<'attach'>['origin'] | undefined,
    first: Buffer | undefined,
    take: () => { fd: number; ended: (up: number, down: number, reset: boolean) => void } | undefined,
  ): Promise<boolean> {
    const channel = await this.channel(host);
    if (!(channel instanceof EngineChannel) || channel.closed) return false;
    const taken = take();
    if (!taken) return false;
    this.handedOff?.();
    // the peer's engine dials the tail itself when it can (no reply to wait for or drop)
    const target = encodeTarget(id, origin);
    if (channel.peerDials && target[0] === Buffer.byteLength(id) && target.length <= MAX_TARGET) {
      channel.openTargetFd(target, first ?? null, taken.fd, taken.ended);
      return true;
    }
    const request = attachRequest(id, origin);
    channel.openAttachFd(first ? Buffer.concat([request, first]) : request, taken.fd, taken.ended);
    return true;
  }

  /** Every peer this daemon has a channel to, or tried to have one to. */
  list(): PeerInfo[] {
    return [...this.lines.values()].map((l) => ({
      host: l.host,
      state: l.state,
      rttMs: l.channel?.rttMs ?? null,
      streams: l.channel?.streamCount ?? 0,
      bytesUp: l.bytesUp + (l.channel?.bytesUp ?? 0),
      bytesDown: l.bytesDown + (l.channel?.bytesDown ?? 0),
      since: l.since,
      ...(l.state !== 'up' && l.lastError ? { lastError: l.lastError } : {}),
    }));
  }

  /** Close every channel and dial none again (the daemon stops). */
  close(): void {
    this.closed = true;
    for (const line of this.lines.values()) {
      clearTimeout(line.retry);
      line.channel?.close();
    }
  }
}
