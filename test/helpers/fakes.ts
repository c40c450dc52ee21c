/**
 * Fakes of what the segment layer calls on (src/segment/context.ts), for unit tests that run
 * without namespaces, Docker or peers: an in-memory record store, a container runtime that
 * only records what it is asked, peers that answer from a table, and a context made of them
 * (no engine: the JavaScript mover carries the bytes, on the host's loopback).
 */
import { PassThrough } from 'node:stream';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import type { Params, Result } from '../../src/api/protocol';
import type {
  ContainerLocation,
  ContainerRuntime,
  ContainerWatcher,
  PeerLink,
  RecordStore,
  SegmentContext,
  TunnelLink,
} from '../../src/segment/context';
import type { SegmentRecord } from '../../src/store';

/** Records kept in a map; `writes` is every save and forget, in order (`save id`, `forget id`), and `sync` at a batch's end. */
export class MemoryStore implements RecordStore {
  readonly records = new Map<string, SegmentRecord>();
  readonly writes: string[] = [];

  save(record: SegmentRecord): void {
    this.records.set(record.id, structuredClone(record));
    this.writes.push(`save ${record.id}${record.complete ? ' complete' : ''}`);
  }

  forget(id: string): void {
    this.records.delete(id);
    this.writes.push(`forget ${id}`);
  }

  /** A batch's end is `sync` in writes (nothing is synced: the records are in memory). */
  async batch<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } finally {
      this.writes.push('sync');
    }
  }
}

/**
 * A container runtime with no containers: `running` is what it knows as running (by name),
 * `calls` what it was asked (`run ARGS`, `remove ID`...). run() makes a container named by
 * its first argument, in the host's own namespace (whose file it gives as the namespace).
 */
export class FakeContainers implements ContainerRuntime {
  readonly calls: string[] = [];
  readonly running = new Map<string, ContainerLocation>();
  private next = 1;

  prepare(args: string[]): Promise<void> {
    this.calls.push(`prepare ${args.join(' ')}`);
    return Promise.resolve();
  }

  run(args: string[], segmentId: string, step: string): Promise<{ id: string; nsPath: string }> {
    this.calls.push(`run ${args.join(' ')} for ${segmentId} ${step}`);
    const id = `c${this.next++}`.padEnd(64, '0');
    this.running.set(args[0] ?? id, { id, name: args[0] ?? id, nsPath: '/proc/self/ns/net' });
    return Promise.resolve({ id, nsPath: '/proc/self/ns/net' });
  }

  start(id: string): Promise<{ id: string; nsPath: string }> {
    this.calls.push(`start ${id}`);
    return Promise.resolve({ id, nsPath: '/proc/self/ns/net' });
  }

  stop(id: string): Promise<void> {
    this.calls.push(`stop ${id}`);
    return Promise.resolve();
  }
  pause(id: string): Promise<void> {
    this.calls.push(`pause ${id}`);
    return Promise.resolve();
  }

  removeFor(segmentId: string): Promise<void> {
    this.calls.push(`removeFor ${segmentId}`);
    return Promise.resolve();
  }

  namespaceOf(container: string): Promise<string> {
    return this.locate(container).then((c) => c.nsPath);
  }

  withLabel(): Promise<ContainerLocation[]> {
    return Promise.resolve([]);
  }

  locate(container: string): Promise<ContainerLocation> {
    const c = this.running.get(container);
    return c ? Promise.resolve(c) : Promise.reject(new Error(`no container ${container}`));
  }

  watch(_watcher: ContainerWatcher): () => void {
    return () => undefined;
  }

  remove(id: string): Promise<void> {
    this.calls.push(`remove ${id}`);
    return Promise.resolve();
  }

  /** `ready`'s probes: healthy at once, and every command exits 0 (`exec` is recorded). */
  readonly probes = {
    healthy: (id: string): Promise<void> => {
      this.calls.push(`healthy ${id}`);
      return Promise.resolve();
    },
    exec: (id: string, argv: readonly string[]): Promise<number> => {
      this.calls.push(`exec ${argv.join(' ')} in ${id}`);
      return Promise.resolve(0);
    },
  };
}

/**
 * Peers that make children in a table (`children`, by peer host then id) and answer attach
 * with one end of an in-memory stream pair (`attached` gets the other end); `calls` is what
 * they were asked. `failCreate`: the next createChild fails with it.
 */
export class FakePeers implements PeerLink {
  readonly calls: string[] = [];
  readonly children = new Map<string, Params<'peer-create'>>();
  readonly attached: Duplex[] = [];
  failCreate: Error | undefined;
  private next = 1;

  createChild(host: string, params: Params<'peer-create'>): Promise<Result<'peer-create'>> {
    this.calls.push(`create on ${host}`);
    const fail = this.failCreate;
    this.failCreate = undefined;
    if (fail) return Promise.reject(fail);
    const id = `child${this.next++}`;
    this.children.set(`${host}/${id}`, params);
    const port = params.head.port;
    return Promise.resolve({
      id,
      url: `tcp://127.0.0.1:${port}`,
      proto: params.head.proto,
      host: '127.0.0.1',
      port,
    });
  }

  deleteChild(host: string, id: string): Promise<void> {
    this.calls.push(`delete ${id} on ${host}`);
    this.children.delete(`${host}/${id}`);
    return Promise.resolve();
  }

  attach(host: string, id: string): Promise<Duplex> {
    this.calls.push(`attach ${id} on ${host}`);
    const [ours, theirs] = [new PassThrough(), new PassThrough()];
    this.attached.push(theirs);
    return Promise.resolve(ours);
  }
}

/** Tunnels that are never there. */
export const noTunnels: TunnelLink = {
  ensure: () => Promise.reject(new Error('no tunnels in this test')),
};

/** A segment context of fakes (silent log, no engine); `over` replaces any part. */
export function fakeContext(over: Partial<SegmentContext> = {}): SegmentContext & {
  store: MemoryStore;
  containers: FakeContainers;
  peers: FakePeers;
} {
  return {
    log: pino({ level: 'silent' }),
    ownerId: 'owner-under-test',
    store: new MemoryStore(),
    containers: new FakeContainers(),
    peers: new FakePeers(),
    tunnels: noTunnels,
    dialTimeoutMs: 2000,
    retryFailedMs: 60_000,
    udpIdleMs: 30_000,
    engine: null,
    maxConnections: 100,
    maxUdpSessions: 100,
    accessLog: false,
    allowUnix: [],
    ...over,
  } as SegmentContext & { store: MemoryStore; containers: FakeContainers; peers: FakePeers };
}
