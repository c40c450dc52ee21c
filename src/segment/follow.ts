/**
 * Following containers: a segment end (head or tail) in a container's namespace stays with
 * that container when it restarts. A restarted container has a new namespace (a new process,
 * a new `/proc/PID/ns/net`), so the old one must not be used again: while the container is
 * down its ends are paused (the segment says so in `list`), and when it runs again the head
 * is bound again in the new namespace and the tail dials into it.
 *
 * The runtime's event stream says when a container starts, dies or is removed; the follower
 * watches it only while some end follows a container (Docker is never asked otherwise). It
 * decides from the container's state as the runtime reports it, not from the events alone,
 * and checks every end again whenever the stream (re)connects, since events are lost while it
 * is away. Each end's checks run one after the other, in the order the events came.
 */
import type { Disposable } from '../common/disposable';
import { type ErrorCode, WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerEvent, ContainerLocation, ContainerRuntime } from './context';

/** A segment's two ends. */
export type Side = 'head' | 'tail';

/** One end in a container, as the follower sees it; the segment does the work. */
export interface FollowedEnd {
  segment: string;
  side: Side;
  /** The user's word for the container (name, short or full id), or the id docker-run got. */
  ref: string;
  /** The container's full id when the end was made. */
  id: string;
  /** The namespace file the end is in. */
  nsPath: string;
  /** The container stopped: nothing may reach its namespace any more. */
  down(): void;
  /** The container runs again, its namespace at nsPath: follow it there (throws if it cannot). */
  up(nsPath: string): Promise<void>;
}

interface Entry {
  end: FollowedEnd;
  /** The container followed now. */
  id: string;
  /** Its name, when the user named it by name: a new container of that name is followed too. */
  name?: string;
  nsPath: string;
  running: boolean;
  /** No longer followed (the segment closed, or its tail changed). */
  gone: boolean;
  /** The end's checks, one after the other. */
  queue: Promise<void>;
}

/** What the runtime answers for a container that is not there or not running. */
const NOT_RUNNING = new Set<ErrorCode>(['CONTAINER_NOT_FOUND', 'CONTAINER_NOT_RUNNING']);

/** Follows the containers that segment ends are in; one per daemon (per segment manager). */
export class ContainerFollower {
  private readonly entries = new Set<Entry>();
  private stopWatch: (() => void) | undefined;
  private connected = false;

  constructor(
    private readonly containers: ContainerRuntime,
    private readonly log: Logger,
  ) {}

  /** Follow an end's container from now on (it runs in end.nsPath); dispose to stop. */
  follow(end: FollowedEnd): Disposable {
    const ref = end.ref.replace(/^\//, '');
    const e: Entry = {
      end,
      id: end.id,
      name: end.id.startsWith(ref) ? undefined : ref,
      nsPath: end.nsPath,
      running: true,
      gone: false,
      queue: Promise.resolve(),
    };
    this.entries.add(e);
    if (!this.stopWatch) {
      this.stopWatch = this.containers.watch({
        event: (ev) => this.onEvent(ev),
        connected: () => this.onConnected(),
      });
    } else if (this.connected) {
      // it may have stopped between being looked up and now, unheard of
      this.enqueue(e, () => this.check(e));
    }
    return {
      dispose: () => {
        if (e.gone) return;
        e.gone = true;
        this.entries.delete(e);
        if (this.entries.size === 0 && this.stopWatch) {
          this.stopWatch();
          this.stopWatch = undefined;
          this.connected = false;
        }
      },
    };
  }

  /** How many ends are followed (for tests and logs). */
  get size(): number {
    return this.entries.size;
  }

  private onConnected(): void {
    this.connected = true;
    for (const e of this.entries) this.enqueue(e, () => this.check(e));
  }

  private onEvent(ev: ContainerEvent): void {
    for (const e of this.entries) {
      if (ev.id === e.id) {
        if (ev.action === 'start') this.enqueue(e, () => this.check(e, ev.id));
        else this.enqueue(e, async () => this.markDown(e));
      } else if (ev.action === 'start' && e.name !== undefined && ev.name === e.name) {
        // a new container under the name the user gave
        this.enqueue(e, () => this.check(e, ev.id));
      }
    }
  }

  private enqueue(e: Entry, job: () => Promise<void>): void {
    e.queue = e.queue
      .then(() => (e.gone ? undefined : job()))
      .catch((err: unknown) =>
        this.log.error(
          { segment: e.end.segment, end: e.end.side, container: e.end.ref, err: errorMessage(err) },
          'following a container failed',
        ),
      );
  }

  /** The container, if it runs: the one an event named (`id`), else the one followed, else by name. */
  private async find(e: Entry, id?: string): Promise<ContainerLocation | undefined> {
    const locate = async (ref: string): Promise<ContainerLocation | undefined> => {
      try {
        return await this.containers.locate(ref);
      } catch (err) {
        if (err instanceof WormholeError && NOT_RUNNING.has(err.code)) return undefined;
        throw err;
      }
    };
    if (id !== undefined) {
      const loc = await locate(id);
      return loc && (loc.id === e.id || (e.name !== undefined && loc.name === e.name)) ? loc : undefined;
    }
    const loc = await locate(e.id);
    if (loc || e.name === undefined) return loc;
    // removed, and maybe made again under the same name (checked: a short id looks like a name)
    const byName = await locate(e.name);
    return byName?.name === e.name ? byName : undefined;
  }

  /** Bring the end in line with its container: paused while it is down, moved when it moved. */
  private async check(e: Entry, id?: string): Promise<void> {
    let loc: ContainerLocation | undefined;
    try {
      loc = await this.find(e, id);
    } catch (err) {
      // the runtime does not answer: nothing is known, nothing changes (a reconnection checks again)
      this.log.warn(
        { segment: e.end.segment, end: e.end.side, container: e.end.ref, err: errorMessage(err) },
        'cannot tell whether a followed container runs',
      );
      return;
    }
    if (e.gone) return;
    if (!loc) {
      this.markDown(e);
      return;
    }
    if (e.running && loc.id === e.id && loc.nsPath === e.nsPath) return;
    // it restarted while the events were not heard: the old namespace is gone all the same
    this.markDown(e);
    e.id = loc.id;
    const fields = {
      segment: e.end.segment,
      end: e.end.side,
      container: e.end.ref,
      id: loc.id.slice(0, 12),
      nsPath: loc.nsPath,
    };
    try {
      await e.end.up(loc.nsPath);
    } catch (err) {
      this.log.warn(
        { ...fields, err: errorMessage(err) },
        `container started again, but the ${e.end.side} cannot follow it: segment stays paused`,
      );
      return;
    }
    if (e.gone) return;
    e.nsPath = loc.nsPath;
    e.running = true;
    this.log.info(
      fields,
      e.end.side === 'head'
        ? 'container started again: head bound again in its new namespace'
        : 'container started again: tail dials into its new namespace',
    );
  }

  private markDown(e: Entry): void {
    if (!e.running || e.gone) return;
    e.running = false;
    e.end.down();
    this.log.info(
      { segment: e.end.segment, end: e.end.side, container: e.end.ref },
      'container stopped: segment paused',
    );
  }
}
