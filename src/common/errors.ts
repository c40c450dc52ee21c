/**
 * Every error wormhole reports has a stable `code` (an upper-case word a script can match on)
 * and a message a user can act on. On the wire an error is `{ code, message }`; the client
 * rebuilds it into a WormholeError so callers can branch on `code`.
 */
export class WormholeError extends Error {
  /** Stable machine-readable code, e.g. `NS_NOT_FOUND`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WormholeError';
    this.code = code;
  }

  /** The wire form of this error. */
  toJSON(): { code: string; message: string } {
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

/** The errno-style code of a thrown value (`ECONNREFUSED`), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
