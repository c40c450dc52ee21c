import pino from 'pino';
import type PinoPretty from 'pino-pretty';

/** The daemon's structured logger type. */
export type Logger = pino.Logger;

/**
 * The daemon's logger, on stderr. Level from `WORMHOLE_LOG` (`debug`, `info`, `warn`,
 * `error`), `info` by default. For a person at a terminal, one readable line per event with
 * the level as a word and the time of day (pino-pretty); for everything else (a file, the
 * journal, a pipe) one JSON line per event, which tools read.
 */
export function createLogger(
  name: string,
  level = process.env.WORMHOLE_LOG ?? 'info',
  terminal = process.stderr.isTTY === true,
): Logger {
  const options = { name, level, base: { pid: process.pid } };
  if (terminal) {
    // loaded only for a terminal: a daemon under systemd or in a pipe never pays its memory
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pretty = require('pino-pretty') as typeof PinoPretty;
    return pino(
      options,
      pretty({
        destination: 2,
        sync: true,
        colorize: true,
        singleLine: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,name',
      }),
    );
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}
