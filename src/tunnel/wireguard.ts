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
}
interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; address?: string; prefixlen: number }[];
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

  /** How this host runs WireGuard: the kernel's, or wireguard-go on TUN. */
  async describe(): Promise<string> {
    return (await this.hasKernelModule()) ? 'wireguard (kernel)' : 'wireguard (userspace wireguard-go)';
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
      await run('ip', ['link', 'set', s.iface, 'up']);
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
    const links = JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as IpLink[];
    const addrs = JSON.parse((await run('ip', ['-j', 'addr', 'show'])).stdout) as IpAddr[];
    const found: FoundTunnel[] = [];
    for (const link of links.filter((l) => IFACE_PATTERN.test(l.ifname))) {
      const v4 = addrs.find((a) => a.ifname === link.ifname)?.addr_info?.find((i) => i.family === 'inet');
      const peers = await run('wg', ['show', link.ifname, 'peers']).then(
        (r) => r.stdout.trim(),
        () => '',
      );
      const up = link.flags?.includes('UP') ?? false;
      found.push({
        iface: link.ifname,
        localIp: v4?.local,
        remoteIp: v4?.address,
        complete: up && v4?.address !== undefined && peers.length > 0,
      });
    }
    return found;
  }
}
