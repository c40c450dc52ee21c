import type { ErrorCode } from '../api/codes';

export { ERROR_CODES, type ErrorCode, isErrorCode } from '../api/codes';

/**
 * Every error wormhole reports has a stable `code` (an upper-case word a script can match on,
 * one of ERROR_CODES) and a message a user can act on. On the wire an error is
 * `{ code, message }`; the client rebuilds it into a WormholeError so callers can branch on
 * `code`. A system error under it keeps its errno name apart, in `errno`.
 */
export class WormholeError extends Error {
  /** Stable machine-readable code, e.g. `NS_NOT_FOUND`. */
  readonly code: ErrorCode;
  /** The errno name of the system error under this one (ECONNREFUSED, ...), if any: for retries. */
  readonly errno: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(message, options);
    this.name = 'WormholeError';
    this.code = code;
    this.errno = options?.errno;
  }

  /** The wire form of this error. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Input from a user (CLI argument, create action, flag) is wrong. */
export class UsageError extends WormholeError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

/** The message of any thrown value, for logs and error replies. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The errno-style code of a thrown value (`ECONNREFUSED`), if it has one: a system error's
 * `code`, a WormholeError's `errno` (never its wormhole code), or what the addon set (an
 * errno name, or NS_INVALID / NOT_A_SOCKET / ADDR_IN_USE: see src/netns).
 */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof WormholeError) return err.errno;
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
