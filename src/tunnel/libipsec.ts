/**
 * IPsec where the kernel has no ESP: the daemon's charon (charon.ts) negotiates each tunnel
 * over IKEv2 (a PSK derived from the daemon's key, AES-GCM, keys negotiated and rekeyed by
 * IKE) and carries its ESP itself, in UDP (port 4500) over its TUN ipsec0. A tunnel is one
 * VICI connection named like its interface, whose traffic selectors are the two overlay
 * addresses only (never the hosts' own: those would go through in clear). The overlay
 * address sits on a bridge with no ports named like the tunnel (this kernel has no dummy
 * links): it holds the address, and says the tunnel is there; charon routes the peer's
 * overlay address into ipsec0 (its table 220).
 */
import { createHmac } from 'node:crypto';
import { run } from '../common/exec';
import type { Charon } from './charon';
import type { FoundTunnel, TunnelSide } from './driver';
import { IFACE_PATTERN } from './driver';
import type { ViciClient, ViciMessage } from './vici';

/** IKE's and ESP's algorithms: AES-GCM-256; X25519 for IKE and for each rekey's fresh keys. */
const IKE_PROPOSAL = 'aes256gcm16-prfsha256-x25519';
const ESP_PROPOSAL = 'aes256gcm16-x25519';
/** The port charon carries ESP in UDP on (its default NAT-T port: one charon, all tunnels). */
const NAT_T_PORT = 4500;
/** How long an initiator waits for its tunnel: charon's own retransmits end before. */
const INITIATE_MS = '15000';

/**
 * A tunnel's PSK: the daemon's key (which both peers share) over the salt the initiator sent
 * for this tunnel through the peers' channel, so each tunnel's differs.
 */
export function tunnelPsk(secret: Buffer, salt: string): string {
  return createHmac('sha256', secret).update(`wormhole ipsec psk ${salt}`).digest('hex');
}

/**
 * The side that initiates: the one whose overlay address is the lower (the daemon that ran
 * tunnel-create; the peer's side is built first, and waits).
 */
export function initiates(s: Pick<TunnelSide, 'localIp' | 'remoteIp'>): boolean {
  const n = (ip: string): number => ip.split('.').reduce((a, p) => a * 256 + Number(p), 0);
  return n(s.localIp) < n(s.remoteIp);
}

/** The VICI `load-conn` message for one side (its connection and child named `s.iface`). */
export function connection(s: TunnelSide): ViciMessage {
  const starts = initiates(s);
  return {
    [s.iface]: {
      version: '2',
      local_addrs: [s.underlay],
      remote_addrs: [s.peerAddress],
      proposals: [IKE_PROPOSAL],
      // ESP in UDP always: userspace ESP has no raw ESP socket
      encap: 'yes',
      dpd_delay: '30s',
      // no MOBIKE: it would offer the peer this host's other addresses, overlay ones too
      mobike: 'no',
      local: { auth: 'psk', id: s.localIp },
      remote: { auth: 'psk', id: s.remoteIp },
      children: {
        [s.iface]: {
          local_ts: [`${s.localIp}/32`],
          remote_ts: [`${s.remoteIp}/32`],
          esp_proposals: [ESP_PROPOSAL],
          mode: 'tunnel',
          // the initiator builds it again when the peer goes and comes back
          dpd_action: starts ? 'restart' : 'clear',
          close_action: starts ? 'start' : 'none',
        },
      },
    },
  };
}

interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string }[];
}

/** What `list-sas` says of one CHILD_SA (the fields read here). */
interface ChildSa {
  name?: string;
  state?: string;
  'remote-ts'?: string[];
  'bytes-in'?: string;
  'bytes-out'?: string;
}

/** What charon says of one tunnel whose CHILD_SA is installed. */
export interface InstalledChild {
  remoteIp?: string;
  peer?: string;
  port?: number;
  /** Bytes of the tunnel's inner packets, received and sent (the current CHILD_SA's). */
  rxBytes: number;
  txBytes: number;
}

/** The tunnels charon has up: interface name to its remote overlay address, peer and port. */
export function installedChildren(events: ViciMessage[]): Map<string, InstalledChild> {
  const out = new Map<string, InstalledChild>();
  for (const ev of events) {
    for (const ike of Object.values(ev)) {
      if (typeof ike !== 'object' || Array.isArray(ike)) continue;
      const children = ike['child-sas'];
      if (typeof children !== 'object' || Array.isArray(children)) continue;
      for (const c of Object.values(children) as ChildSa[]) {
        if (c.state !== 'INSTALLED' || !c.name || !IFACE_PATTERN.test(c.name)) continue;
        const peer = typeof ike['remote-host'] === 'string' ? ike['remote-host'] : undefined;
        const port = Number(ike['remote-port']);
        out.set(c.name, {
          remoteIp: c['remote-ts']?.[0]?.replace(/\/32$/, ''),
          peer,
          port: Number.isInteger(port) ? port : undefined,
          rxBytes: Number(c['bytes-in'] ?? 0) || 0,
          txBytes: Number(c['bytes-out'] ?? 0) || 0,
        });
      }
    }
  }
  return out;
}

/** Build, find and remove userspace IPsec tunnels through one charon. */
export class UserspaceIpsec {
  /** @param secret the daemon's key, which every PSK is derived from */
  constructor(
    private readonly charon: Charon,
    private readonly secret: Buffer,
  ) {}

  /** Build one side; the caller removes it if this fails. */
  async create(s: TunnelSide): Promise<void> {
    const vici = await this.charon.session();
    await run('ip', ['link', 'add', s.iface, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${s.localIp}/32`, 'dev', s.iface]);
    await run('ip', ['link', 'set', s.iface, 'up']);
    await vici.command('load-shared', {
      id: s.iface,
      type: 'IKE',
      data: tunnelPsk(this.secret, s.privateKey),
      owners: [s.localIp, s.remoteIp],
    });
    await vici.command('load-conn', connection(s));
    if (initiates(s)) await vici.command('initiate', { child: s.iface, ike: s.iface, timeout: INITIATE_MS });
  }

  /** Remove one side: its SAs, connection, PSK and interface; charon too after the last. */
  async delete(iface: string): Promise<void> {
    const vici = await this.charon.running().catch(() => undefined);
    if (vici) {
      await vici.command('terminate', { ike: iface, timeout: '3000' }).catch(() => undefined);
      await vici.command('unload-conn', { name: iface }).catch(() => undefined);
      await vici.command('unload-shared', { id: iface }).catch(() => undefined);
    }
    await run('ip', ['link', 'del', iface]).catch(() => undefined);
    await this.tidy();
  }

  /** Whether this daemon's charon runs. */
  charonRuns(): boolean {
    return this.charon.pid() !== undefined;
  }

  /** Stop charon when it has no tunnel left (it holds UDP 500 and 4500, and ipsec0). */
  async tidy(): Promise<void> {
    const vici = await this.charon.running().catch(() => undefined);
    if (vici && (await this.connections(vici)).length === 0) await this.charon.stop();
  }

  private async connections(vici: ViciClient): Promise<string[]> {
    const { events } = await vici.request('list-conns', {}, 'list-conn');
    return events.flatMap((e) => Object.keys(e));
  }

  /** The tunnels charon has up (none when it does not run). */
  private async installed(): Promise<Map<string, InstalledChild>> {
    const vici = await this.charon.running().catch(() => undefined);
    if (!vici) return new Map();
    return installedChildren((await vici.request('list-sas', {}, 'list-sa')).events);
  }

  /** A tunnel's bytes, from charon (its bridge carries none): undefined when it is not up. */
  async bytes(iface: string): Promise<{ txBytes: number; rxBytes: number } | undefined> {
    const sa = (await this.installed().catch(() => undefined))?.get(iface);
    return sa && { txBytes: sa.txBytes, rxBytes: sa.rxBytes };
  }

  /** Our bridges, each complete when charon has its CHILD_SA installed. */
  async list(): Promise<FoundTunnel[]> {
    const addrs = JSON.parse((await run('ip', ['-j', 'addr', 'show', 'type', 'bridge'])).stdout) as IpAddr[];
    const up = await this.installed();
    return addrs
      .filter((a) => IFACE_PATTERN.test(a.ifname))
      .map((a) => {
        const sa = up.get(a.ifname);
        return {
          iface: a.ifname,
          localIp: a.addr_info?.find((i) => i.family === 'inet')?.local,
          remoteIp: sa?.remoteIp,
          complete: sa !== undefined,
          peerAddress: sa?.peer,
          peerPort: sa?.port,
          localPort: sa ? NAT_T_PORT : undefined,
        };
      });
  }
}
