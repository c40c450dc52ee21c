/**
 * What a segment needs from the rest of the daemon, as small interfaces, so that the segment
 * layer can be tested without Docker, peers or tunnels.
 */
import type { Duplex } from 'node:stream';
import type { Params, Result } from '../api/protocol';
import type { Protocol } from '../api/url';
import type { Logger } from '../common/log';
import type { Engine } from '../proxy/engine';
import type { Origin } from '../proxy/proxyproto';
import type { SegmentRecord } from '../store';

/** Where a running container is. */
export interface ContainerLocation {
  /** Its full id. */
  id: string;
  /** Its name, without the leading `/`. */
  name: string;
  /** Its network namespace file (`/proc/PID/ns/net`). */
  nsPath: string;
}

/** What a container did: `start`, `die` or `destroy`. */
export interface ContainerEvent {
  /** Full container id. */
  id: string;
  /** Its name (without the leading `/`), when the event carries it. */
  name?: string;
  action: string;
}

/** Who hears of a watch on containers. */
export interface ContainerWatcher {
  /** A container started, died or was removed. */
  event(e: ContainerEvent): void;
  /** The watch is (again) connected: what happened while it was not is unknown. */
  connected(): void;
}

/** Containers: Docker behind the daemon. */
export interface ContainerRuntime {
  /** Check `docker-run` words and make sure the image is here (pull it), without running. */
  prepare(args: string[]): Promise<void>;
  /**
   * Create and start a container; its id and network namespace file. `step` names the action
   * within the segment, so that a daemon taking over finds the container its predecessor ran
   * (with `reuse`, one that is stopped is started again instead of made anew).
   */
  run(
    args: string[],
    segmentId: string,
    step: string,
    options?: { reuse?: boolean },
  ): Promise<{ id: string; nsPath: string }>;
  /** Start again a container this daemon made and stopped; its id and namespace file. */
  start(id: string): Promise<{ id: string; nsPath: string }>;
  /** Stop a container, keeping it (its files); a stopped or missing one is fine. */
  stop(id: string): Promise<void>;
  /** Remove every container this daemon made for a segment (idempotent). */
  removeFor(segmentId: string): Promise<void>;
  /** The network namespace file of a running container (full id, short id or name). */
  namespaceOf(container: string): Promise<string>;
  /** Every running container with the label `KEY=VALUE`, located. */
  withLabel(label: string): Promise<ContainerLocation[]>;
  /** A running container (full id, short id or name): its full id, name and namespace file. */
  locate(container: string): Promise<ContainerLocation>;
  /**
   * Hear of containers starting, dying and being removed until the returned function is
   * called. Asks nothing of the runtime before it is called; never throws.
   */
  watch(watcher: ContainerWatcher): () => void;
  /** Remove a container this daemon started (idempotent). */
  remove(id: string): Promise<void>;
}

/** Other daemons that share our key. */
export interface PeerLink {
  /** Create a segment on the peer on behalf of one of ours. */
  createChild(host: string, params: Params<'peer-create'>): Promise<Result<'peer-create'>>;
  /** Delete a segment on the peer. */
  deleteChild(host: string, id: string): Promise<void>;
  /**
   * A byte stream to the tail of the peer's segment `id`, over the encrypted channel
   * (`origin`: the proxied connection's client and head, for a tail there that wants a
   * PROXY protocol header).
   */
  attach(host: string, id: string, origin?: Origin): Promise<Duplex>;
}

/** Encrypted L3 tunnels to peers. */
export interface TunnelLink {
  /** Build (or find) the tunnel to `host`; our and its overlay addresses. */
  ensure(host: string, udp: boolean): Promise<{ localIp: string; remoteIp: string }>;
}

/** Where segments are kept between runs of the daemon (src/store). */
export interface RecordStore {
  save(record: SegmentRecord): void;
  forget(id: string): void;
}

/**
 * Listening sockets a daemon handed over at takeover (wormholed --takeover), by segment id:
 * a segment built again listens on its predecessor's socket instead of binding a new one.
 */
export interface HandedSockets {
  /** The fd for this segment's head, once (undefined: bind a new one). */
  take(segmentId: string, proto: Protocol): number | undefined;
  /** A unix head's socket file identity, as its predecessor bound it (to remove it at delete). */
  identity?(segmentId: string): string | undefined;
}

/** Everything a segment may call on. */
export interface SegmentContext {
  log: Logger;
  /** This daemon's identity (its state directory's), which its peers see in child keys. */
  ownerId: string;
  store: RecordStore;
  /** Set while a daemon takes over from another. */
  handed?: HandedSockets;
  containers: ContainerRuntime;
  peers: PeerLink;
  tunnels: TunnelLink;
  /** How long a tail is retried before a connection is given up. */
  dialTimeoutMs: number;
  /** How often segments that could not be built again at start are tried again. */
  retryFailedMs: number;
  /** How long a UDP session may be idle. */
  udpIdleMs: number;
  /** The splice engine, or null where it could not start (JavaScript moves the bytes). */
  engine: Engine | null;
  /** Open TCP connections per segment; past it a new one is refused at once. */
  maxConnections: number;
  /** UDP sessions per segment; past it a datagram from a new client address is dropped. */
  maxUdpSessions: number;
  /** One info line per proxied connection when it ends (--no-access-log turns it off). */
  accessLog: boolean;
  /**
   * The --allow-unix directories, resolved: a unix tail on the host's filesystem is dialed
   * only under one of them (src/segment/hostunix.ts); none, by default: no such tail.
   */
  allowUnix: readonly string[];
}
