/**
 * The API's listening sockets as files and addresses: a unix socket made 0600 by the addon, a
 * stale one left by a dead daemon removed (a live one refused), and why a listen failed in
 * words a user can act on.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { WormholeError, errorMessage } from '../common/errors';
import { native } from '../native';

/**
 * A listening unix socket at `path`, its fd. Made by the addon, not by Node, whose close would
 * unlink the path even when a successor serves on the socket; created 0600: no moment where
 * others could connect.
 */
export function listenUnixPrivately(path: string): number {
  const old = process.umask(0o177);
  try {
    return native().listenUnix(path, 511);
  } catch (err) {
    throw new WormholeError('LISTEN_FAILED', `cannot listen on unix://${path}: ${errorMessage(err)}`);
  } finally {
    process.umask(old);
  }
}

/** Why listening failed, said so that the user knows what to change. */
export function listenFailure(err: NodeJS.ErrnoException): string {
  if (err.code === 'EADDRINUSE') return 'address in use (is another wormholed running? use -H)';
  if (err.code === 'EADDRNOTAVAIL') return 'not an address of this host (use -H with one of its addresses)';
  return err.message;
}

/** A unix socket left by a daemon that died is removed; a live one is an error. */
export async function removeStaleSocket(path: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  if (!fs.existsSync(dir))
    throw new WormholeError(
      'LISTEN_FAILED',
      `cannot listen on unix://${path}: the directory ${dir} does not exist (create it, or pick another -H)`,
    );
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new WormholeError(
      'LISTEN_FAILED',
      `${path} exists and is not a socket: remove it or pick another -H`,
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
  if (live)
    throw new WormholeError(
      'ADDR_IN_USE',
      `another daemon listens on unix://${path}: stop it or pick another -H`,
    );
  fs.unlinkSync(path);
}
