import pino from 'pino';

/** The daemon's structured logger type. */
export type Logger = pino.Logger;

/**
 * A logger writing one JSON line per event to stderr. Level from `WORMHOLE_LOG`
 * (`debug`, `info`, `warn`, `error`), `info` by default.
 */
export function createLogger(name: string, level = process.env.WORMHOLE_LOG ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
