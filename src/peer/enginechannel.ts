/**
 * A channel whose bytes the engine moves (native/chan.c, stream.c): issue 17's engine phase.
 * The TLS handshake and the `channel` request are Node's, as for the JavaScript channel
 * (channel.ts); then both daemons take keys from the handshake (the TLS exporter, the same
 * bytes on both ends), Node stops reading the connection, and the engine speaks sealed
 * records on a dup of its fd. The dialing side speaks first, the accepting side only once it
 * heard it, so no byte of the new format ever reaches Node's TLS. Node's socket stays paused
 * (never ended: an end would send a TLS close_notify into the new format) until the channel
 * closes.
 *
 * A stream opened here or by the peer is a socketpair: the engine pumps one end to the
 * channel, JavaScript gets the other as a net.Socket, so the code that serves calls and
 * attaches works as on any socket; a reset crossing the channel arrives as an event, and the
 * socket is destroyed with ECONNRESET. A `remote` segment's TCP connections leave JavaScript
 * altogether: the client's fd goes to the engine with the attach (openAttachFd), and on the
 * other side the tail's socket replaces the socketpair once it is connected (rebindTo).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { type ChanHandle, native } from '../native';
import type { Engine } from '../proxy/engine';
import type { Rebindable } from '../proxy/head';
import { DEAD_MS, KEEPALIVE_MS, type ChannelOptions, type PeerChannel } from './channel';
import { readTarget } from './target';

/** The label both ends give the TLS exporter (RFC 8446 7.5): the channel's keys. */
const EXPORTER_LABEL = 'EXPORTER-wormhole-channel-v1';

/** Sockets the engine's channels gave JavaScript (a refused attach resets them, server.ts). */
const engineSockets = new WeakSet<Duplex>();

/** Whether a stream is one end of an engine channel's stream. */
export function isEngineStream(s: Duplex): boolean {
  return engineSockets.has(s);
}

/** The error a reset stream ends with: what a TCP reset gives a socket. */
function resetError(why: string): Error {
  return Object.assign(new Error(why), { code: 'ECONNRESET' });
}

/**
 * A rebound stream's `ended` as the engine calls it: its counts are its own way round (sent
 * is the tail's, delivered the client's). Made here, not where it is used: a closure made in
 * accepted() would keep that scope for as long as the stream lives, idle or not.
 */
function swapped(
  ended: (up: number, down: number, reset: boolean) => void,
): (sent: number, delivered: number, reset: boolean) => void {
  return (sent, delivered, reset) => ended(delivered, sent, reset);
}

/** What a channel's end means, in words (the reason numbers are native/engine.h's). */
function whyText(why: number, detail: number, stream: number): { text: string; breach: boolean } {
  const w = native().chanConstants.why;
  switch (why) {
    case w.asked:
      return { text: 'closed', breach: false };
    case w.eof:
      return { text: 'the peer closed the channel', breach: false };
    case w.io:
      return { text: `connection failed (errno ${detail})`, breach: false };
    case w.drained:
      return { text: 'drained', breach: false };
    case w.nomem:
      return { text: 'out of memory', breach: false };
    case w.worn:
      return { text: 'its record counter is used up', breach: false };
    case w.auth:
      return { text: 'a record failed authentication', breach: true };
    case w.record:
      return { text: 'a record of a length out of bounds', breach: true };
    case w.frame:
      return { text: `a malformed frame (type ${detail}, stream ${stream})`, breach: true };
    case w.stream:
      return { text: `a frame for stream ${stream}, which it may not use`, breach: true };
    case w.window:
      return { text: `stream ${stream} sent more than its window, or a bad window`, breach: true };
    case w.order:
      return { text: `stream ${stream} sent after its FIN`, breach: true };
    default:
      return { text: `ended (${why})`, breach: true };
  }
}

/**
 * Take a TLS connection from Node for the engine: Node reads no more of it (at once, in this
 * tick), and the keys come from its handshake. The caller keeps the socket (paused) until
 * the channel closes. Undefined when this socket cannot be taken (not TCP under TLS).
 */
export function takeOver(tls: TLSSocket): { fd: number; keys: Buffer } | undefined {
  // (Node's own objects: the TLS wrap's handle over the TCP handle, whose fd we want)
  const wrap = (tls as unknown as { _handle?: { readStop?: () => number; _parent?: { fd?: number } } })
    ._handle;
  const fd = wrap?._parent?.fd;
  if (!wrap?.readStop || typeof fd !== 'number' || fd < 0) return undefined;
  wrap.readStop();
  tls.pause();
  return { fd, keys: tls.exportKeyingMaterial(native().chanConstants.keys, EXPORTER_LABEL, Buffer.alloc(0)) };
}

/** One channel carried by the engine; see the file's comment. */
export class EngineChannel implements PeerChannel {
  closed = false;
  draining = false;
  private readonly handle: ChanHandle;
  /** Streams whose other end JavaScript holds, by id (an RST event resets them). */
  private readonly held = new Map<number, net.Socket>();
  private readonly pongs: ((ms: number) => void)[] = [];
  /** Streams on a client's fd the engine was given, by id: who hears of their end. */
  private readonly carried = new Map<number, (up: number, down: number, reset: boolean) => void>();
  private readonly timer: NodeJS.Timeout;
  /** Why JavaScript closed it, once it asked. */
  private closing: string | undefined;
  /** The counters when it closed (the engine frees them after). */
  private last: Float64Array | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly tls: TLSSocket,
    taken: { fd: number; keys: Buffer },
    private readonly opts: ChannelOptions<net.Socket>,
  ) {
    const id = engine.channel({
      closed: (why, detail, stream) => this.ended(why, detail, stream),
      stream: (sid, fd, target) => this.accepted(sid, fd, target),
      reset: (sid) => this.held.get(sid)?.destroy(resetError('connection reset by the peer')),
      pong: (ms) => {
        for (const done of this.pongs.splice(0)) done(ms);
      },
      goAway: () => {
        this.draining = true;
        this.opts.onGoAway?.();
      },
      streamEnd: (sid, up, down, reset) => {
        const ended = this.carried.get(sid);
        this.carried.delete(sid);
        ended?.(up, down, reset);
      },
    });
    this.handle = native().chanCreate(engine.handle, id, taken.fd, taken.keys, opts.dialer, opts.peerKey);
    // Node's socket stays as it is (paused) until the channel ends; an error on it is not ours
    tls.on('error', () => undefined);
    this.timer = setInterval(() => this.keepalive(), KEEPALIVE_MS);
    this.timer.unref();
  }

  private stats(): Float64Array {
    return this.last ?? native().chanStats(this.handle);
  }

  get rttMs(): number | null {
    const ms = this.stats()[3];
    return ms > 0 ? ms : null;
  }

  get bytesUp(): number {
    return this.stats()[1];
  }

  get bytesDown(): number {
    return this.stats()[2];
  }

  get streamCount(): number {
    return this.closed ? 0 : this.stats()[0];
  }

  private keepalive(): void {
    if (this.closed) return;
    if (Date.now() - this.stats()[4] > DEAD_MS) {
      this.close(`nothing heard for ${DEAD_MS / 1000} s`);
      return;
    }
    if (this.opts.dialer) native().chanPing(this.engine.handle, this.handle);
  }

  /** The round trip of one keepalive, in ms (rejects if the channel closes first). */
  ping(): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the channel is closed'));
    native().chanPing(this.engine.handle, this.handle);
    return new Promise((resolve) => this.pongs.push(resolve));
  }

  /** A socket on a socketpair stream's JavaScript end. */
  private socket(id: number, fd: number): net.Socket {
    const s = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    engineSockets.add(s);
    // An RST may end a stream before its user listens for errors: never an uncaught one.
    s.on('error', () => undefined);
    this.held.set(id, s);
    s.once('close', () => this.held.delete(id));
    return s;
  }

  /** Open a stream (the dialing side only). */
  open(): Duplex {
    if (this.closed) throw resetError('the channel to the peer is closed');
    const [id, fd] = native().chanOpen(this.engine.handle, this.handle, -1, null, false);
    return this.socket(id, fd);
  }

  /**
   * An attach whose reply the engine drops: the request leaves with the OPEN and the caller's
   * bytes follow at once. A refusal arrives as a reset (the peer logs why).
   */
  openAttach(request: Buffer): Duplex {
    if (this.closed) throw resetError('the channel to the peer is closed');
    const [id, fd] = native().chanOpen(this.engine.handle, this.handle, -1, request, true);
    return this.socket(id, fd);
  }

  /**
   * The same, with the client's socket itself as the stream's end: the engine owns `fd` from
   * here and moves its bytes with no JavaScript; `ended` hears the bytes each way once the
   * stream is over (every one does end: reset if the channel closes first).
   */
  openAttachFd(request: Buffer, fd: number, ended: (up: number, down: number, reset: boolean) => void): void {
    if (this.closed) throw resetError('the channel to the peer is closed');
    const [id] = native().chanOpen(this.engine.handle, this.handle, fd, request, true);
    this.carried.set(id, ended);
  }

  /**
   * The same with the segment named in the OPEN (target.ts), when the peer's engine dials the
   * segment itself: no reply is read (a refusal is a reset), and no JavaScript at either
   * daemon for a stream the engines carry whole. Undefined: `id` may not be named so.
   */
  openTargetFd(
    target: Buffer,
    first: Buffer | null,
    fd: number,
    ended: (up: number, down: number, reset: boolean) => void,
  ): void {
    if (this.closed) throw resetError('the channel to the peer is closed');
    const [id] = native().chanOpen(this.engine.handle, this.handle, fd, first, false, target);
    this.carried.set(id, ended);
  }

  /** The same on a socketpair whose other end is returned (a stream JavaScript moves). */
  openTarget(target: Buffer): Duplex {
    if (this.closed) throw resetError('the channel to the peer is closed');
    const [id, fd] = native().chanOpen(this.engine.handle, this.handle, -1, null, false, target);
    return this.socket(id, fd);
  }

  /** Whether the peer's engine dials the segments an OPEN names (its reply to `channel` said). */
  get peerDials(): boolean {
    return this.opts.peerDials === true;
  }

  private accepted(id: number, fd: number, hasTarget = false): void {
    if (this.closed) {
      fs.closeSync(fd);
      return;
    }
    let target: Buffer | undefined;
    if (hasTarget) {
      try {
        target = readTarget(fd);
      } catch (err) {
        // (the engine wrote it whole before telling: a short one is a bug, not the peer's)
        this.opts.log.warn({ peer: this.opts.peer, err: String(err) }, "a peer stream's target unreadable");
        fs.closeSync(fd);
        return;
      }
    }
    const s: net.Socket & Rebindable = this.socket(id, fd);
    // once its tail is connected, the engine takes the tail's socket as the stream's end
    // (src/proxy/headbase.ts): no JavaScript per byte at this end either
    s.rebindTo = (tailFd, first, ended) => {
      if (this.closed) throw resetError('the channel to the peer is closed');
      native().chanRebind(this.engine.handle, this.handle, id, fd, tailFd, first);
      this.held.delete(id);
      this.carried.set(id, swapped(ended));
    };
    if (target && this.opts.onTarget) this.opts.onTarget(s, target);
    else if (target) s.destroy();
    else this.opts.onStream?.(s);
  }

  /** The accepting side: take no new streams (a successor took over), close after the last. */
  goAway(): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    native().chanGoAway(this.engine.handle, this.handle);
  }

  /** Close the channel (`why`: what its end is called): its streams are reset. */
  close(why = 'closed'): void {
    if (this.closed || this.closing !== undefined) return;
    this.closing = why;
    native().chanClose(this.engine.handle, this.handle);
  }

  private ended(why: number, detail: number, stream: number): void {
    if (this.closed) return;
    this.last = native().chanStats(this.handle);
    this.closed = true;
    clearInterval(this.timer);
    const said = whyText(why, detail, stream);
    const { breach } = said;
    const text = why === native().chanConstants.why.asked ? (this.closing ?? said.text) : said.text;
    if (breach)
      this.opts.log.warn(
        { peer: this.opts.peer, err: text },
        'peer channel closed: it broke the channel protocol',
      );
    for (const s of this.held.values()) s.destroy(resetError(`the channel to the peer closed: ${text}`));
    this.held.clear();
    // (a stream handed over while the channel was ending never started: it was reset)
    for (const ended of this.carried.values()) ended(0, 0, true);
    this.carried.clear();
    // (the engine closed its dup; Node's fd goes now, with no byte sent)
    this.tls.destroy();
    this.opts.onClose?.(text);
  }
}
