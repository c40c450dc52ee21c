/**
 * The channel's frames: the one place their format is written down. The channel between two
 * daemons (src/peer/channel.ts) carries nothing else once it is open, so that the engine in C
 * can later speak it too: a fixed binary header, big-endian, then the payload.
 *
 *     0       1       2               6               10
 *     | type  | flags | stream id (4) | length (4)    | payload (length bytes)
 *
 * - DATA (0): bytes of a stream, 1 to MAX_PAYLOAD; never more than the receiver's window.
 * - OPEN (1): the dialing side opens stream `id` (odd ids only, each larger than the last);
 *   no payload.
 * - FIN (2): the sender writes no more on this stream (half-close); no payload.
 * - RST (3): the stream is reset (a TCP reset on one side becomes one on the other); no payload.
 * - WINDOW (4): 4 bytes, how many more bytes the sender of this frame may now receive.
 * - PING (5), PONG (6): stream 0, 8 opaque bytes that PONG echoes (keepalive and round trip).
 * - GOAWAY (7): stream 0, no payload; the accepting side takes no new streams after those
 *   in flight (its daemon was taken over): the dialer opens a new channel for new ones, and
 *   this one closes once its streams have ended.
 *
 * Flags are 0 (kept for later use). Anything else is a malformed frame, and the channel that
 * carried it is closed.
 */

/** Bytes of a frame's header. */
export const HEADER = 10;
/** The most a DATA frame carries: one full TLS record. */
export const MAX_PAYLOAD = 16 * 1024;
/**
 * What each side may send on a new stream before the first WINDOW frame. 1 MiB: on a loaded
 * machine a window update takes milliseconds to come back, and 256 KiB held one stream well
 * under the link's rate (the sender idled, waiting for credit).
 */
export const INITIAL_WINDOW = 1024 * 1024;

/** Frame types, as on the wire. */
export const FrameType = {
  DATA: 0,
  OPEN: 1,
  FIN: 2,
  RST: 3,
  WINDOW: 4,
  PING: 5,
  PONG: 6,
  GOAWAY: 7,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** One frame as parsed. */
export interface Frame {
  type: FrameType;
  stream: number;
  payload: Buffer;
}

/** A frame that breaks the format: the channel that carried it is closed. */
export class FrameError extends Error {}

/** Payload length each type must have (DATA: 1 to MAX_PAYLOAD). */
const FIXED_LENGTH: Record<number, number | undefined> = {
  [FrameType.OPEN]: 0,
  [FrameType.FIN]: 0,
  [FrameType.RST]: 0,
  [FrameType.WINDOW]: 4,
  [FrameType.PING]: 8,
  [FrameType.PONG]: 8,
  [FrameType.GOAWAY]: 0,
};

/** Write a frame's header at the start of `buf`. */
function writeHeader(buf: Buffer, type: FrameType, stream: number, length: number): void {
  buf.writeUInt8(type, 0);
  buf.writeUInt8(0, 1);
  buf.writeUInt32BE(stream, 2);
  buf.writeUInt32BE(length, 6);
}

/** Encode one frame (header and payload in one buffer: one write). */
export function encode(type: FrameType, stream: number, payload?: Buffer): Buffer {
  const len = payload?.length ?? 0;
  const buf = Buffer.allocUnsafe(HEADER + len);
  writeHeader(buf, type, stream, len);
  if (payload) payload.copy(buf, HEADER);
  return buf;
}

/** The header of a DATA frame of `length` bytes, written before them (no copy of the bytes). */
export function dataHeader(stream: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER);
  writeHeader(buf, FrameType.DATA, stream, length);
  return buf;
}

/** A WINDOW frame granting `bytes` more on `stream`. */
export function encodeWindow(stream: number, bytes: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(bytes, 0);
  return encode(FrameType.WINDOW, stream, p);
}

/** Check a header; throws FrameError on anything the format does not allow. */
function check(type: number, flags: number, stream: number, len: number): void {
  if (type > FrameType.GOAWAY) throw new FrameError(`unknown frame type ${type}`);
  if (flags !== 0) throw new FrameError(`frame flags ${flags} are not 0`);
  const fixed = FIXED_LENGTH[type];
  if (fixed === undefined) {
    if (len < 1 || len > MAX_PAYLOAD)
      throw new FrameError(`data frame of ${len} bytes (1 to ${MAX_PAYLOAD})`);
  } else if (len !== fixed) throw new FrameError(`frame type ${type} with ${len} bytes, not ${fixed}`);
  const control = type === FrameType.PING || type === FrameType.PONG || type === FrameType.GOAWAY;
  if (control !== (stream === 0))
    throw new FrameError(control ? 'ping on a stream' : 'stream frame on stream 0');
}

/**
 * Cuts a byte stream into frames. `push` hands each whole frame to `onFrame` and keeps a
 * partial one for the next chunks; a malformed header throws FrameError (the channel closes).
 * Payloads are views into the chunks read (no copy), or into the one join of a frame that
 * came in several chunks.
 */
export class FrameParser {
  /** Bytes read but not yet a whole frame: views into the chunks, joined once a frame is whole. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes the frame at the start of `parts` needs in all (0: its header is not read yet). */
  private need = 0;

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  /** Feed bytes read from the channel. */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.parts.length > 0) {
      // A frame split across chunks (a 16 KiB frame seldom fits a TLS record's read): keep
      // the views until it is whole, then join once, instead of a copy per chunk.
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      if (this.partBytes < Math.max(this.need, HEADER)) return;
      buf = Buffer.concat(this.parts, this.partBytes);
      this.parts = [];
      this.partBytes = 0;
    }
    this.need = 0;
    while (buf.length >= HEADER) {
      const type = buf[0];
      const len = buf.readUInt32BE(6);
      const stream = buf.readUInt32BE(2);
      check(type, buf[1], stream, len);
      if (buf.length < HEADER + len) {
        this.need = HEADER + len;
        break;
      }
      const payload = buf.subarray(HEADER, HEADER + len);
      buf = buf.subarray(HEADER + len);
      this.onFrame({ type: type as FrameType, stream, payload });
    }
    if (buf.length > 0) {
      this.parts.push(buf);
      this.partBytes = buf.length;
    }
  }
}
