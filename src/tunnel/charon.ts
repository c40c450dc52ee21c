/**
 * The one strongSwan charon a daemon runs for its userspace IPsec tunnels, and the VICI
 * session to it. charon runs in the daemon's network namespace (it binds UDP 500 and 4500
 * there and makes its TUN, ipsec0, there), with its own files in DIR (the state directory's
 * charon/): its config, VICI socket, log, and a private /run. Its pid file is fixed at
 * /var/run/charon.pid, so two daemons on one machine (two namespaces, as in the tests) would
 * refuse each other's charon: each runs under bwrap with DIR/run bound on /run, a mount
 * namespace of its own, everything else the host's. Like wireguard-go, it outlives the
 * daemon (tunnels do): the next daemon finds it by its VICI socket.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, WormholeError } from '../common/errors';
import type { Logger } from '../common/log';
import { native } from '../native';
import { ViciClient } from './vici';

/** The IKE daemon (strongswan-charon) and the plugin of its userspace ESP (libcharon-extra-plugins). */
export const CHARON = '/usr/lib/ipsec/charon';
export const LIBIPSEC_PLUGIN = '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so';
/** The Debian packages userspace IPsec needs, for the messages that name them. */
export const IPSEC_PACKAGES =
  'strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins bubblewrap';

/** How long charon has to open its VICI socket after it starts, and to exit after SIGTERM. */
const START_MS = 10_000;
const STOP_MS = 5_000;

/**
 * charon's strongswan.conf. It reads no other (STRONGSWAN_CONF names it, so /etc's is never
 * read), and loads only these plugins: crypto (openssl has AES-GCM and X25519, kdf the IKEv2
 * PRF+), kernel-libipsec before kernel-netlink (ESP in userspace, on ipsec0; routes and
 * addresses still through netlink), socket-default (the UDP sockets: without it charon
 * never answers), vici. Its 16 threads stay (fewer starve it: with 8, the ones its sockets,
 * TUN and timers hold leave none to read a VICI request). Retransmits are cut to about 12 s (1 + 1.8 + 3.2 + 5.8) so that a peer that does not
 * answer fails a tunnel-create in seconds, not minutes.
 */
export function charonConf(dir: string): string {
  return `# written by wormholed: this charon's config (STRONGSWAN_CONF names it)
charon {
  load = random nonce openssl gcm aes sha1 sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici
  retransmit_tries = 3
  retransmit_timeout = 1.0
  install_virtual_ip = no
  plugins {
    vici {
      socket = unix://${path.join(dir, 'charon.vici')}
    }
  }
  filelog {
    wormhole {
      path = ${path.join(dir, 'charon.log')}
      append = no
      flush_line = yes
      default = 1
      net = 0
      enc = 0
      time_format = %F %T
    }
  }
}
`;
}

/**
 * The receive buffer charon's UDP sockets get (wireguard-go's own size for its socket). They
 * carry every tunnel's ESP, read by one thread of charon's: with the default one
 * (net.core.rmem_default, 208 KiB here) a burst overflows it and ESP is dropped (iperf3
 * through a tunnel lost thousands of datagrams a second). strongSwan 5.9.8 has no option for
 * it, and the sysctl is read-only inside a network namespace on this kernel (6.18): the
 * daemon sets it on charon's sockets itself (native/sockbuf.c).
 */
export const CHARON_RCVBUF = 7 << 20;

/** The descriptors of process `pid`'s UDP sockets (IPv4 and IPv6), read from /proc. */
export function udpSocketFds(pid: number): number[] {
  // /proc/PID/net/udp lists the UDP sockets of PID's namespace: column 10 is the inode
  const inodes = new Set<string>();
  for (const table of ['udp', 'udp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // (no IPv6 in that namespace)
    }
    for (const line of text.split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode && inode !== '0') inodes.add(inode);
    }
  }
  const fds: number[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let link = '';
    try {
      link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // (closed since the listing)
    }
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode && inodes.has(inode)) fds.push(Number(fd));
  }
  return fds;
}

/** The charon of one daemon. */
export class Charon {
  private client: ViciClient | undefined;
  /** The charon whose sockets got CHARON_RCVBUF: each one once (a charon found at start too). */
  private raisedFor: number | undefined;

  /**
   * @param dir the state directory's charon/ (created 0700)
   * @param log where what was done to charon's sockets is said
   */
  constructor(
    private readonly dir: string,
    private readonly log?: Logger,
  ) {}

  /**
   * Give charon's UDP sockets CHARON_RCVBUF (SO_RCVBUFFORCE on them, through pidfd_getfd). A
   * failure is said and the tunnel goes on: slower under load, not broken.
   */
  private raiseBuffers(pid: number): void {
    this.raisedFor = pid;
    try {
      const fds = udpSocketFds(pid);
      if (fds.length === 0) throw new Error('no UDP socket found');
      const sizes = fds.map((fd) => native().raiseRcvbuf(pid, fd, CHARON_RCVBUF));
      this.log?.info(
        { charonPid: pid, sockets: fds.length, rcvbuf: sizes[0] },
        "charon's UDP receive buffers raised",
      );
    } catch (err) {
      this.log?.warn(
        { charonPid: pid, err: errorMessage(err) },
        "charon's UDP receive buffers not raised: ESP drops under load",
      );
    }
  }

  private get socket(): string {
    return path.join(this.dir, 'charon.vici');
  }

  /** charon's pid, from its pid file, if that process is a charon still running. */
  pid(): number | undefined {
    const text = (() => {
      try {
        return fs.readFileSync(path.join(this.dir, 'run', 'charon.pid'), 'utf8');
      } catch {
        return '';
      }
    })();
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    try {
      // (a pid reused by another program is not ours to signal)
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'charon' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** The VICI session to the charon that runs, if one does (none is started). */
  async running(): Promise<ViciClient | undefined> {
    if (this.pid() === undefined) {
      this.client?.close();
      this.client = undefined;
      return undefined;
    }
    if (!this.client?.alive) this.client = await ViciClient.connect(this.socket);
    return this.client;
  }

  /** The VICI session, starting charon first when none runs. */
  async session(): Promise<ViciClient> {
    if (this.pid() === undefined) await this.start();
    // (a charon that runs but does not take the connection yet is starting: a second one
    // would find its ports taken, so this one is waited for)
    const deadline = Date.now() + START_MS;
    for (;;) {
      const found = await this.running().catch((err: unknown) => {
        if (Date.now() > deadline)
          throw new WormholeError(
            'IPSEC_FAILED',
            `charon's VICI socket does not answer: ${errorMessage(err)}`,
          );
        return undefined;
      });
      if (found) {
        const pid = this.pid();
        if (pid !== undefined && pid !== this.raisedFor) this.raiseBuffers(pid);
        return found;
      }
      if (this.pid() === undefined) throw new WormholeError('IPSEC_FAILED', 'charon exited as it started');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async start(): Promise<void> {
    fs.mkdirSync(path.join(this.dir, 'run'), { recursive: true, mode: 0o700 });
    fs.chmodSync(this.dir, 0o700);
    const conf = path.join(this.dir, 'strongswan.conf');
    fs.writeFileSync(conf, charonConf(this.dir), { mode: 0o600 });
    // what a charon killed outright left: it would refuse to start on its pid file
    fs.rmSync(path.join(this.dir, 'run', 'charon.pid'), { force: true });
    fs.rmSync(this.socket, { force: true });
    const child = spawn(
      'bwrap',
      [
        '--bind',
        '/',
        '/',
        '--dev-bind',
        '/dev',
        '/dev',
        '--bind',
        path.join(this.dir, 'run'),
        '/run',
        '--',
        CHARON,
      ],
      { detached: true, stdio: 'ignore', env: { ...process.env, STRONGSWAN_CONF: conf } },
    );
    const exited = new Promise<string>((resolve) => {
      child.once('error', (err) => resolve(errorMessage(err)));
      child.once('exit', (code) => resolve(`it exited with ${code}`));
    });
    child.unref();
    const deadline = Date.now() + START_MS;
    for (;;) {
      const why = await Promise.race([
        exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
      ]);
      if (why !== undefined || Date.now() > deadline) {
        const reason = why === undefined ? `no VICI socket after ${START_MS / 1000} s` : why;
        throw new WormholeError(
          'IPSEC_FAILED',
          `charon did not start (${reason}): see ${path.join(this.dir, 'charon.log')}`,
        );
      }
      if (this.pid() !== undefined && fs.existsSync(this.socket)) return;
    }
  }

  /** Stop charon (it removes ipsec0, its routes and rule), waiting for it to exit. */
  async stop(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const pid = this.pid();
    if (pid === undefined) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_MS;
    while (this.pid() === pid) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
