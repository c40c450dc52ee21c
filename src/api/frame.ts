/**
 * Length-prefixed JSON frames over any byte stream, and that stream left to raw bytes after an
 * `attach` (the reader detached).
 */
import type { Duplex } from 'node:stream';
import { WormholeError } from '../common/errors';
import { MAX_FRAME } from './protocol';

/** Deepest nesting of arrays and objects a frame may have; no request needs more than a few. */
export const MAX_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = new Set([0x5b, 0x7b]); // [ {
const CLOSE = new Set([0x5d, 0x7d]); // ] }

/**
 * Whether a JSON text nests arrays and objects deeper than `max`, found by one pass over its
 * bytes (brackets inside strings do not count). Checked before JSON.parse: a megabyte of `[`
 * would otherwise become a million nested arrays, over a hundred MiB, before any schema runs.
 */
export function nestsDeeperThan(body: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (OPEN.has(c)) {
      if (++depth > max) return true;
    } else if (CLOSE.has(c)) depth--;
  }
  return false;
}

/**
 * The first frame in `buf`, parsed, and the bytes after it; undefined while it is not whole.
 * Throws WormholeError (FRAME_TOO_LARGE, BAD_FRAME) on a frame that breaks the rules; `limit`
 * is the largest body accepted.
 */
export function readFrame(buf: Buffer, limit = MAX_FRAME): { value: unknown; rest: Buffer } | undefined {
  if (buf.length < 4) return undefined;
  const len = buf.readUInt32BE(0);
  if (len > limit)
    throw new WormholeError('FRAME_TOO_LARGE', `frame of ${len} bytes is over the ${limit}-byte limit`);
  if (buf.length < 4 + len) return undefined;
  const body = buf.subarray(4, 4 + len);
  if (nestsDeeperThan(body, MAX_DEPTH))
    throw new WormholeError('BAD_FRAME', `frame nests deeper than ${MAX_DEPTH} levels`);
  try {
    return { value: JSON.parse(body.toString('utf8')) as unknown, rest: buf.subarray(4 + len) };
  } catch {
    throw new WormholeError('BAD_FRAME', 'frame is not valid JSON');
  }
}

/**
 * Encode one value as a frame (one buffer, so that it goes out in one write). `what` names
 * it in the error when it is over `limit` (code FRAME_TOO_LARGE).
 */
export function encodeFrame(value: unknown, what = 'the message', limit = MAX_FRAME): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  if (body.length > limit)
    throw new WormholeError(
      'FRAME_TOO_LARGE',
      `${what} is too large: ${body.length} bytes, over the ${limit}-byte limit of a frame`,
    );
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/**
 * Reads frames from a stream and hands each parsed value to `onFrame`. A frame over
 * `limit` (default MAX_FRAME) or one that is not JSON goes to `onError` and reading stops. `detach()` stops
 * reading frames and puts any bytes already read back into the stream, so that it can be
 * used as a plain byte stream from there on.
 */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private stopped = false;
  private readonly onData = (chunk: Buffer): void => this.push(chunk);

  constructor(
    private readonly stream: Duplex,
    private readonly onFrame: (value: unknown) => void,
    private readonly onError: (err: WormholeError) => void,
    private readonly limit = MAX_FRAME,
  ) {
    stream.on('data', this.onData);
  }

  private push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (!this.stopped) {
      let frame: { value: unknown; rest: Buffer } | undefined;
      try {
        frame = readFrame(this.buffered, this.limit);
      } catch (err) {
        this.fail(err as WormholeError);
        return;
      }
      if (!frame) return;
      this.buffered = frame.rest;
      this.onFrame(frame.value);
    }
  }

  private fail(err: WormholeError): void {
    this.detach();
    this.buffered = Buffer.alloc(0);
    this.onError(err);
  }

  /** Stop reading frames; unread bytes go back to the stream; the stream is paused. */
  detach(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stream.off('data', this.onData);
    this.stream.pause();
    if (this.buffered.length > 0) this.stream.unshift(this.buffered);
    this.buffered = Buffer.alloc(0);
  }
}
