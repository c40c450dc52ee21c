/**
 * A peer's stream that named its segment in its OPEN (src/peer/target.ts) and that the engine
 * did not dial itself (native/streamdial.c says when): served here as the attach it stands
 * for, with the same checks (the key's right to attach, the segment's owner in onAttach). No
 * reply goes back on such a stream: a refusal is a reset, and the reason is logged here.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../common/errors';
import type { RateLimitedLog } from '../common/ratelog';
import { decodeTarget } from '../peer/target';
import { ALL_RIGHTS, type KeyRights, methodRefusal } from '../trust/rights';
import type { AttachHandler } from './server';

/** What the engine is told of a channel's key (chanCreate's peerKey); null: too long a name. */
export function engineKey(key: KeyRights): { name: string; all: boolean } | null {
  return Buffer.byteLength(key.name) < 256 ? { name: key.name, all: key.rights === ALL_RIGHTS } : null;
}

/** Serve a stream with a target as an attach of the key `key`. */
export function serveTarget(
  stream: Duplex,
  target: Buffer,
  key: KeyRights,
  onAttach: AttachHandler,
  warn: RateLimitedLog,
): void {
  const refuse = (why: string): void => {
    warn.warn({ key: key.name, why }, 'peer stream refused');
    stream.destroy();
  };
  let named: ReturnType<typeof decodeTarget>;
  try {
    named = decodeTarget(target);
  } catch (err) {
    refuse(errorMessage(err));
    return;
  }
  const refusal = methodRefusal(key, 'attach');
  if (refusal) {
    refuse(refusal);
    return;
  }
  // from here on the stream belongs to the segment, as an attach's does (half-close kept)
  if (stream instanceof net.Socket) stream.allowHalfOpen = true;
  onAttach(
    named.id,
    stream,
    (err) => (err ? refuse(`segment ${named.id}: ${errorMessage(err)}`) : undefined),
    named.origin,
    key,
  );
}
