/**
 * Containers as a segment sees them: what the daemon's runtime (Docker, index.ts) does for
 * segments, as a small interface, so that the segment layer is tested with a fake runtime.
 */

/** Where a running container is. */
export interface ContainerLocation {
  /** Its full id. */
  id: string;
  /** Its name, without the leading `/`. */
  name: string;
  /** Its network namespace file (`/proc/PID/ns/net`). */
  nsPath: string;
}

/** A container as `wormhole.NAME=PLAN` labels are read from it. */
export interface LabelledContainer {
  id: string;
  /** Its name, without the leading `/`. */
  name: string;
  labels: Record<string, string>;
  running: boolean;
}

/** Every container, labels and all (Docker's list; a fake in tests). */
export interface ContainerLister {
  containers(): Promise<LabelledContainer[]>;
}

/** What a container did: `start`, `die` or `destroy`. */
export interface ContainerEvent {
  /** Full container id. */
  id: string;
  /** Its name (without the leading `/`), when the event carries it. */
  name?: string;
  action: string;
  /** A health event's status where the engine puts it in an attribute (Podman; events.ts healthOf). */
  health?: string;
}

/**
 * What `ready health|exec` asks of a tail's container (src/segment/ready.ts). Both stop, and
 * reject with an AbortError, when `signal` aborts.
 */
export interface ContainerProbes {
  /**
   * Resolves once the container's HEALTHCHECK reports healthy, from the engine's events (its
   * state read once when the event stream is connected, then followed, not polled); `status`
   * hears each status on the way (`starting`, `unhealthy`). Rejects NO_HEALTHCHECK at once for
   * a container without one.
   */
  healthy(id: string, status: (s: string) => void, signal: AbortSignal): Promise<void>;
  /** Run `argv` in the running container (the Engine API's exec, no shell); its exit code. */
  exec(id: string, argv: readonly string[], signal: AbortSignal): Promise<number>;
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
  /** Start again (or thaw, if paused) a container this daemon made; its id and namespace file. */
  start(id: string): Promise<{ id: string; nsPath: string }>;
  /** Stop a container, keeping it (its files); a stopped or missing one is fine. */
  stop(id: string): Promise<void>;
  /**
   * Pause a container (`docker pause`: frozen, memory and namespace kept); `start` thaws it.
   * One that is not running any more is fine (the next start starts it).
   */
  pause(id: string): Promise<void>;
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
  /** `ready health|exec`'s questions to a container. */
  readonly probes: ContainerProbes;
}
