/**
 * What the web view draws, made from the segments as `list --json` has them (and the tunnels
 * as `tunnel-list` has them): the topology (hosts, the namespaces and containers in them, each
 * segment's ends) and, apart, the numbers that move (state, rates, health). The page lays the
 * topology out again only when it changes; the numbers come every second without moving
 * anything. Pure functions: the daemon hands the infos over, nothing is kept here.
 */
import type { EndpointInfo, SegmentInfo, TunnelInfo } from '../api/protocol';

/** A host box: this daemon's host, or a peer a leg reaches. */
export interface ViewHost {
  id: string;
  label: string;
  local: boolean;
}

/** A box inside a host: a network namespace or a container. */
export interface ViewGroup {
  id: string;
  host: string;
  kind: 'namespace' | 'container';
  label: string;
}

/** One end: a head (where a segment listens) or a tail (where it connects). */
export interface ViewEnd {
  id: string;
  end: 'head' | 'tail';
  host: string;
  /** Its namespace or container box (null: the host's own namespace). */
  group: string | null;
  /** The namespace, container or host it lives in (the page's `data-ns`). */
  ns: string;
  label: string;
}

/** A segment: its head, its tails, and whether it crosses to another host (and how). */
export interface ViewSegment {
  id: string;
  head: string;
  tails: string[];
  leg: 'remote' | 'tunnel' | null;
  /** No tail yet: a trigger makes it (waiting, idle). */
  pending: boolean;
}

/** Everything whose change moves the drawing. */
export interface Topology {
  hosts: ViewHost[];
  groups: ViewGroup[];
  ends: ViewEnd[];
  segments: ViewSegment[];
}

/** The numbers of one segment that change without moving anything. */
export interface SegmentStats {
  /** As the page writes it: ready, not ready, waiting, triggering, idle, failed, container down, closed. */
  state: string;
  upBps: number;
  downBps: number;
  open: number;
  /** Each tail end's health, in the order of the segment's tails. */
  health: ('up' | 'down' | 'unknown')[];
  /** The trigger and idle timer, in words ('' without a trigger). */
  note: string;
}

/** The id of the host box of this daemon's own host. */
export const LOCAL_HOST = 'local';

/** A tail URL of a set, `PROTO://[NS@]ADDR`, split: its namespace, and the URL without it. */
function splitUrl(url: string): { ns: string | null; bare: string } {
  const m = /^([a-z]+:\/\/)(?:([^@/]+)@)?(.*)$/.exec(url);
  return m ? { ns: m[2] ?? null, bare: m[1] + m[3] } : { ns: null, bare: url };
}

/** An endpoint's address as a label: `host:port` or the unix path. */
function addrOf(e: EndpointInfo): string {
  if (e.proto === 'unix') return e.path ?? '';
  // (a port range: A-B)
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}${e.portEnd === undefined ? '' : `-${e.portEnd}`}`;
}

/** Durations as the page writes them: 45s, 12m, 3h. */
export function shortDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/** The trigger and the idle timer in words. */
function noteOf(s: SegmentInfo, now: number): string {
  const t = s.trigger;
  if (!t) return '';
  const words = [`trigger ${t.state} \u00d7${t.runs}`];
  if (t.failures > 0) words.push(`${t.failures} failed`);
  if (t.idleMs !== undefined) words.push(`idle ${shortDuration(t.idleMs)}`);
  if (t.idledAt !== undefined) words.push(`idled ${shortDuration(now - t.idledAt)} ago`);
  // (short: it is written under the segment's rates)
  return words.join(' \u00b7 ');
}

/** Builds the topology; ends and boxes are made once each, however many segments share them. */
class Builder {
  readonly topo: Topology = { hosts: [], groups: [], ends: [], segments: [] };
  private seen = new Set<string>();

  constructor(
    private readonly localLabel: string,
    private readonly tunnels: readonly TunnelInfo[],
  ) {
    this.host(LOCAL_HOST, localLabel, true);
  }

  private once(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    return true;
  }

  private host(id: string, label: string, local: boolean): string {
    if (this.once(`h\0${id}`)) this.topo.hosts.push({ id, label, local });
    return id;
  }

  /** The box of a namespace or container label (`docker:NAME` is a container) on a host. */
  private group(host: string, ns: string | null): { group: string | null; ns: string } {
    if (ns === null || ns === '') return { group: null, ns: host === LOCAL_HOST ? this.localLabel : host };
    const container = ns.startsWith('docker:');
    const label = container ? ns.slice('docker:'.length) : ns;
    const id = `${host}\0${ns}`;
    if (this.once(`g\0${id}`))
      this.topo.groups.push({ id, host, kind: container ? 'container' : 'namespace', label });
    return { group: id, ns: label };
  }

  private end(end: 'head' | 'tail', host: string, ns: string | null, label: string, key: string): string {
    const g = this.group(host, ns);
    // a head is its segment's own; a tail is shared by every segment that reaches it
    const id = `${end}\0${host}\0${g.group ?? ''}\0${key}`;
    if (this.once(`e\0${id}`)) this.topo.ends.push({ id, end, host, group: g.group, ns: g.ns, label });
    return id;
  }

  /** A tail's host: a peer's (a remote leg), a tunnel's far end (a tunnel leg), or this one. */
  private tailHost(t: EndpointInfo): { host: string; leg: ViewSegment['leg'] } {
    if (t.peer) {
      const host = t.peer.slice(0, t.peer.lastIndexOf('/'));
      return { host: this.host(host, host, false), leg: 'remote' };
    }
    const tunnel = this.tunnels.find((x) => x.remoteIp === t.host);
    if (tunnel) return { host: this.host(tunnel.host, tunnel.host, false), leg: 'tunnel' };
    return { host: LOCAL_HOST, leg: null };
  }

  add(s: SegmentInfo): void {
    const ns = s.head.container ? `docker:${s.head.container}` : s.head.ns;
    const head = this.end('head', LOCAL_HOST, ns, `${s.head.proto}://${addrOf(s.head)}`, s.id);
    const tails: string[] = [];
    let leg: ViewSegment['leg'] = null;
    const set = s.tails ?? [];
    if (set.length > 1) {
      // several tails: each from its URL (list --json gives the first one's fields only)
      for (const t of set) {
        const { ns: tns, bare } = splitUrl(t.url);
        tails.push(this.end('tail', LOCAL_HOST, tns, bare, bare));
      }
    } else if (s.tail) {
      const where = this.tailHost(s.tail);
      leg = where.leg;
      const tns = s.tail.container ? `docker:${s.tail.container}` : s.tail.ns;
      const label = s.tail.peer
        ? `segment ${s.tail.peer.slice(s.tail.peer.lastIndexOf('/') + 1)}`
        : `${s.tail.proto}://${addrOf(s.tail)}`;
      tails.push(this.end('tail', where.host, s.tail.peer ? null : tns, label, s.tail.peer ?? label));
    } else {
      // no tail until its trigger runs: a tail of its own, drawn as pending
      tails.push(this.end('tail', LOCAL_HOST, null, 'made by its trigger', `pending ${s.id}`));
    }
    this.topo.segments.push({ id: s.id, head, tails, leg, pending: !s.tail && set.length <= 1 });
  }
}

/** The topology of these segments (sorted by id, so that the same set gives the same drawing). */
export function topologyOf(
  segments: readonly SegmentInfo[],
  localLabel: string,
  tunnels: readonly TunnelInfo[] = [],
): Topology {
  const b = new Builder(localLabel, tunnels);
  for (const s of [...segments].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))) b.add(s);
  return b.topo;
}

/** The state as the page writes it. */
export function stateWord(state: SegmentInfo['state']): string {
  return state === 'container-down' ? 'container down' : state === 'not-ready' ? 'not ready' : state;
}

/**
 * Each segment's numbers now; rates from the bytes moved since `before` (the last tick's
 * counters, `ms` ago). A segment new since then starts at 0 B/s.
 */
export function statsOf(
  segments: readonly SegmentInfo[],
  before: ReadonlyMap<string, { up: number; down: number }>,
  ms: number,
  now = Date.now(),
): Record<string, SegmentStats> {
  const out: Record<string, SegmentStats> = {};
  for (const s of segments) {
    const t = s.traffic;
    const prev = before.get(s.id);
    const rate = (bytes: number, was: number | undefined): number =>
      was === undefined || ms <= 0 ? 0 : Math.max(0, Math.round(((bytes - was) * 1000) / ms));
    const tails = s.tails ?? [];
    out[s.id] = {
      state: stateWord(s.state),
      upBps: rate(t?.bytesUp ?? 0, prev?.up),
      downBps: rate(t?.bytesDown ?? 0, prev?.down),
      open: t?.open ?? 0,
      health: tails.length > 0 ? tails.map((x) => x.health) : ['unknown'],
      note: noteOf(s, now),
    };
  }
  return out;
}

/** The counters the next tick's rates are taken from. */
export function countersOf(segments: readonly SegmentInfo[]): Map<string, { up: number; down: number }> {
  return new Map(
    segments.map((s) => [s.id, { up: s.traffic?.bytesUp ?? 0, down: s.traffic?.bytesDown ?? 0 }]),
  );
}
