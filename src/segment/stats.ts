/**
 * What a segment reports of itself (list, top, metrics) besides where it listens: its
 * counters as the movers keep them, its trigger's runs, its tails' health; and the access
 * log line of each connection. The counters are read, never kept twice: the engine (or the
 * JavaScript mover, or the UDP relay) is where they live.
 */
import type { SegmentInfo } from '../api/protocol';
import type { Logger } from '../common/log';
import type { GroupStats } from '../proxy/engine';
import type { ConnectionEnd } from '../proxy/head';
import type { UdpCounters } from '../proxy/udp';

type Traffic = NonNullable<SegmentInfo['traffic']>;
type TriggerInfo = NonNullable<SegmentInfo['trigger']>;
type TailInfo = NonNullable<SegmentInfo['tails']>[number];

/** A TCP head's counters as the wire carries them. */
export function tcpTraffic(s: GroupStats): Traffic {
  return {
    open: s.open,
    total: s.total,
    refused: s.refused,
    bytesUp: s.bytesUp,
    bytesDown: s.bytesDown,
    dialFailures: s.dialFailures,
    lastActive: s.lastActive > 0 ? s.lastActive : null,
  };
}

/**
 * A UDP head's counters: its relay's, plus those of the relays before it (a head bound again
 * in a container's new namespace gets a new relay; its counts go on).
 */
export class UdpTotals {
  private readonly before = {
    total: 0,
    refused: 0,
    dropped: 0,
    up: 0,
    down: 0,
    bytesUp: 0,
    bytesDown: 0,
    failures: 0,
  };
  private lastActive = 0;

  /** A relay is closed: keep what it counted. */
  retire(r: UdpCounters): void {
    const b = this.before;
    b.total += r.total;
    b.refused += r.refused;
    b.dropped += r.dropped;
    b.up += r.datagramsUp;
    b.down += r.datagramsDown;
    b.bytesUp += r.bytesUp;
    b.bytesDown += r.bytesDown;
    b.failures += r.openFailures;
    this.lastActive = Math.max(this.lastActive, r.lastActive);
  }

  /** The counts so far: those kept, and those of the relays live now (the head's, a peer's sessions). */
  traffic(...live: (UdpCounters | undefined)[]): Traffic {
    const b = this.before;
    const sum = (f: (r: UdpCounters) => number): number => live.reduce((n, r) => n + (r ? f(r) : 0), 0);
    const last = Math.max(this.lastActive, ...live.map((r) => r?.lastActive ?? 0));
    return {
      open: sum((r) => r.size),
      total: b.total + sum((r) => r.total),
      refused: b.refused + sum((r) => r.refused),
      bytesUp: b.bytesUp + sum((r) => r.bytesUp),
      bytesDown: b.bytesDown + sum((r) => r.bytesDown),
      dialFailures: b.failures + sum((r) => r.openFailures),
      lastActive: last > 0 ? last : null,
      datagramsUp: b.up + sum((r) => r.datagramsUp),
      datagramsDown: b.down + sum((r) => r.datagramsDown),
      datagramsDropped: b.dropped + sum((r) => r.dropped),
      queuedBytes: sum((r) => r.queuedBytes),
    };
  }
}

/** A trigger's runs: how many, how many failed, the last one's time, duration and error. */
export class TriggerStats {
  private runs = 0;
  private failures = 0;
  private running = false;
  private last: { ms: number; at: number; error?: string } | undefined;

  /** A run starts; the returned function ends it (with the error, if it failed); once. */
  start(): (error?: string) => void {
    const started = Date.now();
    this.running = true;
    let ended = false;
    return (error) => {
      if (ended) return;
      ended = true;
      this.running = false;
      this.runs++;
      if (error !== undefined) this.failures++;
      this.last = { ms: Date.now() - started, at: Date.now(), error };
    };
  }

  /** `tailSet`: the trigger's tail is there (it ran, and nothing took it back since). */
  info(tailSet: boolean): TriggerInfo {
    const state = this.running
      ? 'running'
      : tailSet
        ? 'ran'
        : this.last?.error !== undefined
          ? 'failed'
          : 'armed';
    return {
      state,
      runs: this.runs,
      failures: this.failures,
      lastMs: this.last?.ms,
      lastAt: this.last?.at,
      lastError: this.last?.error,
    };
  }
}

/**
 * A tail's health from its last dials: up when the last one succeeded, down when it failed,
 * unknown before the first.
 */
export function tailHealth(url: string, okAt: number, failedAt: number, lastError?: string): TailInfo {
  if (okAt === 0 && failedAt === 0) return { url, health: 'unknown' };
  if (okAt >= failedAt) return { url, health: 'up' };
  return { url, health: 'down', lastError };
}

/**
 * The access log's level: info, or debug when the access log is off and the log shows
 * debug; undefined when no line would be written (and then the engine wakes no JavaScript
 * per connection).
 */
export function accessLevel(log: Logger, on: boolean): 'info' | 'debug' | undefined {
  return on ? 'info' : log.isLevelEnabled('debug') ? 'debug' : undefined;
}

/**
 * The access log's line for one proxied connection, when it ends. (A function called with
 * what it needs, not a closure kept per segment: issue 20's memory per idle segment.)
 */
export function logConnection(
  log: Logger,
  level: 'info' | 'debug',
  segment: string,
  /** Who names the tail (the segment itself). */
  tail: { tailText(): string },
  /** What a client without an address is called: `unix` behind a unix head. */
  anonymous: string,
  end: ConnectionEnd,
): void {
  log[level](
    {
      segment,
      client: end.client ?? anonymous,
      tail: tail.tailText(),
      ms: Math.round(end.ms),
      up: end.up,
      down: end.down,
      end: end.error === undefined ? 'closed' : end.error === 'ECONNRESET' ? 'reset' : end.error,
    },
    'connection',
  );
}
