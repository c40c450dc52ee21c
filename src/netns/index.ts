/**
 * The TypeScript face of native/netns.c: listen, dial and bind inside network namespaces.
 * The daemon's own threads never change namespace; the addon does that on a thread of its own.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import type { NetnsBinding } from './binding';

/** Where `ip netns add NAME` puts its namespace files. */
export const NETNS_DIR = '/var/run/netns';

let binding: NetnsBinding | undefined;

/** Load the addon once, from the place `npm run build` puts it. */
function native(): NetnsBinding {
  if (!binding) {
    const file = path.resolve(__dirname, '../../../native/build/Release/netns.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require(file) as NetnsBinding;
    } catch (err) {
      throw new WormholeError(
        'NATIVE_MISSING',
        `the netns addon is not built (${errorMessage(err)}): run the setup command from the README`,
      );
    }
  }
  return binding;
}

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
  return `${st.dev}:${st.ino}`;
}

function family(host: string): 4 | 6 {
  return net.isIPv6(host) ? 6 : 4;
}

/** Rewrite an addon error into one a user can act on, keeping the errno code. */
function nsError(err: unknown, nsPath: string | null, what: string): WormholeError {
  const code = errnoCode(err) ?? 'EIO';
  const where = nsPath ?? 'the host namespace';
  if (code === 'ENOENT')
    return new WormholeError('NS_NOT_FOUND', `network namespace ${where} does not exist`);
  if (code === 'EINVAL' && errorMessage(err).startsWith('setns'))
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
  return new WormholeError(code, `${what} in ${where}: ${errorMessage(err)}`);
}

/** A TCP listener bound inside a namespace; listens once the promise resolves. */
export async function listenTcp(
  nsPath: string | null,
  host: string,
  port: number,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  let fd: number;
  try {
    [fd] = native().listenIn(nsPath, family(host), 'tcp', host, port, 511);
  } catch (err) {
    throw nsError(err, nsPath, `listen on ${host}:${port}`);
  }
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/**
 * Start a TCP connection from inside a namespace (null: the daemon's own). The returned
 * socket emits 'connect' or 'error' like net.connect's.
 */
export function connectTcp(nsPath: string | null, host: string, port: number): net.Socket {
  if (nsPath === null) return net.connect({ host, port, allowHalfOpen: true });
  let fd: number;
  try {
    fd = native().socketIn(nsPath, family(host), 'tcp');
  } catch (err) {
    throw nsError(err, nsPath, `connect to ${host}:${port}`);
  }
  const socket = new net.Socket({ fd, allowHalfOpen: true });
  socket.connect({ host, port });
  return socket;
}

/** A UDP socket inside a namespace, bound to host:port (port 0: any). */
export async function bindUdp(nsPath: string | null, host: string, port: number): Promise<dgram.Socket> {
  const type = family(host) === 6 ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type });
  let fd: number | undefined;
  if (nsPath !== null) {
    try {
      [fd] = native().listenIn(nsPath, family(host), 'udp', host, port, 0);
    } catch (err) {
      socket.close();
      throw nsError(err, nsPath, `bind udp ${host}:${port}`);
    }
  }
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(nsError(err, nsPath, `bind udp ${host}:${port}`)));
    const done = (): void => {
      socket.removeAllListeners('error');
      resolve();
    };
    if (fd !== undefined) socket.bind({ fd }, done);
    else socket.bind({ address: host, port, exclusive: true }, done);
  });
  return socket;
}
