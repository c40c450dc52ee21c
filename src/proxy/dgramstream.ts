/**
 * Datagrams over a byte stream (a UDP session carried by a peer's encrypted attach stream):
 * each datagram is its length in 2 bytes, big endian, then its bytes. A stream keeps order
 * and loses nothing, so the framing needs no more; what UDP may do (drop) is done where the
 * stream cannot keep up, never by cutting a datagram.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { type DatagramUpstream, SESSION_QUEUE_BYTES } from './udp';

/** The largest datagram a frame carries (the length field's limit; UDP's own is 65,507). */
export const MAX_DATAGRAM = 0xffff;
/**
 * Bytes queued on a stream past which datagrams are dropped, as a full socket buffer would:
 * a session's queue bytes, as the relay keeps for a local one (a spoofed source must not
 * make the daemon hold much per session).
 */
const HIGH_WATER = SESSION_QUEUE_BYTES;

/** One datagram as a frame. */
export function frameDatagram(msg: Buffer): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(msg.length, 0);
  return Buffer.concat([head, msg]);
}

/** Reads frames off a stream: `onDatagram` for each whole one, in order. */
export class DatagramReader {
  private buf = Buffer.alloc(0);

  constructor(stream: Duplex, onDatagram: (msg: Buffer) => void) {
    stream.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      while (this.buf.length >= 2) {
        const len = this.buf.readUInt16BE(0);
        if (this.buf.length < 2 + len) break;
        const msg = this.buf.subarray(2, 2 + len);
        this.buf = this.buf.subarray(2 + len);
        onDatagram(msg);
      }
    });
    // (a stream that was a request channel comes paused: a 'data' listener alone would not
    // start it again)
    stream.resume();
  }
}

/**
 * Send one datagram on a stream; false (dropped) when it is too big or the stream is
 * backed up (a peer that cannot keep up loses datagrams, as UDP would, instead of the daemon
 * holding them without bound).
 */
export function sendDatagram(stream: Duplex, msg: Buffer): boolean {
  if (msg.length > MAX_DATAGRAM || stream.destroyed || !stream.writable) return false;
  if (stream.writableLength > HIGH_WATER) return false;
  stream.write(frameDatagram(msg));
  return true;
}

/**
 * A UDP session's upstream that is a stream to a peer: what is sent goes framed, what comes
 * back is a 'message'; the stream's end (the peer closed the session) is an 'error'.
 */
export class StreamUpstream extends EventEmitter implements DatagramUpstream {
  private closed = false;

  constructor(private readonly stream: Duplex) {
    super();
    // (a session ended before its relay listens must not throw: a listener is always there)
    this.on('error', () => undefined);
    new DatagramReader(stream, (msg) => this.emit('message', msg));
    stream.on('error', () => undefined);
    stream.once('close', () => {
      if (!this.closed) this.emit('error', new Error('the peer ended the session'));
    });
  }

  send(msg: Buffer): void {
    sendDatagram(this.stream, msg);
  }

  close(): void {
    this.closed = true;
    this.stream.destroy();
  }
}
