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
import type { ContainerRuntime } from '../docker/runtime';
import type { SegmentRecord } from '../store';
import type { TunnelLink } from '../tunnel/link';

// (defined where they are implemented, below the segment: imports point down the layers)
export type {
  ContainerEvent,
  ContainerLocation,
  ContainerProbes,
  ContainerRuntime,
  ContainerWatcher,
} from '../docker/runtime';
export type { TunnelLink } from '../tunnel/link';

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
  /**
   * The same with the client's socket handed to the engine (its channel to the peer is the
   * engine's): `take` gives the fd, `first` goes before the client's bytes. False, with
   * nothing taken, when the channel is JavaScript's (then attach).
   */
  attachFd?(
    host: string,
    id: string,
    origin: Origin | undefined,
    first: Buffer | undefined,
    take: () => { fd: number; ended: (up: number, down: number, reset: boolean) => void } | undefined,
  ): Promise<boolean>;
}

/** Where segments are kept between runs of the daemon (src/store). */
export interface RecordStore {
  save(record: SegmentRecord): void;
  forget(id: string): void;
  /** Run fn with what it writes made durable together at its end, by one syncAll (syncfs) of the store's fd. */
  batch<T>(fn: () => Promise<T>, syncAll: (fd: number) => void): Promise<T>;
}

/**
 * Listening sockets a daemon handed over at takeover (wormholed --takeover), by segment id:
 * a segment built again listens on its predecessor's socket instead of binding a new one.
 */
export interface HandedSockets {
  /** The fds for this segment's head (a port range's in port order), once (undefined: bind new ones). */
  take(segmentId: string, proto: Protocol): number[] | undefined;
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
  /**
   * The key that made a segment (the manager's ownerOf): a peer holding it may have its
   * streams to the segment dialed by the engine itself (native/streamdial.c).
   */
  ownerOf?: (id: string) => string | undefined;
  /**
   * Told of each segment made or removed: once many have been, the daemon gives back the
   * memory the change left behind (src/daemon/memory.ts).
   */
  churned?: () => void;
}
