/**
 * The daemon's signals:
 *   SIGTERM, SIGINT  stop (main.ts's stop(): listeners closed at once, then everything
 *                    released; a second signal exits without waiting). systemd hears
 *                    STOPPING=1 at the first.
 *   SIGHUP           read the key file again: new connections (API handshakes, requests to
 *                    peers) use the new key, open ones and segments are untouched. A key
 *                    file that cannot be used is logged with why, and the old key stays.
 *                    The --keys file too: a key removed from it authenticates no new
 *                    connection (the segments it made stay); a file that cannot be used
 *                    is logged in one line, and the keys in use stay.
 *                    systemd hears RELOADING=1, then READY=1 (ExecReload sends SIGHUP).
 *   SIGUSR1          ignored: Node would otherwise open its inspector on 127.0.0.1:9229, a
 *                    debugger port that runs any code as root for whoever reaches it.
 *
 * SIGHUP and SIGUSR1 are caught from the moment this module loads (main.ts imports it, so
 * before main() runs), not from the end of startup: startup may take seconds (tunnels
 * restored, a crashed run's containers removed), and until a handler exists SIGUSR1 opens
 * the inspector and SIGHUP kills the daemon with no cleanup. What arrives before
 * wireSignals() is remembered and acted on then. SIGTERM and SIGINT keep Node's default
 * (exit at once, as before this module) until then: stopping half-way through a startup is
 * main.ts's to define, and a start cut short is found by the next one (a stale lock).
 */
import { errorMessage } from '../common/errors';
import { readKey } from '../common/key';
import type { Logger } from '../common/log';
import { type KeyRing, loadKeysFile } from '../trust/keys';
import { reloadingState, sdNotify } from './notify';

/** What authenticates new connections with the key: the API server, the peers. */
export interface KeyUser {
  setKey(key: Buffer): void;
}

/** What the signals act on, once the daemon serves. */
export interface SignalWiring {
  log: Logger;
  /** The key file (-K) to read again on SIGHUP. */
  keyFile: string;
  /** The key read at start: a reload says whether the file changed it. */
  key: Buffer;
  /** Given the new key on each good reload. */
  keyUsers: KeyUser[];
  /** The keys the API knows, and the --keys file they come from (if any). */
  keys: KeyRing;
  keysFile?: string;
  /** main.ts's stop; it exits at once when called a second time. */
  stop: (signal: string) => void;
}

let wired: SignalWiring | undefined;
/** The key in use (after the last good reload). */
let current: Buffer | undefined;
let stopping = false;
/** Signals that came before wireSignals(), acted on there. */
const early = { hup: false, usr1: false };

const DEBUGGER_IGNORED = "SIGUSR1 ignored: it would open Node's debugger";

process.on('SIGUSR1', () => {
  if (wired) wired.log.info({ signal: 'SIGUSR1' }, DEBUGGER_IGNORED);
  else early.usr1 = true;
});
process.on('SIGHUP', () => {
  if (wired) reload(wired);
  else early.hup = true;
});

/** Hand the signals their actions; called once, when every API listener serves. */
export function wireSignals(w: SignalWiring): void {
  wired = w;
  current = w.key;
  process.on('SIGTERM', () => onStop(w, 'SIGTERM'));
  process.on('SIGINT', () => onStop(w, 'SIGINT'));
  if (early.usr1) w.log.info({ signal: 'SIGUSR1', during: 'startup' }, DEBUGGER_IGNORED);
  if (early.hup) {
    // The key was read early in startup, maybe before the file changed: read it again. On
    // the next turn, so that systemd hears the start's READY=1 before this RELOADING=1.
    w.log.info({ signal: 'SIGHUP', during: 'startup' }, 'reading the key file again');
    setImmediate(() => reload(w));
  }
}

function onStop(w: SignalWiring, signal: string): void {
  if (!stopping) {
    stopping = true;
    // Before any of the stop's work: systemd then knows the exit that follows is ours.
    sdNotify('STOPPING=1', w.log);
  }
  w.stop(signal);
}

/** SIGHUP: the key file again. Synchronous, so two reloads never interleave. */
function reload(w: SignalWiring): void {
  if (stopping) {
    // Nothing new is accepted any more: a new key would authenticate nothing.
    w.log.info({ signal: 'SIGHUP' }, 'stopping: key not reloaded');
    return;
  }
  sdNotify(reloadingState(), w.log);
  try {
    // The same checks as at start (exists, mode 600, 16 characters or more): a key file
    // half-written or left readable by others is refused here as it would be there.
    const key = readKey(w.keyFile);
    for (const user of w.keyUsers) user.setKey(key);
    const changed = current === undefined || !key.equals(current);
    current = key;
    w.log.info({ file: w.keyFile, changed }, 'key reloaded');
  } catch (err) {
    // The daemon keeps serving with the key it has: a typo in the file must not lock out
    // every client and peer, nor stop the daemon.
    w.log.error({ file: w.keyFile, err: errorMessage(err) }, 'key not reloaded: the key in use stays');
  }
  if (w.keysFile) reloadKeys(w, w.keysFile);
  // READY=1 either way: the reload is over, and the daemon serves (old keys or new).
  sdNotify('READY=1', w.log);
}

/** SIGHUP: the --keys file again, as a whole or not at all. */
function reloadKeys(w: SignalWiring, file: string): void {
  try {
    const keys = loadKeysFile(file, current ?? w.key);
    w.keys.setOthers(keys);
    w.log.info({ file, keys: keys.map((k) => k.name) }, 'keys reloaded');
  } catch (err) {
    w.log.error({ file, err: errorMessage(err) }, 'keys not reloaded: the keys in use stay');
  }
}
