/**
 * Tunnels between this daemon and its peers: the negotiation (over the daemons' encrypted
 * channel: overlay addresses, UDP ports, keys), the record of what exists (in the state
 * directory, so tunnels outlive the daemon), and the driver (WireGuard, IPsec) that builds each side.
 */
import { createHash } from 'node:crypto';
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { z } from 'zod';
import type { Method, Params, Result, TunnelInfo } from '../api/protocol';
import { writeFileAtomic } from '../common/atomicfile';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import { run } from '../common/exec';
import type { Logger } from '../common/log';
import type { TunnelLink } from './link';
import type { TunnelDriver, TunnelSide } from './driver';
import { IPSEC_PACKAGES } from './charon';
import { Ipsec } from './ipsec';
import { type TunnelCounters, interfaceBytes, wireguardHandshake } from './counters';
import { pickPair, pickPort } from './overlay';
import { WireGuard } from './wireguard';

export type { TunnelCounters } from './counters';

/** What the service needs to ask a peer. */
export interface PeerCaller {
  call<M extends Method>(host: string, method: M, params: Params<M>): Promise<Result<M>>;
}

/** Settings from the daemon's flags. */
export interface TunnelOptions {
  stateFile: string;
  keyDir: string;
  cidr: string;
  ports: [number, number];
  internalIp?: string;
  externalIp?: string;
  /** The driver asked for (--tunnel-engine), if any. */
  driver?: 'wireguard' | 'ipsec';
  /** IPsec without kernel ESP: this daemon's charon's directory, the key its PSKs come from. */
  charonDir?: string;
  secret?: Buffer;
}

/** One tunnel as this daemon records it. */
interface TunnelRecord extends TunnelInfo {
  localPort: number;
  peerAddress: string;
  peerPort: number;
  /** False while it is being built: a record left so by a crash is removed at start. */
  built: boolean;
  /**
   * The address `host` resolved to when we built it (records a peer asked for have its
   * address as `host`): a tunnel is the peer's, whatever name it is asked by.
   */
  resolved?: string;
}

const createRequest = z.object({
  from: z.string().ip({ version: 'v4' }),
  port: z.number().int().min(1).max(65535),
  key: z.string().regex(/^[A-Za-z0-9+/=]{28,44}$/),
  used: z.array(z.string().ip({ version: 'v4' })).max(100000),
  udp: z.boolean(),
  /** The driver (by the wire's name). */
  engine: z.enum(['wireguard', 'ipsec']),
});
const createReply = z.object({
  localIp: z.string().ip({ version: 'v4' }),
  remoteIp: z.string().ip({ version: 'v4' }),
  port: z.number().int(),
  key: z.string(),
  address: z.string().ip({ version: 'v4' }),
});
const deleteRequest = z.object({ from: z.string().ip({ version: 'v4' }) });

/** A tunnel's interface name, the same whenever the same two hosts build it. */
export function ifaceName(local: string, remote: string): string {
  return `wh${createHash('sha256').update(`${local}|${remote}`).digest('hex').slice(0, 10)}`;
}

/** What is kept of a side being built (keys stay in the driver's key files). */
function toRecord(
  host: string,
  driver: string,
  s: Pick<TunnelSide, 'udp' | 'iface' | 'localIp' | 'remoteIp' | 'localPort' | 'peerAddress' | 'peerPort'>,
): TunnelRecord {
  return {
    host,
    engine: driver, // (the stored name, as in tunnel-list)
    udp: s.udp,
    iface: s.iface,
    localIp: s.localIp,
    remoteIp: s.remoteIp,
    localPort: s.localPort,
    peerAddress: s.peerAddress,
    peerPort: s.peerPort,
    built: false,
  };
}

/** The daemon's tunnels. */
export class TunnelService implements TunnelLink {
  private records = new Map<string, TunnelRecord>();
  private readonly busy = new Map<string, Promise<unknown>>();
  private readonly drivers: TunnelDriver[];
  /** Whether a driver's shortfall (wireguard-go without offloads) was said: it is, once. */
  private shortfallSaid = false;
  /** The state file was unreadable: start() rebuilds the records from the interfaces. */
  private lost = false;

  constructor(
    private readonly opts: TunnelOptions,
    private readonly peers: PeerCaller,
    private readonly log: Logger,
  ) {
    const userspace =
      opts.charonDir && opts.secret ? { charonDir: opts.charonDir, secret: opts.secret, log } : undefined;
    this.drivers = [new WireGuard(opts.keyDir), new Ipsec(userspace)];
    for (const r of this.load()) this.records.set(r.host, r);
  }

  /**
   * The tunnels the state file keeps: none when there is no file yet. A file that cannot be
   * read is not "no tunnels" (their interfaces would be left, and the next create of each
   * would fail on them): it is said in an error line and kept aside as FILE.corrupt.
   */
  private load(): TunnelRecord[] {
    const file = this.opts.stateFile;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw new WormholeError('STATE_DIR', `cannot read ${file}: ${errorMessage(err)}`);
    }
    try {
      const saved = JSON.parse(text) as unknown;
      if (Array.isArray(saved) && saved.every((r: Partial<TunnelRecord>) => typeof r?.host === 'string'))
        return saved as TunnelRecord[];
      throw new Error('not a list of tunnels');
    } catch (err) {
      const aside = `${file}.corrupt`;
      fs.renameSync(file, aside);
      this.lost = true;
      this.log.error(
        { file, keptAs: aside, err: errorMessage(err) },
        'tunnel state unreadable, kept aside: the tunnels are rebuilt from the interfaces there are',
      );
      return [];
    }
  }

  /** Write the tunnel state atomically: a crash leaves the old file or the new one. */
  private save(): void {
    writeFileAtomic(this.opts.stateFile, JSON.stringify([...this.records.values()], null, 2));
  }

  /** The driver to build with: the one asked for (--tunnel-engine), else the first available. */
  private async driver(name?: string): Promise<TunnelDriver> {
    const wanted = name ?? this.opts.driver;
    for (const e of this.drivers) {
      if (wanted && e.name !== wanted) continue;
      if (await e.available()) return e;
    }
    throw new WormholeError(
      'TUNNEL_UNAVAILABLE',
      wanted
        ? `the ${wanted} tunnel engine is not available on this host: ${wanted === 'ipsec' ? `the kernel has no ESP, and strongSwan's userspace ESP is not installed (apt-get install ${IPSEC_PACKAGES})` : 'apt-get install wireguard-go wireguard-tools'}`
        : 'no tunnel engine here: install wireguard-go and wireguard-tools (apt-get install wireguard-go wireguard-tools), or use a kernel with WireGuard or ESP',
    );
  }

  private driverNamed(name: string): TunnelDriver {
    return this.drivers.find((e) => e.name === name)!;
  }

  /**
   * Warn, once in the daemon's life, of what keeps `driver` from full speed (from what runs
   * it, or from the tunnel `iface` just built or found): wireguard-go without offloads.
   */
  private async sayShortfall(driver: TunnelDriver, iface?: string): Promise<void> {
    if (this.shortfallSaid) return;
    const lacking = await driver.shortfall(iface).catch(() => undefined);
    if (!lacking) return;
    this.shortfallSaid = true;
    this.log.warn(
      { engine: driver.name, ...(iface ? { iface } : {}) },
      `${lacking}: tunnels run at a fraction of their speed; install bookworm-backports' wireguard-go (setup.sh does)`,
    );
  }

  /** At start: say which driver runs here; keep whole tunnels, remove half-built ones. */
  async start(): Promise<void> {
    const driver = await this.driver().catch((err: WormholeError) => err);
    if (driver instanceof WormholeError) this.log.warn({ err: driver.message }, 'no tunnel engine');
    else {
      // said in the background: asking wireguard-go and dpkg its version took a tenth of a
      // second of every start (and of every restart's gap) before the daemon served
      void driver
        .describe()
        .then((engine) => {
          this.log.info({ engine }, 'tunnel engine');
          return this.sayShortfall(driver);
        })
        .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'tunnel engine not described'));
    }
    if (this.lost) await this.rebuild();
    for (const r of [...this.records.values()]) {
      const driver = this.driverNamed(r.engine);
      const found = await driver.list().catch(() => []);
      const f = found.find((x) => x.iface === r.iface);
      if (r.built && f?.complete) {
        this.log.info({ host: r.host, iface: r.iface, engine: r.engine }, 'tunnel found');
        await this.sayShortfall(driver, r.iface);
        continue;
      }
      await driver.delete(r.iface).catch(() => undefined);
      this.records.delete(r.host);
      this.log.warn({ host: r.host, iface: r.iface }, 'removed a half-built tunnel');
    }
    for (const d of this.drivers) await d.tidy?.().catch(() => undefined);
    this.save();
  }

  /** The peer's address: `host` without its port, resolved (IPv4). */
  private async addressOf(host: string): Promise<string> {
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
    if (net.isIP(name)) return name;
    return dns.lookup(name, { family: 4 }).then(
      (r) => r.address,
      () => {
        throw new WormholeError('HOST_NOT_FOUND', `cannot resolve peer host "${name}"`);
      },
    );
  }

  /**
   * The tunnel to a peer, asked by the name it was made with or by any other that resolves
   * to the same address (`myserver`, then `10.77.0.2`): one tunnel per peer.
   */
  private recordOf(host: string, address: string): TunnelRecord | undefined {
    return (
      this.records.get(host) ?? [...this.records.values()].find((r) => (r.resolved ?? r.host) === address)
    );
  }

  /**
   * The state file was lost: a record for each whole tunnel whose interface says where its
   * peer is (WireGuard's do), under the peer's address; the rest cannot be used (no record
   * of their peer) and are removed, so that the next tunnel-create to that peer can build.
   */
  private async rebuild(): Promise<void> {
    for (const driver of this.drivers) {
      const found = await driver.list().catch(() => []);
      for (const f of found) {
        const { localIp, remoteIp, peerAddress, peerPort, localPort } = f;
        if (f.complete && localIp && remoteIp && peerAddress && peerPort && localPort) {
          const side = { iface: f.iface, localIp, remoteIp, localPort, peerAddress, peerPort, udp: false };
          this.records.set(peerAddress, { ...toRecord(peerAddress, driver.name, side), built: true });
          this.log.warn(
            { host: peerAddress, iface: f.iface, engine: driver.name },
            'tunnel rebuilt from its interface',
          );
          continue;
        }
        await driver.delete(f.iface).catch(() => undefined);
        this.log.warn(
          { iface: f.iface, engine: driver.name },
          'removed a tunnel the lost state leaves unusable',
        );
      }
    }
    this.lost = false;
  }

  /** Run one change per peer (by its address) at a time. */
  private serial<T>(host: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.busy.get(host) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.busy.set(host, next);
    return next;
  }

  private async underlayToward(address: string): Promise<string> {
    if (this.opts.internalIp) return this.opts.internalIp;
    const route = await run('ip', ['-j', 'route', 'get', address]).catch(() => {
      throw new WormholeError(
        'NO_ROUTE',
        `no route to ${address} from this host: check the address, or give -I IP`,
      );
    });
    const routes = JSON.parse(route.stdout) as { prefsrc?: string }[];
    const src = routes[0]?.prefsrc;
    if (!src) throw new WormholeError('NO_ROUTE', `no route to ${address}: give this daemon -I IP`);
    return src;
  }

  /** An address of this host, as a peer would reach us: loopback, or one of our interfaces'. */
  private isOwnAddress(ip: string): boolean {
    if (ip.startsWith('127.') || ip === '0.0.0.0') return true;
    if (ip === this.opts.internalIp || ip === this.opts.externalIp) return true;
    return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === ip));
  }

  private usedIps(): string[] {
    return [...this.records.values()].map((r) => r.localIp);
  }

  private usedPorts(): number[] {
    return [...this.records.values()].map((r) => r.localPort);
  }

  /** Every built tunnel's counters, for the metrics. */
  async counters(): Promise<TunnelCounters[]> {
    const built = [...this.records.values()].filter((r) => r.built);
    return Promise.all(
      built.map(async (r) => ({
        host: r.host,
        iface: r.iface,
        driver: r.engine,
        ...((await this.driverNamed(r.engine).bytes?.(r.iface)) ?? (await interfaceBytes(r.iface))),
        lastHandshake: r.engine === 'wireguard' ? await wireguardHandshake(r.iface) : null,
      })),
    );
  }

  private info(r: TunnelRecord): TunnelInfo {
    return {
      host: r.host,
      localIp: r.localIp,
      remoteIp: r.remoteIp,
      engine: r.engine,
      udp: r.udp,
      iface: r.iface,
    };
  }

  /** Build (or find) the tunnel to a peer. */
  async ensure(host: string, udp: boolean): Promise<{ localIp: string; remoteIp: string }> {
    return this.create(host, udp);
  }

  /** tunnel-create: build the tunnel to `host`, or return the one there is. */
  async create(host: string, udp: boolean): Promise<TunnelInfo> {
    const peerAddress = await this.addressOf(host);
    return this.serial(peerAddress, async () => {
      const existing = this.recordOf(host, peerAddress);
      if (existing?.built) return this.info(existing);
      const driver = await this.driver();
      // A tunnel to ourselves would wait on its own lock (and route nothing): refuse it now.
      if (this.isOwnAddress(peerAddress)) {
        throw new WormholeError(
          'TUNNEL_TO_SELF',
          `${host} is this host (${peerAddress}): a tunnel joins two hosts, name the other one`,
        );
      }
      // Is it a peer at all (and does it share our key)? Say so before building anything.
      await this.peers.call(host, 'ping', {});
      const underlay = await this.underlayToward(peerAddress);
      const external = this.opts.externalIp ?? underlay;
      const localPort = pickPort(this.opts.ports, this.usedPorts());
      const [priv, pub] = driver.keyPair();
      const raw = await this.peers.call(host, 'peer-tunnel', {
        op: 'create',
        data: { from: external, port: localPort, key: pub, used: this.usedIps(), udp, engine: driver.name },
      });
      const parsed = createReply.safeParse(raw);
      if (!parsed.success)
        throw new WormholeError('BAD_RESPONSE', `peer ${host} answered the tunnel request malformed`);
      const reply = parsed.data;
      const side: TunnelSide = {
        iface: ifaceName(external, reply.address),
        localIp: reply.remoteIp,
        remoteIp: reply.localIp,
        localPort,
        peerAddress: reply.address,
        peerPort: reply.port,
        underlay,
        privateKey: priv,
        peerPublicKey: reply.key,
        udp,
      };
      const record = { ...toRecord(host, driver.name, side), resolved: peerAddress };
      this.records.set(host, record);
      this.save();
      try {
        await driver.create(side);
      } catch (err) {
        this.records.delete(host);
        this.save();
        await this.peers
          .call(host, 'peer-tunnel', { op: 'delete', data: { from: external } })
          .catch(() => undefined);
        throw err;
      }
      record.built = true;
      this.save();
      this.log.info(
        { host, iface: side.iface, engine: driver.name, local: side.localIp, remote: side.remoteIp },
        'tunnel created',
      );
      await this.sayShortfall(driver, side.iface);
      return this.info(record);
    });
  }

  /** tunnel-delete: remove our side and ask the peer to remove its own. */
  async delete(host: string): Promise<boolean> {
    const address = await this.addressOf(host).catch(() => host); // (a name gone from DNS: by name)
    return this.serial(address, async () => {
      const r = this.recordOf(host, address);
      if (!r) throw new WormholeError('NOT_FOUND', `no tunnel to ${host}: 'wormhole tunnel-list' shows them`);
      await this.driverNamed(r.engine).delete(r.iface);
      this.records.delete(r.host);
      this.save();
      const from = this.opts.externalIp ?? (await this.underlayToward(r.peerAddress).catch(() => ''));
      await this.peers
        .call(host, 'peer-tunnel', { op: 'delete', data: { from } })
        .catch((err: unknown) =>
          this.log.warn({ host, err: errorMessage(err) }, 'the peer did not remove its side of the tunnel'),
        );
      this.log.info({ host, iface: r.iface }, 'tunnel deleted');
      return true;
    });
  }

  async list(): Promise<TunnelInfo[]> {
    return [...this.records.values()].filter((r) => r.built).map((r) => this.info(r));
  }

  /** A peer asks us to build or remove our side of a tunnel to it. */
  async fromPeer(op: 'create' | 'delete', data: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (op === 'delete') {
      const del = deleteRequest.safeParse(data);
      if (!del.success) throw new WormholeError('BAD_REQUEST', 'malformed tunnel request from the peer');
      const { from } = del.data;
      return this.serial(from, async () => {
        const r = this.recordOf(from, from);
        if (r) {
          await this.driverNamed(r.engine).delete(r.iface);
          this.records.delete(r.host);
          this.save();
          this.log.info({ host: from, iface: r.iface }, 'tunnel deleted by the peer');
        }
        return { deleted: r !== undefined };
      });
    }
    const req = createRequest.safeParse(data);
    if (!req.success) throw new WormholeError('BAD_REQUEST', 'malformed tunnel request from the peer');
    const q = req.data;
    return this.serial(q.from, async () => {
      // (ours too, if we made one to that peer by a name: the same interface name)
      const stale = this.recordOf(q.from, q.from);
      if (stale) {
        await this.driverNamed(stale.engine)
          .delete(stale.iface)
          .catch(() => undefined);
        this.records.delete(stale.host);
      }
      const driver = await this.driver(q.engine);
      const [theirs, mine] = pickPair(this.opts.cidr, [...this.usedIps(), ...q.used]);
      const localPort = pickPort(this.opts.ports, this.usedPorts());
      const [priv, pub] = driver.name === 'ipsec' ? [q.key, q.key] : driver.keyPair();
      const underlay = await this.underlayToward(q.from);
      const external = this.opts.externalIp ?? underlay;
      const side: TunnelSide = {
        iface: ifaceName(external, q.from),
        localIp: mine,
        remoteIp: theirs,
        localPort,
        peerAddress: q.from,
        peerPort: q.port,
        underlay,
        privateKey: priv,
        peerPublicKey: q.key,
        udp: q.udp,
      };
      const record = toRecord(q.from, driver.name, side);
      this.records.set(q.from, record);
      this.save();
      await driver.create(side).catch((err: unknown) => {
        this.records.delete(q.from);
        this.save();
        throw err;
      });
      record.built = true;
      this.save();
      this.log.info(
        { host: q.from, iface: side.iface, engine: driver.name, local: mine, remote: theirs },
        'tunnel created for the peer',
      );
      await this.sayShortfall(driver, side.iface);
      return { localIp: mine, remoteIp: theirs, port: localPort, key: pub, address: external };
    });
  }
}
