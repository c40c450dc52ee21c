/**
 * A stream's target: what an OPEN carries when the peer's engine may dial the segment itself
 * (native/streamdial.c): the segment id's length (1 byte), the id, then the client's origin as
 * the attach request's JSON (empty: none). The engine reads only the id; a stream it does not
 * dial reaches JavaScript with the target in front (enginechannel.ts), read here.
 */
import * as fs from 'node:fs';
import { type Params, methods } from '../api/protocol';
import { WormholeError } from '../common/errors';

type Origin = Params<'attach'>['origin'];

/** The most an OPEN carries (native/engine.h's OPEN_MAX). */
export const MAX_TARGET = 1024;

/** The bytes of a target: segment `id`, `origin` the client it carries. */
export function encodeTarget(id: string, origin: Origin | undefined): Buffer {
  const idBytes = Buffer.from(id);
  const json = origin ? Buffer.from(JSON.stringify(origin)) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([idBytes.length]), idBytes, json]);
}

/** A target as the peer sent it, checked as its attach request would be; throws a WormholeError. */
export function decodeTarget(bytes: Buffer): { id: string; origin: Origin | undefined } {
  const n = bytes[0] ?? 0;
  if (n === 0 || 1 + n > bytes.length)
    throw new WormholeError('BAD_REQUEST', 'bad attach: a stream target with no segment id');
  const id = bytes.subarray(1, 1 + n).toString();
  const rest = bytes.subarray(1 + n);
  let origin: unknown;
  try {
    origin = rest.length > 0 ? JSON.parse(rest.toString()) : undefined;
  } catch {
    throw new WormholeError('BAD_REQUEST', "bad attach: the stream target's origin is not JSON");
  }
  const parsed = methods.attach.params.safeParse(origin === undefined ? { id } : { id, origin });
  if (!parsed.success) throw new WormholeError('BAD_REQUEST', `bad attach: segment id or origin malformed`);
  return parsed.data as { id: string; origin: Origin | undefined };
}

/**
 * Read the target the engine put in front of a stream's fd (its 4-byte length, then it): it
 * is there before the engine tells of the stream, so a read takes it whole, and nothing past it.
 */
export function readTarget(fd: number): Buffer {
  const take = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const k = fs.readSync(fd, b, got, n - got, null);
      if (k <= 0) throw new WormholeError('BAD_REQUEST', 'a stream target cut short');
      got += k;
    }
    return b;
  };
  const len = take(4).readUInt32BE(0);
  if (len > MAX_TARGET) throw new WormholeError('BAD_REQUEST', 'a stream target too long');
  return take(len);
}
