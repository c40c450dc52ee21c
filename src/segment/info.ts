/**
 * A segment as `list` shows it (and top, and metrics): its state, its ends, its counters and
 * its tails' health, from what the segment hands over; nothing here is kept.
 */
import type { SegmentInfo } from '../api/protocol';
import type { GroupStats } from '../proxy/engine';
import type { TailStats } from '../proxy/head';
import { type Endpoint, describe } from './endpoint';
import type { Side } from './follow';
import { tailHealth, tcpTraffic } from './stats';
import type { ReadyInfo } from './ready';
import type { TailSet } from './tailset';

type Traffic = NonNullable<SegmentInfo['traffic']>;

/** The tail as messages and `list` name it ('' before there is one). */
export function describeTail(tail: SegmentView['tail'], tailSet: TailSet | undefined): string {
  if (!tail) return '';
  if (tail.kind === 'set') return (tailSet?.endpointsNow ?? []).map((e) => describe(e)).join(', ');
  return tail.kind === 'local' ? describe(tail.ep) : `peer ${tail.host} segment ${tail.id}`;
}

/** What the view is made from, as the segment has it now. */
export interface SegmentView {
  id: string;
  url: string;
  parent: string | null;
  remote: boolean;
  head: Endpoint;
  boundPort: number;
  /** Where its connections go: a local endpoint, a peer's segment, a set (undefined: none yet). */
  tail:
    | { kind: 'local'; ep: Endpoint }
    | { kind: 'peer'; host: string; id: string; proto: Endpoint['proto'] }
    | { kind: 'set' }
    | undefined;
  tailSet: TailSet | undefined;
  /** The tail as messages name it. */
  tailText: string;
  closed: boolean;
  /** Ends whose container is not running, with its name (undefined: none ever was). */
  down: ReadonlyMap<Side, string> | undefined;
  /** A trigger run is under way (or has ended well). */
  triggering: boolean;
  /** Idle let go of what the trigger made. */
  idle: boolean;
  /** A TCP head's counters (undefined: a UDP head). */
  tcp: { stats: GroupStats; tails: (TailStats | null)[] } | undefined;
  /** A UDP head's counters, and its sessions' upstream health. */
  udp: { traffic: Traffic; okAt: number; failedAt: number; lastError?: string };
  lastDialError: string | undefined;
  /** The trigger's runs and idle (undefined: no trigger). */
  trigger: SegmentInfo['trigger'];
  containers: readonly string[];
  /** `transparent`: the tail is dialed from the client's own address. */
  transparent: boolean;
  /** `ready`: whether the tail is ready yet, and why not. */
  ready: ReadyInfo | undefined;
}

/** The state list shows. */
function stateOf(v: SegmentView): SegmentInfo['state'] {
  if (v.closed) return 'closed';
  if (v.down?.size) return 'container-down';
  if (v.tail && v.ready && v.ready.state !== 'ready') return 'not-ready';
  if (v.tail) return 'ready';
  if (v.triggering) return 'triggering';
  return v.idle ? 'idle' : 'waiting';
}

/** The tail as list shows it: the first of a set, or the one endpoint, or the peer's segment. */
function tailOf(v: SegmentView): SegmentInfo['tail'] {
  const first = v.tail?.kind === 'set' ? v.tailSet?.endpointsNow[0] : undefined;
  const e = first ?? (v.tail?.kind === 'local' ? v.tail.ep : undefined);
  if (e)
    return {
      proto: e.proto,
      ns: e.nsLabel ?? (e.ns ? e.ns : null),
      host: e.host,
      port: e.port,
      ...(e.portEnd !== undefined ? { portEnd: e.portEnd } : {}),
      path: e.path,
      container: e.container,
    };
  if (v.tail?.kind === 'peer')
    return { proto: v.tail.proto, ns: null, host: '', port: 0, peer: `${v.tail.host}/${v.tail.id}` };
  return null;
}

/** The segment as `list` shows it. */
export function segmentInfo(v: SegmentView): SegmentInfo {
  const h = v.head;
  const stats = v.tcp?.stats;
  const traffic = stats ? tcpTraffic(stats) : v.udp.traffic;
  const [okAt, failedAt, lastError] = stats
    ? [stats.dialOkAt, stats.dialFailedAt, v.lastDialError]
    : [v.udp.okAt, v.udp.failedAt, v.udp.lastError];
  return {
    id: v.id,
    url: v.url,
    head: {
      proto: h.proto,
      ns: h.nsLabel ?? h.ns,
      host: h.host,
      port: v.boundPort,
      ...(h.portEnd !== undefined ? { portEnd: h.portEnd } : {}),
      path: h.path,
      container: h.container,
    },
    tail: tailOf(v),
    state: stateOf(v),
    parent: v.parent,
    remote: v.remote,
    ...(v.transparent ? { transparent: true } : {}),
    ...(v.ready ? { ready: v.ready } : {}),
    connections: traffic.total,
    traffic,
    refused: traffic.refused,
    trigger: v.trigger,
    tails:
      v.tail?.kind === 'set'
        ? (v.tailSet?.info(v.tcp?.tails ?? []) ?? [])
        : v.tail
          ? [tailHealth(v.tailText, okAt, failedAt, lastError)]
          : [],
    containers: [...v.containers],
    down: v.down?.size ? [...v.down].map(([end, container]) => ({ end, container })) : undefined,
  };
}
