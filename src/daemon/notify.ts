/**
 * sd_notify(3): how a Type=notify systemd unit (contrib/wormholed.service) learns that the
 * daemon serves (READY=1), reloads (RELOADING=1) and stops (STOPPING=1). systemd passes the
 * address of its notification socket in NOTIFY_SOCKET; outside systemd there is none and
 * nothing is sent. The datagram goes through the addon (native/notify.c): Node's dgram has
 * no AF_UNIX datagram sockets.
 */
import { errnoCode, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import { native } from '../native';

/**
 * Tell systemd `state` (lines of KEY=VALUE). Never throws: the daemon serves the same with
 * or without a supervisor that heard it, so a failure is a warning (systemd would then time
 * the start out, and the warning says why). True when the datagram was sent.
 */
export function sdNotify(state: string, log: Logger, env: NodeJS.ProcessEnv = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  try {
    native().notify(socket, state);
    log.debug({ state }, 'told systemd');
    return true;
  } catch (err) {
    log.warn(
      { socket, state: state.split('\n')[0], code: errnoCode(err), err: errorMessage(err) },
      'cannot tell systemd (NOTIFY_SOCKET)',
    );
    return false;
  }
}

/** RELOADING=1 with the time it began, as systemd 253+ (Type=notify-reload) wants it. */
export function reloadingState(): string {
  // CLOCK_MONOTONIC in µs: libuv's hrtime reads that clock, as systemd's MONOTONIC_USEC does.
  return `RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`;
}
