/**
 * The TypeScript face of native/nsfactory.c: listen, dial and bind inside network namespaces.
 * The daemon's own threads never change namespace, and nothing here blocks the event loop:
 * the addon opens namespace files and makes sockets on a long-lived thread of its own.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import { native } from '../native';

/** Where `ip netns add NAME` puts its namespace files. */
export const NETNS_DIR = '/var/run/netns';

/**
 * Turn a user's namespace word into a namespace file path: a plain name is looked up in
 * /var/run/netns (a name never contains `/` and is not `.` or `..`, so it reaches nothing
 * outside it); an absolute path (`/proc/PID/ns/net`) is used as it is. Throws NS_INVALID.
 */
export function namespacePath(spec: string): string {
  if (spec.startsWith('/')) return path.normalize(spec);
  if (spec === '' || spec === '.' || spec === '..' || spec.includes('/') || spec.includes('\0')) {
    throw new WormholeError(
      'NS_INVALID',
      `namespace "${spec}" is not valid: give a name from 'ip netns list' or an absolute path like /proc/PID/ns/net`,
    );
  }
  return path.join(NETNS_DIR, spec);
}

/**
 * Check that a namespace file exists and is a network namespace; returns a stable identity
 * (device:inode) so that two paths to the same namespace compare equal. Throws NS_NOT_FOUND.
 */
export function namespaceIdentity(nsPath: string | null): string {
  if (nsPath === null) nsPath = '/proc/self/ns/net';
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(nsPath, { bigint: true });
  } catch {
    throw new WormholeError(
      'NS_NOT_FOUND',
      `network namespace ${nsPath} does not exist: create it with 'ip netns add NAME' or check the path`,
    );
  }
  if (!st.isFile()) {
    throw new WormholeError(
      'NS_INVALID',
      `${nsPath} is not a network namespace file: give a name from 'ip netns list' or a path like /proc/PID/ns/net`,
    );
  }
  return `${st.dev}:${st.ino}`;
}

function family(host: string): 4 | 6 {
  return net.isIPv6(host) ? 6 : 4;
}

/**
 * Rewrite an addon error into one a user can act on: a wormhole code, and an errno the code
 * does not say kept in `errno` (SYSTEM_ERROR). The addon's Error has an errno name as its code,
 * or NS_INVALID (native/nsfactory.c).
 */
function nsError(err: unknown, nsPath: string | null, what: string): WormholeError {
  const code = errnoCode(err) ?? 'EIO';
  const where = nsPath ?? 'the host namespace';
  if (code === 'NS_INVALID')
    return new WormholeError(
      'NS_INVALID',
      `${errorMessage(err)}: give a name from 'ip netns list' or a path like /proc/PID/ns/net`,
    );
  if (code === 'ENOENT')
    return new WormholeError('NS_NOT_FOUND', `network namespace ${where} does not exist`);
  if (code === 'EINVAL' && errorMessage(err).includes('setns'))
    return new WormholeError('NS_INVALID', `${where} is not a network namespace`);
  if (code === 'EADDRINUSE')
    return new WormholeError('ADDR_IN_USE', `${what} in ${where}: address already in use`);
  if (code === 'EADDRNOTAVAIL')
    return new WormholeError('ADDR_NOT_AVAILABLE', `${what} in ${where}: address not available there`);
  if (code === 'EACCES' || code === 'EPERM')
    return new WormholeError(
      'PERMISSION',
      `${what} in ${where}: permission denied (wormholed must run as root)`,
    );
  return new WormholeError('SYSTEM_ERROR', `${what} in ${where}: ${errorMessage(err)}`, { errno: code });
}

/** A listening TCP socket bound inside a namespace: its fd (for proxy/) and the bound port. */
export async function listenTcp(
  nsPath: string | null,
  host: string,
  port: number,
): Promise<{ fd: number; port: number }> {
  try {
    const [fd, bound] = await native().listenIn(nsPath, family(host), 'tcp', host, port, 4096);
    return { fd, port: bound };
  } catch (err) {
    throw nsError(err, nsPath, `listen on ${host}:${port}`);
  }
}

/**
 * An fd of the namespace (null: the daemon's own), checked to be a network namespace, for
 * the engine to make dialing sockets in. The caller closes it.
 */
export async function openNamespace(nsPath: string | null): Promise<number> {
  try {
    return await native().openNamespace(nsPath);
  } catch (err) {
    throw nsError(err, nsPath, 'open');
  }
}

/**
 * A TCP connection from inside a namespace (null: the daemon's own), resolved once connected
 * (rejected with the errno code, e.g. ECONNREFUSED, so that callers can retry). With
 * `timeoutMs`, a tail that has not answered by then (one that drops SYNs) is given up:
 * rejected with ETIMEDOUT, instead of after the kernel's SYN retries (about 2 minutes).
 */
export async function connectTcp(
  nsPath: string | null,
  host: string,
  port: number,
  timeoutMs?: number,
): Promise<net.Socket> {
  let socket: net.Socket;
  if (nsPath === null) socket = net.connect({ host, port, allowHalfOpen: true });
  else {
    let fd: number;
    try {
      fd = await native().socketIn(nsPath, family(host), 'tcp');
    } catch (err) {
      throw nsError(err, nsPath, `connect to ${host}:${port}`);
    }
    socket = new net.Socket({ fd, allowHalfOpen: true });
    socket.connect({ host, port });
  }
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            const err = new Error(`connect ETIMEDOUT ${host}:${port}`) as NodeJS.ErrnoException;
            err.code = 'ETIMEDOUT';
            onError(err);
          }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('connect', onConnect);
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    };
    socket.once('error', onError);
    socket.once('connect', onConnect);
  });
}

/**
 * A UDP socket inside a namespace (null: the daemon's own), bound to host:port (port 0: any),
 * with its fd (a daemon taking over gets a copy); or, given `fd`, the socket a daemon handed
 * over at takeover, bound already. Always made by the addon: Node keeps a socket's fd to itself.
 */
export async function bindUdp(
  nsPath: string | null,
  host: string,
  port: number,
  fd?: number,
): Promise<{ socket: dgram.Socket; fd: number }> {
  if (fd === undefined) {
    try {
      [fd] = await native().listenIn(nsPath, family(host), 'udp', host, port, 0);
    } catch (err) {
      throw nsError(err, nsPath, `bind udp ${host}:${port}`);
    }
  }
  const socket = dgram.createSocket({ type: family(host) === 6 ? 'udp6' : 'udp4' });
  const bound = fd;
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(nsError(err, nsPath, `bind udp ${host}:${port}`)));
    socket.bind({ fd: bound }, () => {
      socket.removeAllListeners('error');
      resolve();
    });
  });
  return { socket, fd };
}

/**
 * A UDP socket inside a namespace bound to a client's own address and port (host:port, not
 * this namespace's), for a `transparent` tail: IP_TRANSPARENT, its datagrams marked `mark`
 * (src/netns/policy.ts routes the tail's replies back to it).
 */
export async function bindUdpTransparent(
  nsPath: string | null,
  host: string,
  port: number,
  mark: number,
): Promise<dgram.Socket> {
  let fd = -1;
  try {
    fd = await native().socketIn(nsPath, family(host), 'udp');
    native().bindTransparent(fd, host, port, mark);
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    throw nsError(err, nsPath, `bind udp ${host}:${port} (transparent)`);
  }
  return (await bindUdp(nsPath, host, port, fd)).socket;
}

// ---- unix stream sockets ---------------------------------------------------------------

/**
 * The filesystem a unix path of an end is looked up in. A namespace named by a process
 * (`/proc/PID/ns/net`: what docker-ns and docker-run give) has that process's files, reached
 * through `/proc/PID/root`; the host's own namespace and a named one (`ip netns add`) have
 * the host's (null).
 */
export function rootOf(nsPath: string | null): string | null {
  const m = nsPath === null ? null : /^\/proc\/(\d+)\/ns\/net$/.exec(nsPath);
  return m ? `/proc/${m[1]}/root` : null;
}

/** Where a unix address is, said for a user. */
function unixWhere(address: string, nsPath: string | null, root = rootOf(nsPath)): string {
  if (address.startsWith('@')) return `abstract ${address} in ${nsPath ?? 'the host namespace'}`;
  return root ? `${address} in ${root}` : address;
}

/**
 * A unix socket error a user can act on (the errno name kept in `errno` where a retry wants
 * it). The addon's own codes here are NOT_A_SOCKET and ADDR_IN_USE (native/unixsock.c).
 */
function unixError(
  err: unknown,
  nsPath: string | null,
  address: string,
  what: string,
  root = rootOf(nsPath),
): WormholeError {
  const code = errnoCode(err) ?? 'EIO';
  const where = unixWhere(address, nsPath, root);
  if (code === 'NS_INVALID' || (code === 'ENOENT' && !address.startsWith('/')))
    return nsError(err, nsPath, `${what} ${address}`);
  if (code === 'NOT_A_SOCKET')
    return new WormholeError(
      'NOT_A_SOCKET',
      `${what} ${where}: ${errorMessage(err).replace(/^.* (exists)/, '$1')}: remove it or pick another path`,
    );
  if (code === 'ADDR_IN_USE' || code === 'EADDRINUSE')
    return new WormholeError('ADDR_IN_USE', `${what} ${where}: something listens there already`);
  if (code === 'ENOENT' && what === 'listen on')
    return new WormholeError(
      'PATH_NOT_FOUND',
      `${what} ${where}: its directory does not exist${rootOf(nsPath) ? ' there' : ''}`,
    );
  if (code === 'ENAMETOOLONG')
    return new WormholeError(
      'SYSTEM_ERROR',
      `${what} ${where}: the socket's name is too long (the last part of a path may have 88 bytes)`,
      { errno: code },
    );
  return new WormholeError('SYSTEM_ERROR', `${what} ${where}: ${errorMessage(err)}`, { errno: code });
}

/**
 * A listening unix stream socket for a head: `/path` in the end's filesystem (rootOf) with
 * the file mode given (a stale socket there is replaced; a live one, or another kind of file,
 * refused), or `@name` in nsPath's network namespace. Its fd, and the file's identity (for
 * removeUnix; '' for an abstract name, which has no file).
 */
export async function listenUnix(
  nsPath: string | null,
  address: string,
  mode: number,
): Promise<{ fd: number; identity: string }> {
  try {
    const [fd, identity] = await native().listenUnixIn(nsPath, rootOf(nsPath), address, mode, 4096);
    return { fd, identity: address.startsWith('@') ? '' : identity };
  } catch (err) {
    throw unixError(err, nsPath, address, 'listen on');
  }
}

/** Remove a head's socket file, if it is still the one listenUnix made. */
export async function removeUnix(nsPath: string | null, address: string, identity: string): Promise<void> {
  if (!address.startsWith('/') || identity === '') return;
  try {
    await native().removeUnixIn(rootOf(nsPath), address, identity);
  } catch (err) {
    throw unixError(err, nsPath, address, 'remove');
  }
}

/**
 * An fd of the end's filesystem root (or of `root`, a directory that stands for it: a host
 * unix tail's --allow-unix directory), for the engine to look unix paths up in. The caller
 * closes it.
 */
export async function openRoot(nsPath: string | null, root = rootOf(nsPath)): Promise<number> {
  try {
    return await native().openRoot(root);
  } catch (err) {
    throw unixError(err, nsPath, '/', 'open the root of', root);
  }
}

/**
 * A unix stream connection to `address` (as for listenUnix; a path looked up inside `root`,
 * as for openRoot), resolved once connected; rejected with the errno code (ECONNREFUSED,
 * ENOENT: not there yet; EAGAIN: its backlog is full) so that callers can retry.
 */
export async function connectUnix(
  nsPath: string | null,
  address: string,
  root = rootOf(nsPath),
): Promise<net.Socket> {
  let fd: number;
  try {
    fd = await native().connectUnixIn(nsPath, root, address);
  } catch (err) {
    throw unixError(err, nsPath, address, 'connect to', root);
  }
  return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
}
