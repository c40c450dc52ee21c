/**
 * WireGuard: the kernel's where it has it (`ip link add ... type wireguard`), else the
 * userspace wireguard-go on TUN. Either way configured with `wg`, addressed with `ip`.
 * wireguard-go runs on after the daemon exits, so tunnels outlive it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../common/exec';
import { WormholeError } from '../common/errors';
import { type FoundTunnel, IFACE_PATTERN, type TunnelDriver, type TunnelSide, buildOrUndo } from './driver';

interface IpLink {
  ifname: string;
  flags?: string[];
  mtu?: number;
  linkinfo?: { info_kind?: string; info_data?: { vnet_hdr?: boolean } };
}
interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; address?: string; prefixlen: number }[];
}

/**
 * WireGuard's overhead on an IPv4 underlay: IP 20 + UDP 8 + WireGuard's header and tag 32.
 * (wg-quick takes 80, for an IPv6 underlay; wormhole's underlay is IPv4.)
 */
const OVERHEAD = 60;
/** The tunnel's MTU when the underlay's is not found: wg-quick's default. */
const DEFAULT_MTU = 1420;

/**
 * The first wireguard-go with TUN offloads (TSO and GRO through a vnet header): older ones
 * move one packet per read and write, and carry about a tenth of what ssh does here.
 */
const OFFLOADS_SINCE = '0.0.20230223';
/**
 * The first with UDP offloads too (GSO and GRO on its socket): bookworm-backports' package,
 * which still says v0.0.20230223 of itself, so only its package's version tells.
 */
const UDP_OFFLOADS_SINCE = '0.0.20231211';

/** a < b, for dotted version numbers (numbers, not letters: 0.1 > 0.0.9). */
const older = (a: string, b: string): boolean => a.localeCompare(b, 'en', { numeric: true }) < 0;

/**
 * What this wireguard-go lacks to run at full speed, from its `--version` text, its Debian
 * package's version (`pkg`, where dpkg has one) and (once a tunnel exists) whether its TUN
 * has a vnet header (wireguard-go asks for one when it can offload); undefined when nothing
 * is missing or nothing is known.
 */
export function offloadShortfall(versionText: string, vnetHdr?: boolean, pkg?: string): string | undefined {
  const version = /v?(\d+\.\d+\.\d+)/.exec(versionText)?.[1];
  if (vnetHdr === false)
    return `wireguard-go ${version ?? '(version unknown)'} runs its TUN without offloads (no vnet header)`;
  if (version && older(version, OFFLOADS_SINCE))
    return `wireguard-go ${version} has no TUN or UDP offloads (they came in ${OFFLOADS_SINCE} and ${UDP_OFFLOADS_SINCE})`;
  const packaged = pkg && /^(\d+\.\d+\.\d+)/.exec(pkg)?.[1];
  if (packaged && older(packaged, UDP_OFFLOADS_SINCE))
    return `wireguard-go ${packaged} (Debian package ${pkg}) has no UDP offloads (they came in ${UDP_OFFLOADS_SINCE})`;
  return undefined;
}

/** The WireGuard driver. */
export class WireGuard implements TunnelDriver {
  readonly name = 'wireguard';
  private kernel: boolean | undefined;

  /** @param keyDir where private keys are written (0600) for `wg set ... private-key FILE` */
  constructor(private readonly keyDir: string) {}

  private async hasKernelModule(): Promise<boolean> {
    if (this.kernel === undefined) {
      const probe = `whprobe${process.pid % 100000}`;
      this.kernel = await run('ip', ['link', 'add', probe, 'type', 'wireguard']).then(
        async () => {
          await run('ip', ['link', 'del', probe]).catch(() => undefined);
          return true;
        },
        () => false,
      );
    }
    return this.kernel;
  }

  async available(): Promise<boolean> {
    if (await this.hasKernelModule()) return true;
    return run('wireguard-go', ['--version']).then(
      () => true,
      () => false,
    );
  }

  /** wireguard-go's own version line, and its Debian package's version where dpkg has one. */
  private async userspaceVersion(): Promise<{ version: string; pkg?: string }> {
    const version = (await run('wireguard-go', ['--version'])).stdout.split('\n')[0].trim();
    const pkg = await run('dpkg-query', ['-W', '-f=${Version}', 'wireguard-go']).then(
      (r) => r.stdout.trim() || undefined,
      () => undefined,
    );
    return { version, pkg };
  }

  /** How this host runs WireGuard: the kernel's, or wireguard-go (which version) on TUN. */
  async describe(): Promise<string> {
    if (await this.hasKernelModule()) return 'wireguard (kernel)';
    const { version, pkg } = await this.userspaceVersion().catch(() => ({
      version: 'wireguard-go, version unknown',
      pkg: undefined,
    }));
    // (the package's version too: 0.0.20231211 calls itself v0.0.20230223)
    return `wireguard (userspace ${version}${pkg ? `, Debian package ${pkg}` : ''})`;
  }

  /**
   * What keeps this host's WireGuard from full speed: nothing for the kernel's; for
   * wireguard-go, its version, and with `iface`, whether that tunnel's TUN offloads.
   */
  async shortfall(iface?: string): Promise<string | undefined> {
    if (await this.hasKernelModule()) return undefined;
    const { version, pkg } = await this.userspaceVersion();
    if (!iface) return offloadShortfall(version, undefined, pkg);
    const [link] = JSON.parse(
      (await run('ip', ['-j', '-d', 'link', 'show', 'dev', iface])).stdout,
    ) as IpLink[];
    return offloadShortfall(version, link?.linkinfo?.info_data?.vnet_hdr ?? undefined, pkg);
  }

  /** The tunnel's MTU: the underlay interface's toward the peer, less WireGuard's overhead. */
  private async mtuToward(peer: string): Promise<number> {
    try {
      const [route] = JSON.parse((await run('ip', ['-j', 'route', 'get', peer])).stdout) as {
        dev?: string;
      }[];
      if (!route?.dev) return DEFAULT_MTU;
      const [link] = JSON.parse(
        (await run('ip', ['-j', 'link', 'show', 'dev', route.dev])).stdout,
      ) as IpLink[];
      return link?.mtu ? Math.max(1280, link.mtu - OVERHEAD) : DEFAULT_MTU;
    } catch {
      return DEFAULT_MTU; // (the build goes on: the route is checked again by the handshake)
    }
  }

  keyPair(): [string, string] {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('x25519');
    const priv = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32).toString('base64');
    const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    return [priv, pub];
  }

  async create(s: TunnelSide): Promise<void> {
    if (await this.hasKernelModule()) await run('ip', ['link', 'add', s.iface, 'type', 'wireguard']);
    else await run('wireguard-go', [s.iface]);
    await buildOrUndo(this, s.iface, async () => {
      fs.mkdirSync(this.keyDir, { recursive: true, mode: 0o700 });
      const keyFile = path.join(this.keyDir, `${s.iface}.key`);
      fs.writeFileSync(keyFile, `${s.privateKey}\n`, { mode: 0o600 });
      await run('wg', [
        'set',
        s.iface,
        'listen-port',
        String(s.localPort),
        'private-key',
        keyFile,
        'peer',
        s.peerPublicKey,
        'allowed-ips',
        `${s.remoteIp}/32`,
        'endpoint',
        `${s.peerAddress}:${s.peerPort}`,
        'persistent-keepalive',
        '25',
      ]);
      await run('ip', ['addr', 'add', `${s.localIp}/32`, 'peer', `${s.remoteIp}/32`, 'dev', s.iface]);
      // A veth or Ethernet of 1500 gives 1440, not wg-quick's 1420: 20 bytes more a packet.
      const mtu = String(await this.mtuToward(s.peerAddress));
      await run('ip', ['link', 'set', s.iface, 'mtu', mtu, 'up']);
    });
  }

  async delete(iface: string): Promise<void> {
    if (!IFACE_PATTERN.test(iface))
      throw new WormholeError('TUNNEL_INVALID', `${iface} is not a wormhole tunnel interface`);
    await run('ip', ['link', 'del', iface]).catch((err: WormholeError) => {
      if (!/Cannot find device|does not exist/.test(err.message)) throw err;
    });
    fs.rmSync(path.join(this.keyDir, `${iface}.key`), { force: true });
    // wireguard-go exits when its TUN goes; its control socket may stay behind
    fs.rmSync(path.join('/var/run/wireguard', `${iface}.sock`), { force: true });
  }

  async list(): Promise<FoundTunnel[]> {
    // (WireGuard's: the kernel's type, or wireguard-go's TUN; not an IPsec tunnel's dummy)
    const links = (JSON.parse((await run('ip', ['-j', '-d', 'link', 'show'])).stdout) as IpLink[]).filter(
      (l) => l.linkinfo?.info_kind === 'wireguard' || l.linkinfo?.info_kind === 'tun',
    );
    const addrs = JSON.parse((await run('ip', ['-j', 'addr', 'show'])).stdout) as IpAddr[];
    const found: FoundTunnel[] = [];
    for (const link of links.filter((l) => IFACE_PATTERN.test(l.ifname))) {
      const v4 = addrs.find((a) => a.ifname === link.ifname)?.addr_info?.find((i) => i.family === 'inet');
      // `wg show IFACE dump`: the interface's line (private key, public key, listen port,
      // fwmark), then a line per peer (public key, psk, endpoint, allowed ips, ...), tabbed
      const [own, peer] = await run('wg', ['show', link.ifname, 'dump']).then(
        (r) => r.stdout.split('\n').map((l) => l.split('\t')),
        () => [],
      );
      const endpoint = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(peer?.[2] ?? '');
      const up = link.flags?.includes('UP') ?? false;
      found.push({
        iface: link.ifname,
        localIp: v4?.local,
        remoteIp: v4?.address,
        complete: up && v4?.address !== undefined && peer !== undefined && peer.length > 3,
        peerAddress: endpoint?.[1],
        peerPort: endpoint ? Number(endpoint[2]) : undefined,
        localPort: own?.[2] ? Number(own[2]) : undefined,
      });
    }
    return found;
  }
}
