/**
 * `transparent` (tail mode): the tail sees the client's own address and port as its peer,
 * with no header, TCP and UDP. The engine (TCP) and the UDP relay dial the tail from the
 * client's address (native/transparent.c), and the segment's routes in the tail's namespace
 * bring the tail's replies back to them (src/netns/policy.ts). Here: what a create is
 * refused for, the segment's mark, and the routes it holds while its tail is set.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Plan, Step } from '../api/grammar';
import { type Protocol, isStream } from '../api/url';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import {
  type TransparentRoutes,
  hasDefaultRoute,
  installTransparentRoutes,
  removeTransparentRoutes,
} from '../netns/policy';
import type { TcpHead } from '../proxy/head';
import { type Draft, type Endpoint, describe } from './endpoint';
import { streamTarget } from './streamends';

/**
 * The segment's mark (and routing table): from its id, so that a daemon started again after
 * a crash finds what the one before made. 28 bits of FNV-1a over a fixed top bit: never 0,
 * and never one of the kernel's own tables (253-255).
 */
export function transparentMark(id: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(id)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return 0x10000000 | (h & 0x0fffffff);
}

/** Is this a loopback (or any-address) host, one the kernel never routes a reply from elsewhere to? */
function loopback(host: string): boolean {
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return v4.startsWith('127.') || v4 === '0.0.0.0' || host === '::1' || host === '::';
}

/** Refuse, at create, a head and a tail that `transparent` cannot join (one line each). */
export function checkTransparentEnds(head: Endpoint, tail: Endpoint): void {
  if (head.proto === 'unix')
    throw new WormholeError(
      'UNSUPPORTED',
      'transparent needs a tcp or udp head: a unix client has no address to dial from (use proxy-protocol v2 to pass the socket name)',
    );
  if (tail.proto === 'unix')
    throw new WormholeError(
      'UNSUPPORTED',
      'transparent needs a tcp or udp tail, not unix: use proxy-protocol v2 instead',
    );
  if (loopback(tail.host))
    throw new WormholeError(
      'UNSUPPORTED',
      `transparent cannot reach a loopback tail (${describe(tail)}): the kernel sends no reply from loopback to the client's address; point the tail at the container's own address, or use proxy-protocol v2 instead`,
    );
}

/** Has a list of steps (a trigger's) `transparent` in it? */
export function isTransparent(steps: readonly Step[] | null | undefined): boolean {
  return (steps ?? []).some((s) => s.op === 'transparent');
}

/**
 * Refuse, at create, a plan whose `transparent` cannot be kept: several tails (each would
 * need its namespace's routes; not built), a segment made for a peer (its clients are the
 * other daemon, or its channel's streams: no client address to dial from), or a stream head
 * with the JavaScript mover (it does not dial from the client's address). `o.base`: the
 * head's protocol before the plan's URLs (a child's, from its parent's tail).
 */
export function checkTransparentPlan(
  plan: Plan,
  o: { base?: Protocol; engine: boolean; remote: boolean },
): void {
  const steps = [...plan.init, ...(plan.trigger ?? [])];
  if (!isTransparent(steps)) return;
  let head = o.base ?? 'tcp';
  for (const s of plan.init) if (s.op === 'url' && s.side === 'head' && s.url.proto) head = s.url.proto;
  const stream = head !== 'udp';
  if (o.remote)
    throw new WormholeError(
      'UNSUPPORTED',
      "transparent is for a local tail: through remote or tunnel the peer's segment sees only the daemons; use proxy-protocol v2 (it carries the client's address through)",
    );
  if (steps.some((s) => s.op === 'also' || s.op === 'docker-label'))
    throw new WormholeError('UNSUPPORTED', 'transparent takes one tail: not with also or docker-label');
  if (stream && !o.engine)
    throw new WormholeError(
      'UNSUPPORTED',
      'transparent needs the splice engine for tcp, and it is off here (WORMHOLE_ENGINE=off, or it could not start): use proxy-protocol v2 instead',
    );
}

/**
 * The address a transparent UDP session binds for a client (rinfo's), in the tail's family:
 * an IPv4 client on a dual-stack head is written `::ffff:a.b.c.d`.
 */
export function clientFor(tail: Endpoint, client: string): string {
  const v6tail = net.isIPv6(tail.host);
  const mapped = client.startsWith('::ffff:') && net.isIPv4(client.slice(7));
  const addr = !v6tail && mapped ? client.slice(7) : client;
  if (net.isIPv6(addr) !== v6tail)
    throw new WormholeError(
      'UNSUPPORTED',
      `transparent: the client ${client} is not of the tail's family (${describe(tail)})`,
    );
  return addr;
}

/**
 * A segment's `transparent`: whether its plan asks for it, and the routes it holds in its
 * tail's namespaces (one, or a new one after the tail's container restarted).
 */
export class TransparentRoutesHeld {
  /** By namespace and family; made at the first (most segments are not transparent: issue 20). */
  private held: Map<string, Promise<TransparentRoutes>> | undefined;
  private readonly id: string;
  /** `transparent` at create, or in the trigger's steps (for list). */
  readonly wanted: boolean;

  constructor(
    spec: { id: string; tailDrafts: readonly Draft[]; trigger: readonly Step[] | null },
    private readonly log: Logger,
  ) {
    this.id = spec.id;
    this.wanted = spec.tailDrafts.some((d) => d.transparent) || isTransparent(spec.trigger);
  }

  /**
   * Send the head's connections to a transparent tail: its routes first (the first
   * connection's SYN-ACK needs them); a stream head then dials it from each client's address.
   */
  async point(head: TcpHead | undefined, tail: Endpoint): Promise<void> {
    await this.ensure(tail);
    if (head && isStream(tail.proto)) await head.setTail(streamTarget(tail, this.mark));
  }

  /** The segment's mark. */
  get mark(): number {
    return transparentMark(this.id);
  }

  /** Make the routes for this tail's namespace and family, once (a failure is thrown, and tried again next time). */
  async ensure(tail: Endpoint): Promise<void> {
    const r: TransparentRoutes = {
      ns: tail.ns,
      family: net.isIPv6(tail.host) ? 6 : 4,
      mark: this.mark,
      tag: this.id,
    };
    const key = `${r.ns}|${r.family}`;
    const held = (this.held ??= new Map());
    let made = held.get(key);
    if (!made) {
      made = installTransparentRoutes(r).then(async () => {
        // the tail's reply is routed once before the rules take it back: it needs a way out
        if (!(await hasDefaultRoute(r.ns, r.family).catch(() => true)))
          this.log.warn(
            { segment: this.id, ns: r.ns },
            "transparent: the tail's namespace has no default route, so its replies to a client outside its own subnets cannot be sent (a container has one; add one to this namespace)",
          );
        return r;
      });
      held.set(key, made);
      made.catch(() => held.delete(key));
    }
    await made;
  }

  /** Remove every route made (a namespace gone took its own with it). Never throws. */
  async dispose(): Promise<void> {
    const all = [...(this.held?.values() ?? [])];
    this.held?.clear();
    for (const made of all) {
      const r = await made.catch(() => undefined);
      if (!r || (r.ns !== null && !fs.existsSync(r.ns))) continue;
      await removeTransparentRoutes(r).catch((err: unknown) =>
        this.log.warn(
          { segment: this.id, ns: r.ns, err: errorMessage(err) },
          'transparent routes not removed',
        ),
      );
    }
  }
}
