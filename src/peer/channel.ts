/**
 * One channel between two daemons: a TLS connection (opened and authenticated as any API
 * connection, then turned over by a `channel` request) carrying many streams in the frames
 * of src/peer/frame.ts. The side that dialed opens streams; the side that accepted serves
 * each one as it serves an API connection (a request, or an attach that turns it into a
 * proxied connection's bytes).
 *
 * A stream is a Node Duplex with TCP's meaning: end() sends FIN and the other way keeps
 * flowing; a stream destroyed before both FINs sends RST, and an RST received destroys the
 * stream with ECONNRESET (which src/proxy/tcp.ts turns into a reset of the socket it is
 * joined to). Each direction has a window: a sender sends no more than the receiver has
 * granted, and the receiver grants more only as its reader takes the bytes, so a reader that
 * stalls holds up its own stream and no other.
 *
 * Anything the other side does that the format or the rules forbid (a malformed frame, a
 * stream it may not open, an unknown stream, more than its window) closes the channel with
 * one log line; its streams are reset, and the daemon goes on.
 */
import { Duplex } from 'node:stream';
import type { Logger } from '../common/log';
import {
  type Frame,
  FrameError,
  FrameParser,
  FrameType,
  INITIAL_WINDOW,
  MAX_PAYLOAD,
  encode,
  dataHeader,
  encodeWindow,
} from './frame';

/** A keepalive goes out this often (the dialing side); its round trip is the RTT shown. */
export const KEEPALIVE_MS = 2000;
/**
 * A channel that heard nothing for this long is dead (the peer, or the path, is gone);
 * checked at each keepalive, so a dead peer is noticed within DEAD_MS + KEEPALIVE_MS: 10 s.
 */
export const DEAD_MS = 8000;
/** Grant more window once the reader has taken this much (at most the window: no stall). */
const CREDIT_AT = INITIAL_WINDOW / 4;
/** Streams one channel carries at most; past it a new one is reset at once. */
const MAX_STREAMS = 65_536;
/** A window may not grow past this (a peer granting more is broken). */
const MAX_WINDOW = 2 ** 31;

/** The error a reset stream ends with: what a TCP reset gives a socket. */
function resetError(why: string): Error {
  return Object.assign(new Error(why), { code: 'ECONNRESET' });
}

/** A breach of the channel's rules by the other side. */
class Breach extends Error {}

/** How a channel is made. */
export interface ChannelOptions<S extends Duplex = PeerStream> {
  /** The dialing side opens streams and sends keepalives; the accepting side serves. */
  dialer: boolean;
  /** Who is at the other end, for the log. */
  peer: string;
  log: Logger;
  /** The accepting side: each stream the dialer opens. */
  onStream?: (stream: S) => void;
  /** Once, when the channel ends (why, when it was not a plain close). */
  onClose?: (why: string) => void;
  /** The dialing side: the other side takes no new streams (GOAWAY). */
  onGoAway?: () => void;
  /**
   * The accepting side, engine channels: a stream whose OPEN named a segment the engine did
   * not dial itself (target.ts's bytes), served as that segment's attach.
   */
  onTarget?: (stream: S, target: Buffer) => void;
  /** The accepting side: the peer's key, when it may attach (its engine dials for it). */
  peerKey?: { name: string; all: boolean } | null;
  /** The dialing side: the peer's engine dials the segments streams name (its reply said so). */
  peerDials?: boolean;
}

/**
 * What the daemon asks of a channel, whoever moves its bytes: this file's Channel (in
 * JavaScript) or the engine's (enginechannel.ts).
 */
export interface PeerChannel {
  readonly closed: boolean;
  readonly draining: boolean;
  /** The last keepalive's round trip (null: none answered yet). */
  readonly rttMs: number | null;
  /** Bytes written to and read from the connection. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Streams open now. */
  readonly streamCount: number;
  /** The round trip of one keepalive, in ms. */
  ping(): Promise<number>;
  /** Open a stream (the dialing side only). */
  open(): Duplex;
  /** The accepting side: no new streams, close once the open ones end. */
  goAway(): void;
  close(): void;
}

/** One channel; see the file's comment. */
export class Channel implements PeerChannel {
  readonly streams = new Map<number, PeerStream>();
  /** Bytes written to and read from the TLS connection (frames, headers included). */
  bytesUp = 0;
  bytesDown = 0;
  /** The last keepalive's round trip (null: none answered yet). */
  rttMs: number | null = null;
  closed = false;
  /** GOAWAY sent or received: no new streams; closed once the last one ends. */
  draining = false;
  /** The dialer: the next id it gives; the acceptor: the largest id opened so far. */
  private lastId = -1;
  private lastHeard = Date.now();
  private readonly parser: FrameParser;
  private readonly timer: NodeJS.Timeout;
  /** Keepalives not answered yet, by payload. */
  private readonly pings = new Map<string, { resolve: (ms: number) => void; reject: (err: Error) => void }>();
  private corked = false;

  constructor(
    private readonly socket: Duplex,
    private readonly opts: ChannelOptions,
  ) {
    this.parser = new FrameParser((f) => this.onFrame(f));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`connection failed: ${err.message}`));
    socket.on('close', () => this.close('connection closed'));
    // (the dialing side's socket is half-open, as every peer connection is: its end is the end)
    socket.on('end', () => this.close('the peer closed the channel'));
    // (a request reader that turned the socket over left it paused)
    socket.resume();
    this.timer = setInterval(() => this.keepalive(), KEEPALIVE_MS);
    this.timer.unref();
  }

  private keepalive(): void {
    if (Date.now() - this.lastHeard > DEAD_MS) {
      this.close(`nothing heard for ${DEAD_MS / 1000} s`);
      return;
    }
    if (this.opts.dialer) this.ping().catch(() => undefined);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** The round trip of one PING frame, in ms (rejects if the channel closes first). */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('the channel is closed'));
      const payload = Buffer.allocUnsafe(8);
      payload.writeBigUInt64BE(process.hrtime.bigint(), 0);
      this.pings.set(payload.toString('hex'), { resolve, reject });
      this.send(encode(FrameType.PING, 0, payload));
    });
  }

  /** Open a stream (the dialing side only). */
  open(): PeerStream {
    if (this.closed) throw resetError('the channel to the peer is closed');
    this.lastId = this.lastId < 0 ? 1 : this.lastId + 2;
    const stream = new PeerStream(this.lastId, this);
    this.streams.set(stream.id, stream);
    this.send(encode(FrameType.OPEN, stream.id));
    return stream;
  }

  /** Write one frame; frames made in one tick leave in one write. */
  send(frame: Buffer, payload?: Buffer): void {
    if (this.closed) return;
    this.bytesUp += frame.length + (payload?.length ?? 0);
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame);
    // (a DATA frame's bytes go as they are, after its header: no copy)
    if (payload) this.socket.write(payload);
  }

  /** A stream is gone on this side. */
  forget(id: number): void {
    this.streams.delete(id);
    if (this.draining && this.streams.size === 0) this.close('drained');
  }

  /**
   * The accepting side: take no new streams (this daemon was taken over; the peer opens a
   * new channel, to its successor), and close once the open ones have ended.
   */
  goAway(): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    this.send(encode(FrameType.GOAWAY, 0));
    if (this.streams.size === 0) this.close('drained');
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.bytesDown += chunk.length;
    this.lastHeard = Date.now();
    try {
      this.parser.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError || err instanceof Breach)) throw err;
      this.opts.log.warn(
        { peer: this.opts.peer, err: err.message },
        'peer channel closed: it broke the channel protocol',
      );
      this.close(err.message);
    }
  }

  private onFrame(f: Frame): void {
    if (this.closed) return;
    switch (f.type) {
      case FrameType.PING:
        this.send(encode(FrameType.PONG, 0, f.payload));
        return;
      case FrameType.PONG: {
        // (only an answer to a ping of ours: its payload is when we sent it)
        const waiter = this.pings.get(f.payload.toString('hex'));
        if (!waiter) return;
        this.pings.delete(f.payload.toString('hex'));
        const ms = Number(process.hrtime.bigint() - f.payload.readBigUInt64BE(0)) / 1e6;
        this.rttMs = ms;
        waiter.resolve(ms);
        return;
      }
      case FrameType.OPEN:
        this.accept(f.stream);
        return;
      case FrameType.GOAWAY:
        if (!this.opts.dialer) throw new Breach('the dialing side sent GOAWAY');
        this.draining = true;
        this.opts.onGoAway?.();
        if (this.streams.size === 0) this.close('drained');
        return;
    }
    const stream = this.streams.get(f.stream);
    if (!stream) {
      // A stream closed here may still get what the other side sent before it knew: an id
      // already opened is such a one; any other is a breach.
      if (f.stream % 2 === 1 && f.stream <= this.lastId) return;
      throw new Breach(`frame for stream ${f.stream}, which was never opened`);
    }
    if (f.type === FrameType.DATA) stream.onData(f.payload);
    else if (f.type === FrameType.FIN) stream.onFin();
    else if (f.type === FrameType.RST) stream.onReset();
    else stream.onWindow(f.payload.readUInt32BE(0));
  }

  private accept(id: number): void {
    if (this.opts.dialer) throw new Breach('the accepting side opened a stream');
    if (id % 2 !== 1 || id <= this.lastId) throw new Breach(`stream ${id} opened out of order`);
    this.lastId = id;
    if (this.streams.size >= MAX_STREAMS) {
      this.send(encode(FrameType.RST, id));
      return;
    }
    const stream = new PeerStream(id, this);
    this.streams.set(id, stream);
    this.opts.onStream?.(stream);
  }

  /** End the channel: every stream is reset, the connection closed. */
  close(why = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const stream of [...this.streams.values()])
      stream.destroy(resetError('the channel to the peer closed'));
    this.streams.clear();
    const err = new Error(`the channel to the peer closed (${why})`);
    for (const { reject } of this.pings.values()) reject(err);
    this.pings.clear();
    this.socket.destroy();
    this.opts.onClose?.(why);
  }
}

/** One stream on a channel; see the file's comment. Its state is kept small (10,000 idle). */
export class PeerStream extends Duplex {
  /** Bytes received (src/proxy/tcp.ts reads it as it reads a socket's). */
  bytesRead = 0;
  /** What this side may still send. */
  private sendWindow = INITIAL_WINDOW;
  /** What this side has granted in all (the peer may send INITIAL_WINDOW + granted). */
  private granted = 0;
  private finIn = false;
  private finOut = false;
  private resetIn = false;
  private pending: Buffer | undefined;
  private pendingDone: ((err?: Error | null) => void) | undefined;
  /** Set by expectPreface: takes the DATA first received, until it returns the bytes past it. */
  private preface: ((payload: Buffer) => Buffer | undefined) | undefined;

  constructor(
    readonly id: number,
    private readonly channel: Channel,
  ) {
    super({ allowHalfOpen: true });
    // An RST may end a stream before its user listens for errors: never an uncaught one.
    this.on('error', () => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.pending = chunk;
    this.pendingDone = done;
    this.flush();
  }

  /** Send what the window allows of the pending chunk; the writer goes on once all is sent. */
  private flush(): void {
    while (this.pending && this.sendWindow > 0) {
      const n = Math.min(this.pending.length, this.sendWindow, MAX_PAYLOAD);
      this.channel.send(dataHeader(this.id, n), this.pending.subarray(0, n));
      this.sendWindow -= n;
      this.pending = n === this.pending.length ? undefined : this.pending.subarray(n);
    }
    if (!this.pending && this.pendingDone) {
      const done = this.pendingDone;
      this.pendingDone = undefined;
      done();
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    this.finOut = true;
    this.channel.send(encode(FrameType.FIN, this.id));
    done();
  }

  /** The reader wants more: grant what it has taken, once that is worth a frame. */
  override _read(): void {
    const taken = this.bytesRead - this.readableLength - this.granted;
    if (taken >= CREDIT_AT) {
      this.granted += taken;
      this.channel.send(encodeWindow(this.id, taken));
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.channel.forget(this.id);
    if (!this.resetIn && !(this.finIn && this.finOut)) this.channel.send(encode(FrameType.RST, this.id));
    const waiting = this.pendingDone;
    this.pending = this.pendingDone = undefined;
    waiting?.(err ?? resetError('stream closed'));
    done(err);
  }

  /**
   * The bytes first received are not the reader's: `take` gets them, chunk by chunk, until it
   * returns what is past its part (the reply to an attach sent at once with the stream's
   * first bytes; it destroys the stream itself on a refusal). A FIN before then is a reset.
   */
  expectPreface(take: (payload: Buffer) => Buffer | undefined): void {
    this.preface = take;
  }

  /** A DATA frame for this stream. */
  onData(payload: Buffer): void {
    if (this.finIn) throw new Breach(`data after FIN on stream ${this.id}`);
    if (this.bytesRead + payload.length > INITIAL_WINDOW + this.granted)
      throw new Breach(`stream ${this.id} sent more than its window`);
    this.bytesRead += payload.length;
    if (this.preface) {
      const rest = this.preface(payload);
      if (rest === undefined) return;
      this.preface = undefined;
      if (this.destroyed) return;
      if (rest.length === 0) {
        // (taken bytes are granted again as the reader's are: _read counts them as read)
        this._read();
        return;
      }
      payload = rest;
    }
    this.push(payload);
  }

  /** A FIN: the other side writes no more. */
  onFin(): void {
    if (this.finIn) throw new Breach(`a second FIN on stream ${this.id}`);
    this.finIn = true;
    if (this.preface) {
      this.preface = undefined;
      this.destroy(resetError('the peer closed the stream before answering'));
      return;
    }
    this.push(null);
  }

  /** An RST: the stream ends as a reset socket does. */
  onReset(): void {
    this.resetIn = true;
    this.destroy(resetError('connection reset by the peer'));
  }

  /** A WINDOW: the other side may take this much more. */
  onWindow(bytes: number): void {
    if (bytes === 0 || this.sendWindow + bytes > MAX_WINDOW)
      throw new Breach(`a window of ${bytes} on stream ${this.id}`);
    this.sendWindow += bytes;
    this.flush();
  }
}
