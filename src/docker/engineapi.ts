/**
 * Reading the Docker Engine API's answers: which references may reach an API path, which
 * errors mean the engine is out of reach, the engine's own words for a refusal, and its
 * multiplexed log stream. Pure functions, shared by the runtime (index.ts) and the image
 * puller (images.ts).
 */
import { errorMessage } from '../common/errors';

/**
 * A container id (full or short) or name as the engine knows it. Only these reach an Engine
 * API path: anything else (`//`, `..`) makes the engine answer with a redirect, which the
 * client library would follow to somewhere else.
 */
export function isContainerRef(ref: string): boolean {
  return /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ref) && ref.length <= 255;
}

/** Errno codes that mean nothing usable answers at the engine's address. */
export const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'ENOTDIR',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);

export function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/**
 * Whether the engine refused because of the container's state (not running, paused already):
 * Docker answers 409; Podman's compatible API answers 500 with the cause "container state
 * improper".
 */
export function isStateConflict(err: unknown): boolean {
  if (statusOf(err) === 409) return true;
  const json = (err as { json?: { cause?: unknown } | null } | null)?.json;
  return statusOf(err) === 500 && json?.cause === 'container state improper';
}

/** The engine's own words for a refused call, without docker-modem's `(HTTP code N) ... - `. */
export function engineMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  const fromJson =
    json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string'
      ? (json as { message: string }).message
      : undefined;
  return (fromJson ?? errorMessage(err))
    .replace(/^\(HTTP code \d+\) [^-]*- /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

export function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR' || e?.name === 'TimeoutError';
}

/** Split the engine's multiplexed log stream (8-byte frame headers) into text. */
export function demuxLogs(buf: Buffer): string {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length && buf[at] <= 2 && buf.readUInt16BE(at + 1) === 0 && buf[at + 3] === 0) {
    const size = buf.readUInt32BE(at + 4);
    out.push(buf.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return at === 0 ? buf.toString('utf8') : Buffer.concat(out).toString('utf8');
}
