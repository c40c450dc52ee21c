/**
 * IPsec, the original wormhole's tunnel driver. Where the kernel has ESP: ESP in tunnel mode
 * between the two hosts' underlay addresses (ESP in UDP for --udp), AES-GCM, set up with
 * `ip xfrm` state and policy, the overlay address on a dummy interface named like the
 * tunnel; `available()` finds out by adding a throwaway state in a scratch namespace. Where
 * it has none (these machines): strongSwan's charon with its userspace ESP (libipsec.ts).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { run } from '../common/exec';
import { WormholeError } from '../common/errors';
import type { Logger } from '../common/log';
import { CHARON, Charon, LIBIPSEC_PLUGIN } from './charon';
import { type FoundTunnel, IFACE_PATTERN, type TunnelDriver, type TunnelSide, buildOrUndo } from './driver';
import { UserspaceIpsec } from './libipsec';

const AEAD = 'rfc4106(gcm(aes))';

function ipInt(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/** The SPI of traffic sent by the host with overlay address `ip`: both sides agree on it. */
export function spiFor(ip: string): string {
  return `0x${(0x1000000 + (ipInt(ip) % 0xffffff)).toString(16)}`;
}

/** The reqid tying a tunnel's states and policies together, from its interface name. */
export function reqidFor(iface: string): string {
  return String(parseInt(iface.slice(2, 8), 16));
}

/** `xfrm state add` for one direction of ESP in tunnel mode with AES-GCM (argv for `ip`). */
function espState(src: string, dst: string, spi: string, key: string, reqid: string[] = []): string[] {
  return [
    'xfrm',
    'state',
    'add',
    'src',
    src,
    'dst',
    dst,
    'proto',
    'esp',
    'spi',
    spi,
    ...reqid,
    'mode',
    'tunnel',
    'aead',
    AEAD,
    key,
    '128',
  ];
}

/** Every command that builds one side, in order (argv arrays for `ip`). */
export function ipsecCommands(s: TunnelSide): string[][] {
  const reqid = reqidFor(s.iface);
  const key = `0x${Buffer.from(s.privateKey, 'base64').toString('hex')}`;
  const encap = (sport: number, dport: number): string[] =>
    s.udp ? ['encap', 'espinudp', String(sport), String(dport), '0.0.0.0'] : [];
  const state = (src: string, dst: string, spi: string, sport: number, dport: number): string[] => [
    ...espState(src, dst, spi, key, ['reqid', reqid]),
    ...encap(sport, dport),
  ];
  const policy = (src: string, dst: string, dir: string, tsrc: string, tdst: string): string[] => [
    'xfrm',
    'policy',
    'add',
    'src',
    `${src}/32`,
    'dst',
    `${dst}/32`,
    'dir',
    dir,
    'tmpl',
    'src',
    tsrc,
    'dst',
    tdst,
    'proto',
    'esp',
    'reqid',
    reqid,
    'mode',
    'tunnel',
  ];
  return [
    ['link', 'add', s.iface, 'type', 'dummy'],
    ['addr', 'add', `${s.localIp}/32`, 'dev', s.iface],
    ['link', 'set', s.iface, 'up'],
    state(s.underlay, s.peerAddress, spiFor(s.localIp), s.localPort, s.peerPort),
    state(s.peerAddress, s.underlay, spiFor(s.remoteIp), s.peerPort, s.localPort),
    policy(s.localIp, s.remoteIp, 'out', s.underlay, s.peerAddress),
    policy(s.remoteIp, s.localIp, 'in', s.peerAddress, s.underlay),
    policy(s.remoteIp, s.localIp, 'fwd', s.peerAddress, s.underlay),
    ['route', 'add', `${s.remoteIp}/32`, 'dev', s.iface, 'src', s.localIp],
  ];
}

/** A policy as `ip xfrm policy` prints it. */
export interface XfrmPolicy {
  src: string;
  dst: string;
  dir: string;
  reqid?: string;
}

/** Parse the text of `ip xfrm policy` (this iproute2 has no JSON for xfrm). */
export function parsePolicies(text: string): XfrmPolicy[] {
  const out: XfrmPolicy[] = [];
  let cur: XfrmPolicy | undefined;
  for (const line of text.split('\n')) {
    const head = /^src (\S+) dst (\S+)/.exec(line);
    if (head) {
      cur = { src: head[1].replace(/\/32$/, ''), dst: head[2].replace(/\/32$/, ''), dir: '' };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const dir = /^\s+dir (\S+)/.exec(line);
    if (dir) cur.dir = dir[1];
    const reqid = /reqid (\d+)/.exec(line);
    if (reqid) cur.reqid = reqid[1];
  }
  return out;
}

/** What userspace IPsec needs: charon's directory and the daemon's key (its PSKs' root). */
export interface UserspaceOptions {
  charonDir: string;
  secret: Buffer;
  /** Where charon's own events (its sockets' buffers) are said. */
  log?: Logger;
}

/** Is strongSwan's userspace ESP installed (charon, its kernel-libipsec plugin, bwrap)? */
async function userspaceInstalled(): Promise<boolean> {
  if (!fs.existsSync(CHARON) || !fs.existsSync(LIBIPSEC_PLUGIN)) return false;
  return run('bwrap', ['--version']).then(
    () => true,
    () => false,
  );
}

/** The IPsec driver: the kernel's ESP where there is one, else charon's userspace ESP. */
export class Ipsec implements TunnelDriver {
  readonly name = 'ipsec';
  private probed: boolean | undefined;
  private readonly userspace: UserspaceIpsec | undefined;

  /** @param userspace where and with what key to run charon; without it, kernel ESP only */
  constructor(userspace?: UserspaceOptions) {
    if (userspace)
      this.userspace = new UserspaceIpsec(new Charon(userspace.charonDir, userspace.log), userspace.secret);
  }

  /** Whether the kernel has ESP (a throwaway state in a scratch namespace is accepted). */
  async kernelEsp(): Promise<boolean> {
    if (this.probed === undefined) {
      const ns = `whesp${process.pid % 100000}`;
      await run('ip', ['netns', 'add', ns]).catch(() => undefined);
      const key = `0x${'11'.repeat(20)}`;
      this.probed = await run('ip', ['-n', ns, ...espState('192.0.2.1', '192.0.2.2', '0x100', key)]).then(
        () => true,
        () => false,
      );
      await run('ip', ['netns', 'delete', ns]).catch(() => undefined);
    }
    return this.probed;
  }

  async available(): Promise<boolean> {
    return (await this.kernelEsp()) || (this.userspace !== undefined && (await userspaceInstalled()));
  }

  /** The charon to use: none where the kernel has ESP. */
  private async charon(): Promise<UserspaceIpsec | undefined> {
    return (await this.kernelEsp()) ? undefined : this.userspace;
  }

  async describe(): Promise<string> {
    if (await this.kernelEsp()) return 'ipsec (kernel xfrm, ESP tunnel mode, AES-GCM)';
    const version = await run('dpkg-query', ['-W', '-f=${Version}', 'strongswan-charon']).then(
      (r) => r.stdout.trim(),
      () => 'version unknown',
    );
    return `ipsec (strongSwan charon ${version}, userspace ESP in UDP over TUN: the kernel has no ESP; IKEv2, AES-GCM)`;
  }

  /** The kernel's ESP has nothing to lack. */
  async shortfall(): Promise<string | undefined> {
    return undefined;
  }

  /**
   * IPsec uses one shared key for both directions: the "public" half is the same key (the
   * kernel's ESP key; for charon, the salt of the tunnel's PSK).
   */
  keyPair(): [string, string] {
    const key = randomBytes(20).toString('base64');
    return [key, key];
  }

  async create(s: TunnelSide): Promise<void> {
    const userspace = await this.charon();
    await buildOrUndo(this, s.iface, async () => {
      if (userspace) return userspace.create(s);
      for (const argv of ipsecCommands(s)) await run('ip', argv);
    });
  }

  async delete(iface: string): Promise<void> {
    if (!IFACE_PATTERN.test(iface))
      throw new WormholeError('TUNNEL_INVALID', `${iface} is not a wormhole tunnel interface`);
    const userspace = await this.charon();
    if (userspace) return userspace.delete(iface);
    const reqid = reqidFor(iface);
    const policies = parsePolicies((await run('ip', ['xfrm', 'policy'])).stdout).filter(
      (p) => p.reqid === reqid,
    );
    for (const p of policies) {
      await run('ip', [
        'xfrm',
        'policy',
        'delete',
        'src',
        `${p.src}/32`,
        'dst',
        `${p.dst}/32`,
        'dir',
        p.dir,
      ]).catch(() => undefined);
    }
    await run('ip', ['xfrm', 'state', 'deleteall', 'reqid', reqid]).catch(() => undefined);
    await run('ip', ['link', 'del', iface]).catch(() => undefined);
  }

  async bytes(iface: string): Promise<{ txBytes: number; rxBytes: number } | undefined> {
    return (await this.charon())?.bytes(iface);
  }

  async tidy(): Promise<void> {
    // (no charon, nothing to tidy: the kernel's ESP is not probed at every start for it)
    if (this.userspace?.charonRuns()) await (await this.charon())?.tidy();
  }

  async list(): Promise<FoundTunnel[]> {
    const userspace = await this.charon();
    if (userspace) return userspace.list();
    const links = JSON.parse((await run('ip', ['-j', 'link', 'show', 'type', 'dummy'])).stdout) as {
      ifname: string;
    }[];
    const policies = parsePolicies((await run('ip', ['xfrm', 'policy'])).stdout);
    return links
      .filter((l) => IFACE_PATTERN.test(l.ifname))
      .map((l) => {
        const mine = policies.filter((p) => p.reqid === reqidFor(l.ifname));
        const out = mine.find((p) => p.dir === 'out');
        return { iface: l.ifname, localIp: out?.src, remoteIp: out?.dst, complete: mine.length === 3 };
      });
  }
}
