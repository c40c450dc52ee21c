/**
 * Takeover: a new daemon (`wormholed --takeover`) receives every listening socket of the one
 * running on the same state directory, so that no connection is refused while one replaces
 * the other (an upgrade, a restart with new flags).
 *
 * The running daemon listens on `takeover.sock` in its state directory (0600, root only).
 * The new one connects; the old one sends each listening socket (API listeners, segment
 * heads) as SCM_RIGHTS descriptors, then a manifest saying which is which:
 *
 *   'F' x batches (each carrying up to 250 descriptors)  'M'  u32 length  JSON manifest
 *
 * Before it snapshots anything the old daemon shuts its gate of changes (src/segment/gate.ts):
 * a create or delete from then on is refused (TAKEOVER_UNDER_WAY), and those in flight end
 * first (up to GATE_WAIT_MS, else the successor is refused and the gate opened again), so
 * the records the successor reads from the state directory are the old daemon's last word;
 * the successor's own gate stays shut until it serves. If the successor leaves before it
 * serves, the old daemon opens its gate again.
 *
 * Both now hold the same sockets: a connection waiting in a backlog is accepted by whichever
 * asks first, so none is refused. The new daemon builds its segments on them, serves, and
 * writes `READY <pid>\n`; the old one then stops accepting, lets its open connections finish
 * (up to --drain-timeout) and exits without releasing what the new one adopts (containers,
 * children on peers, tunnels). If the new daemon dies before READY, the old one goes on.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import { native } from '../native';
import type { Protocol } from '../api/url';
import type { HandedSockets } from '../segment/context';

/** The socket's name in the state directory. */
export const TAKEOVER_SOCKET = 'takeover.sock';
/** How long the new daemon waits for the old one's sockets. */
const RECEIVE_TIMEOUT_MS = 10_000;
/** How long the old daemon lets its creates and deletes in flight end before it hands over. */
const GATE_WAIT_MS = 8_000;
const MAX_MANIFEST = 16 * 1024 * 1024;

/** Which received descriptor is which (indices into the descriptors, in order). */
interface Manifest {
  pid: number;
  api: { address: string; fd: number }[];
  /**
   * (identity: a unix head's socket file, which the successor removes when it deletes it;
   * count: a port range's sockets, `count` descriptors from `fd` in port order; absent: one)
   */
  heads: { segment: string; proto: Protocol; fd: number; count?: number; identity?: string }[];
}

/** What a running daemon hands over (a head's fds: one, or a port range's in port order). */
export interface Listening {
  api: { address: string; fd: number }[];
  heads: { segment: string; proto: Protocol; fds: readonly number[]; identity?: string }[];
}

/** The old daemon's creates and deletes (SegmentManager.gate). */
export interface Gate {
  /** Refuse new ones; true once those in flight have ended (false: not within `ms`). */
  close(ms: number): Promise<boolean>;
  open(): void;
}

/** The running daemon's side: waits for a successor on takeover.sock. */
export class TakeoverPoint {
  private server: net.Server | undefined;
  private busy = false;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    /** The sockets to hand over, at the moment a successor asks. */
    private readonly listening: () => Listening,
    /** The successor serves: stop accepting, drain, exit. */
    private readonly onTaken: (pid: number) => void,
    /** Shut while the successor reads the records, for good once it serves. */
    private readonly gate: Gate,
  ) {}

  /** Listen on the state directory's takeover socket (replacing one a predecessor left). */
  async start(): Promise<void> {
    fs.rmSync(this.path, { force: true });
    const old = process.umask(0o177);
    let fd: number;
    try {
      fd = native().listenUnix(this.path, 4);
    } finally {
      process.umask(old);
    }
    const server = net.createServer((socket) => void this.giveSockets(socket));
    server.on('error', (err) => this.log.warn({ err: err.message }, 'takeover socket error'));
    await new Promise<void>((resolve) => server.listen({ fd }, resolve));
    this.server = server;
  }

  /** A successor asked: send it the listening sockets (one successor at a time). */
  private async giveSockets(socket: net.Socket): Promise<void> {
    socket.on('error', () => undefined);
    if (this.busy) {
      socket.destroy();
      return;
    }
    this.busy = true;
    let ready = false;
    if (!(await this.gate.close(GATE_WAIT_MS)) || socket.destroyed) {
      this.log.warn(
        'takeover: creates or deletes still running; the new daemon is refused, this one goes on',
      );
      socket.destroy();
      this.gate.open();
      this.busy = false;
      return;
    }
    try {
      const { api, heads } = this.listening();
      const fds = [...api.map((a) => a.fd), ...heads.flatMap((h) => h.fds)];
      let at = api.length;
      const manifest: Manifest = {
        pid: process.pid,
        api: api.map((a, i) => ({ address: a.address, fd: i })),
        heads: heads.map((h) => {
          const fd = at;
          at += h.fds.length;
          const count = h.fds.length > 1 ? h.fds.length : undefined;
          return { segment: h.segment, proto: h.proto, fd, count, identity: h.identity };
        }),
      };
      // (the socket's fd, as libuv holds it: sendmsg is the only way to pass descriptors)
      const sockFd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
      for (let i = 0; i < fds.length; i += 250)
        native().sendFds(sockFd, fds.slice(i, i + 250), Buffer.from('F'));
      const json = Buffer.from(JSON.stringify(manifest));
      const head = Buffer.alloc(5);
      head.write('M');
      head.writeUInt32BE(json.length, 1);
      socket.write(Buffer.concat([head, json]));
      this.log.info({ sockets: fds.length }, 'takeover: sockets handed to a new daemon');
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'takeover: could not hand the sockets over');
      socket.destroy();
      this.gate.open();
      this.busy = false;
      return;
    }
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const m = /^READY (\d+)\n/.exec(text);
      if (m && !ready) {
        ready = true;
        this.onTaken(Number(m[1]));
      }
    });
    socket.on('close', () => {
      if (ready) return;
      this.gate.open();
      this.busy = false;
      this.log.warn('takeover: the new daemon left before it served; this one goes on');
    });
  }

  /** Stop listening; the path is removed unless a successor owns it now. */
  close(removePath: boolean): void {
    this.server?.close();
    if (removePath) fs.rmSync(this.path, { force: true });
  }
}

/** What the new daemon received. */
export class Handed implements HandedSockets {
  private readonly api = new Map<string, number>();
  private readonly heads = new Map<string, number[]>();
  private readonly identities = new Map<string, string>();

  constructor(
    readonly predecessor: number,
    private readonly sock: number,
    manifest: Manifest,
    fds: number[],
  ) {
    for (const a of manifest.api) this.api.set(a.address, fds[a.fd]);
    for (const h of manifest.heads) {
      this.heads.set(`${h.segment}/${h.proto}`, fds.slice(h.fd, h.fd + (h.count ?? 1)));
      if (h.identity) this.identities.set(h.segment, h.identity);
    }
  }

  identity(segmentId: string): string | undefined {
    return this.identities.get(segmentId);
  }

  take(segmentId: string, proto: Protocol): number[] | undefined {
    const key = `${segmentId}/${proto}`;
    const fd = this.heads.get(key);
    this.heads.delete(key);
    return fd;
  }

  /** The API listener handed over for this address, once. */
  takeApi(address: string): number | undefined {
    const fd = this.api.get(address);
    this.api.delete(address);
    return fd;
  }

  /**
   * Serving: close what nobody took (a segment that could not be built, an address no longer
   * in the flags) and tell the old daemon to stop accepting and drain.
   */
  ready(): string[] {
    const unused = [...this.api.keys(), ...this.heads.keys()];
    for (const fd of [...this.api.values(), ...[...this.heads.values()].flat()]) closeQuietly(fd);
    this.api.clear();
    this.heads.clear();
    try {
      fs.writeSync(this.sock, `READY ${process.pid}\n`);
    } finally {
      closeQuietly(this.sock);
    }
    return unused;
  }

  /** Give up (startup failed): the old daemon sees the socket close and goes on. */
  abandon(): void {
    for (const fd of [...this.api.values(), ...[...this.heads.values()].flat(), this.sock]) closeQuietly(fd);
  }
}

/** Connect to the running daemon's takeover socket and receive its sockets (blocking, bounded). */
export function takeOver(path: string): Handed {
  let sock: number;
  try {
    sock = native().connectUnix(path, RECEIVE_TIMEOUT_MS);
  } catch (err) {
    const code = errnoCode(err);
    throw new WormholeError(
      'TAKEOVER_FAILED',
      code === 'ENOENT' || code === 'ECONNREFUSED'
        ? `no running wormholed answers at ${path}: start without --takeover (or give the running daemon's --state-dir)`
        : `cannot reach the running daemon at ${path}: ${errorMessage(err)}`,
    );
  }
  const fds: number[] = [];
  try {
    let data = Buffer.alloc(0);
    for (;;) {
      const [chunk, got] = native().recvFds(sock);
      fds.push(...got);
      if (chunk.length === 0) throw new Error('the running daemon closed the connection');
      data = Buffer.concat([data, chunk]);
      const m = data.indexOf('M');
      if (m < 0 || data.length < m + 5) continue;
      const len = data.readUInt32BE(m + 1);
      if (len > MAX_MANIFEST) throw new Error('manifest too large');
      if (data.length < m + 5 + len) continue;
      const manifest = JSON.parse(data.subarray(m + 5, m + 5 + len).toString('utf8')) as Manifest;
      const wanted = manifest.api.length + manifest.heads.reduce((n, h) => n + (h.count ?? 1), 0);
      if (fds.length !== wanted)
        throw new Error(`received ${fds.length} sockets, the manifest names ${wanted}`);
      return new Handed(manifest.pid, sock, manifest, fds);
    }
  } catch (err) {
    for (const fd of [...fds, sock]) closeQuietly(fd);
    const why = errnoCode(err) === 'EAGAIN' ? 'it did not answer within 10 s' : errorMessage(err);
    throw new WormholeError('TAKEOVER_FAILED', `the running daemon did not hand its sockets over: ${why}`);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
