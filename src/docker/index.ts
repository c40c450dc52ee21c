/**
 * Docker behind the daemon: the Docker Engine API over its socket (DOCKER_HOST honoured),
 * through dockerode; never the docker CLI. Nothing is asked of the engine before a segment
 * needs it, so a daemon starts whether or not Docker runs.
 *
 * Containers a daemon starts carry its owner label (and their segment's), so that they are
 * removed with their segment, when the daemon stops, and, after a crash, when it starts again.
 */
import * as fs from 'node:fs';
import type Dockerode from 'dockerode';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerLocation, ContainerRuntime, ContainerWatcher, LabelledContainer } from './runtime';
import { type RunSpec, parseRunArgs } from './args';
import { checkBinds, writableSources } from './binds';
import { EngineClient } from './client';
import { isContainerRef, isStateConflict, statusOf, demuxLogs } from './engineapi';
import { watchContainers } from './events';
import { Images } from './images';
import { EngineProbes } from './probes';

export { isImageReference, parseRunArgs, type RunSpec } from './args';
export { resolveAllowedDirs } from './binds';

/** Label keys wormhole puts on the containers it starts. */
export const OWNER_LABEL = 'wormhole.owner';
export const SEGMENT_LABEL = 'wormhole.segment';
/** Which action of the segment ran the container (`init/2`, `trigger/0`). */
export const STEP_LABEL = 'wormhole.step';

export { DEFAULT_DOCKER_HOST, PODMAN_HOST } from './host';

/** How long a stop may take: the engine's own wait is the container's stop timeout. */
const STOP_LIMIT_MS = 10 * 60_000;

export interface DockerOptions {
  /** Override of ordinary calls' time limit (not pulls, which take what they take). */
  callTimeoutMs?: number;
  /** Host directories binds may come from (resolved by resolveAllowedDirs); none by default. */
  allowBind?: string[];
}

/** The daemon's container runtime: one per daemon, owned by its owner id. */
export class Docker implements ContainerRuntime {
  /** The Engine API client (src/docker/client.ts). */
  private readonly engine: EngineClient;
  private readonly allowBind: string[];
  /** `ready health|exec`'s questions (probes.ts). */
  readonly probes: EngineProbes;
  /** Its images, pulled through its own client, time limit, errors and log. */
  private readonly images = new Images({
    api: () => this.engine.api(),
    timed: () => this.engine.timed(),
    failure: (err, what) => this.engine.failure(err, what),
    log: () => this.log,
  });
  /**
   * Set when this daemon took over from another: a container that one ran for a segment's
   * action is this daemon's now, found by its labels instead of run a second time.
   */
  adopt = false;

  constructor(
    private readonly log: Logger,
    /** This daemon's owner id (from its state directory). */
    private readonly ownerId: string,
    options: DockerOptions = {},
  ) {
    this.engine = new EngineClient(options.callTimeoutMs);
    this.allowBind = options.allowBind ?? [];
    this.probes = new EngineProbes(this.engine, log);
  }

  /** Whether an engine may be there to ask (nothing is connected to). */
  reachableSocket(): boolean {
    return this.engine.reachableSocket();
  }

  /** Whether this run has talked to the engine (so it may have started containers). */
  get used(): boolean {
    return this.engine.used;
  }

  /**
   * The network namespace file (`/proc/PID/ns/net`) of a running container, found by full id,
   * short id or name (`/name` too, as `docker inspect` shows it).
   */
  async namespaceOf(container: string): Promise<string> {
    return (await this.locate(container)).nsPath;
  }

  /**
   * A running container, found by full id, short id or name: its full id and name (which its
   * events carry) and its network namespace file.
   */
  async locate(container: string): Promise<ContainerLocation> {
    if (!isContainerRef(container)) {
      throw new WormholeError(
        'CONTAINER_NOT_FOUND',
        `"${container}" is not a container id or name (letters, digits, _ . -): no such container`,
      );
    }
    // A process that has just exited may still be "running" to the engine for a moment; one
    // that stays invisible runs in a PID namespace this daemon cannot see.
    let pid = 0;
    for (let attempt = 0; attempt < 10; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 100));
      const found = await this.inspectRunning(container);
      pid = found.pid;
      const nsPath = `/proc/${pid}/ns/net`;
      if (fs.existsSync(nsPath)) return { id: found.id, name: found.name, nsPath };
    }
    throw new WormholeError(
      'CONTAINER_NOT_RUNNING',
      `container ${container} runs as process ${pid}, which this daemon cannot see: run wormholed in the host's PID namespace`,
    );
  }

  /** Every container, running or not, with its name and labels (for `wormhole.NAME=PLAN`). */
  async containers(): Promise<LabelledContainer[]> {
    let found: Dockerode.ContainerInfo[];
    try {
      found = await this.engine.api().listContainers({ all: true, ...this.engine.timed() });
    } catch (err) {
      throw this.engine.failure(err, 'list containers');
    }
    return found.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
      labels: c.Labels ?? {},
      running: c.State === 'running',
    }));
  }

  /** Every running container with a label (`KEY=VALUE`), located; one that stops meanwhile is left out. */
  async withLabel(label: string): Promise<ContainerLocation[]> {
    let found: Dockerode.ContainerInfo[];
    try {
      found = await this.engine.api().listContainers({
        filters: { label: [label], status: ['running'] },
        ...this.engine.timed(),
      });
    } catch (err) {
      throw this.engine.failure(err, `list containers labelled ${label}`);
    }
    const located = await Promise.all(found.map((c) => this.locate(c.Id).catch(() => undefined)));
    return located.filter((c): c is ContainerLocation => c !== undefined);
  }

  /**
   * Follow containers as they start, die and are removed (the Engine API's event stream),
   * until the returned function is called; reconnects by itself when the engine goes away.
   */
  watch(handlers: ContainerWatcher): () => void {
    return watchContainers(() => this.engine.api(), handlers, this.log, this.engine.callTimeoutMs);
  }

  private async inspectRunning(container: string): Promise<{ id: string; name: string; pid: number }> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      // (the engine names containers "/name"; its API wants them without the slash)
      info = await this.engine.api().getContainer(container.replace(/^\//, '')).inspect(this.engine.timed());
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new WormholeError(
          'CONTAINER_NOT_FOUND',
          `container ${container} does not exist: 'docker ps' lists the running ones`,
        );
      }
      throw this.engine.failure(err, `inspect container ${container}`);
    }
    const state = info.State;
    if (state.Paused) {
      throw new WormholeError('CONTAINER_NOT_RUNNING', `container ${container} is paused: unpause it first`);
    }
    if (!state.Running || !state.Pid) {
      throw new WormholeError(
        'CONTAINER_NOT_RUNNING',
        `container ${container} is not running (${state.Status}): start it first`,
      );
    }
    return { id: info.Id, name: info.Name.replace(/^\//, ''), pid: state.Pid };
  }

  /**
   * Make sure an image is here, pulling it if not (its progress logged). A pull that fails is
   * IMAGE_UNAVAILABLE with the engine's reason.
   */
  ensureImage(image: string): Promise<void> {
    return this.images.ensure(image);
  }

  /** Check docker-run's words and have the image ready (pulled at create time for triggers). */
  async prepare(args: string[]): Promise<void> {
    const spec = parseRunArgs(args);
    await this.checkBindsNow(spec.binds);
    await this.ensureImage(spec.image);
  }

  /**
   * Check binds as they resolve now (binds.ts), before a container starts with them: against
   * --allow-bind, and against the writable binds of this daemon's other containers (all but
   * `self`), read from the engine only when there is a host path to check.
   */
  private async checkBindsNow(binds: readonly string[], self?: string): Promise<void> {
    checkBinds(binds, this.allowBind);
    if (!binds.some((b) => b.startsWith('/'))) return;
    const others = (await this.listOwned()).filter((c) => c.Id !== self);
    checkBinds(
      binds,
      this.allowBind,
      others.flatMap((c) => writableSources(c.Mounts ?? [])),
    );
  }

  /**
   * Create and start a container for a segment (labelled with this daemon's owner id and the
   * segment's id); its id and network namespace file. A container that fails to start or exits
   * at once is removed, and the error says why.
   */
  async run(
    args: RunSpec | string[],
    segmentId: string,
    step = '',
    options: { reuse?: boolean } = {},
  ): Promise<{ id: string; nsPath: string }> {
    const spec = Array.isArray(args) ? parseRunArgs(args) : args;
    // Before anything reaches the engine: a refused bind leaves nothing behind.
    await this.checkBindsNow(spec.binds);
    if (this.adopt) {
      const found = await this.adoptRunning(segmentId, step, options.reuse === true);
      if (found) return found;
    }
    await this.ensureImage(spec.image);
    let container: Dockerode.Container;
    try {
      container = await this.engine.api().createContainer({
        Image: spec.image,
        Cmd: spec.cmd.length > 0 ? spec.cmd : undefined,
        Env: spec.env,
        name: spec.name,
        Labels: {
          ...spec.labels,
          [OWNER_LABEL]: this.ownerId,
          [SEGMENT_LABEL]: segmentId,
          [STEP_LABEL]: step,
        },
        HostConfig: { Binds: spec.binds.length > 0 ? spec.binds : undefined },
        StopTimeout: spec.stopTimeout,
        ...this.engine.timed(),
      });
    } catch (err) {
      throw this.engine.failure(err, `create a container from ${spec.image}`);
    }
    try {
      try {
        await container.start(this.engine.timed());
      } catch (err) {
        throw this.engine.failure(err, `start a container from ${spec.image}`);
      }
      let nsPath: string;
      try {
        nsPath = await this.namespaceOf(container.id);
      } catch (err) {
        if (err instanceof WormholeError && err.code === 'CONTAINER_NOT_RUNNING') {
          throw await this.exitedAtOnce(container, `the container from ${spec.image}`);
        }
        throw err;
      }
      this.log.info(
        { container: container.id, image: spec.image, segment: segmentId, nsPath },
        'container started',
      );
      return { id: container.id, nsPath };
    } catch (err) {
      await this.remove(container.id).catch((e: unknown) =>
        this.log.warn(
          { container: container.id, err: errorMessage(e) },
          'could not remove a failed container',
        ),
      );
      throw err;
    }
  }

  /**
   * After a takeover: the container the daemon before this one ran for this segment's action,
   * if it still runs (then it is this daemon's now); one that stopped is removed and run anew,
   * unless `reuse` (a trigger's container stopped by idle: started again, its files kept).
   */
  private async adoptRunning(
    segmentId: string,
    step: string,
    reuse: boolean,
  ): Promise<{ id: string; nsPath: string } | undefined> {
    let found: Dockerode.ContainerInfo[];
    try {
      found = await this.engine.api().listContainers({
        all: true,
        filters: {
          label: [`${OWNER_LABEL}=${this.ownerId}`, `${SEGMENT_LABEL}=${segmentId}`, `${STEP_LABEL}=${step}`],
        },
        ...this.engine.timed(),
      });
    } catch (err) {
      throw this.engine.failure(err, 'list containers');
    }
    for (const c of found) {
      if (c.State === 'running') {
        try {
          const nsPath = await this.namespaceOf(c.Id);
          this.log.info({ container: c.Id, segment: segmentId }, 'container adopted');
          return { id: c.Id, nsPath };
        } catch {
          // it stopped meanwhile: removed below, like any other
        }
      } else if (reuse) {
        try {
          const started = await this.start(c.Id);
          this.log.info({ container: c.Id, segment: segmentId }, 'container adopted');
          return started;
        } catch (err) {
          this.log.warn(
            { container: c.Id, segment: segmentId, err: errorMessage(err) },
            'a stopped container could not be started again: running a new one',
          );
        }
      }
      await this.remove(c.Id);
    }
    return undefined;
  }

  /**
   * Start again a stopped container this daemon made (idle stopped it); its namespace file.
   * One that is running already is just found. CONTAINER_NOT_FOUND when it was removed.
   */
  async start(id: string): Promise<{ id: string; nsPath: string }> {
    if (!isContainerRef(id)) throw new WormholeError('CONTAINER_NOT_FOUND', `no container ${id}`);
    const container = this.engine.api().getContainer(id.replace(/^\//, ''));
    try {
      // a paused one (idle-action pause) is thawed: its service answers as it was, with the
      // mounts it had (nothing is mounted again, so nothing to check)
      if (await this.thawed(container)) return await this.locateStarted(id, container);
      // Docker follows a symlink in a bind's source at every start: checked again now
      const info = await container.inspect(this.engine.timed());
      await this.checkBindsNow(info.HostConfig?.Binds ?? [], info.Id);
      await container.start(this.engine.timed());
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new WormholeError(
          'CONTAINER_NOT_FOUND',
          `container ${id.slice(0, 12)} does not exist any more`,
        );
      }
      // 304: it runs already
      if (statusOf(err) !== 304) throw this.engine.failure(err, `start container ${id.slice(0, 12)}`);
    }
    return this.locateStarted(id, container);
  }

  /** Unpause `container` if it is paused; whether it was. */
  private async thawed(container: Dockerode.Container): Promise<boolean> {
    const info = await container.inspect(this.engine.timed());
    if (!info.State.Paused) return false;
    await container.unpause(this.engine.timed());
    return true;
  }

  /** A container just started (or thawed): its namespace, or why it is not running. */
  private async locateStarted(
    id: string,
    container: Dockerode.Container,
  ): Promise<{ id: string; nsPath: string }> {
    try {
      const { nsPath } = await this.locate(id);
      this.log.info({ container: id, nsPath }, 'container started again');
      return { id, nsPath };
    } catch (err) {
      if (err instanceof WormholeError && err.code === 'CONTAINER_NOT_RUNNING') {
        throw await this.exitedAtOnce(container, `container ${id.slice(0, 12)}`);
      }
      throw err;
    }
  }

  /** Pause a container (idle-action pause); one not running (stopped, gone) is left as it is. */
  async pause(id: string): Promise<void> {
    if (!isContainerRef(id)) return;
    try {
      await this.engine.api().getContainer(id.replace(/^\//, '')).pause(this.engine.timed());
      this.log.info({ container: id }, 'container paused');
    } catch (err) {
      // 404: gone; a state conflict: not running, or paused already
      if (statusOf(err) === 404 || isStateConflict(err)) return;
      throw this.engine.failure(err, `pause container ${id}`);
    }
  }

  /**
   * Stop a container (idle): the engine sends its stop signal and kills it after the
   * container's stop timeout (`--stop-timeout`, 10 s by default). Its files stay; a
   * container that is gone or stopped already is fine.
   */
  async stop(id: string): Promise<void> {
    if (!isContainerRef(id)) return;
    try {
      // (no short time limit: the engine waits for the container's own stop timeout)
      await this.engine
        .api()
        .getContainer(id.replace(/^\//, ''))
        .stop({ abortSignal: AbortSignal.timeout(STOP_LIMIT_MS) });
      this.log.info({ container: id }, 'container stopped');
    } catch (err) {
      // 304: stopped already; 404: gone
      if (statusOf(err) === 304 || statusOf(err) === 404) return;
      throw this.engine.failure(err, `stop container ${id}`);
    }
  }

  /** Remove every container of this daemon's labelled with a segment's id (its leftovers). */
  async removeFor(segmentId: string): Promise<void> {
    let found: Dockerode.ContainerInfo[];
    try {
      found = await this.engine.api().listContainers({
        all: true,
        filters: { label: [`${OWNER_LABEL}=${this.ownerId}`, `${SEGMENT_LABEL}=${segmentId}`] },
        ...this.engine.timed(),
      });
    } catch (err) {
      throw this.engine.failure(err, 'list containers');
    }
    await Promise.all(found.map((c) => this.remove(c.Id)));
  }

  /** The error for a container that stopped right after it started: its exit code and last words. */
  private async exitedAtOnce(container: Dockerode.Container, what: string): Promise<WormholeError> {
    let detail = '';
    try {
      const info = await container.inspect(this.engine.timed());
      detail = ` with exit code ${info.State.ExitCode}`;
      const logs = (await container.logs({
        stdout: true,
        stderr: true,
        tail: 3,
        ...this.engine.timed(),
      })) as unknown as Buffer;
      const last = demuxLogs(logs).trim().split('\n').filter(Boolean).join(' / ');
      if (last) detail += `: ${last.slice(0, 300)}`;
    } catch {
      // the reason is a nicety
    }
    return new WormholeError('CONTAINER_EXITED', `${what} stopped at once${detail}`);
  }

  /** Remove a container (forced, with its anonymous volumes); a missing one is fine. */
  async remove(id: string): Promise<void> {
    // No container has such a name; and a path with `//` or `..` would have the client
    // follow the engine's redirect elsewhere.
    if (!isContainerRef(id)) return;
    try {
      await this.engine
        .api()
        .getContainer(id.replace(/^\//, ''))
        .remove({ force: true, v: true, ...this.engine.timed() });
      this.log.info({ container: id }, 'container removed');
    } catch (err) {
      // 404: already gone; 409: its removal is already under way
      if (statusOf(err) === 404 || statusOf(err) === 409) return;
      throw this.engine.failure(err, `remove container ${id}`);
    }
  }

  /** Every container that carries this daemon's owner label, running or not. */
  private async listOwned(): Promise<Dockerode.ContainerInfo[]> {
    try {
      return await this.engine.api().listContainers({
        all: true,
        filters: { label: [`${OWNER_LABEL}=${this.ownerId}`] },
        ...this.engine.timed(),
      });
    } catch (err) {
      throw this.engine.failure(err, 'list containers');
    }
  }

  /**
   * Remove every container that carries this daemon's owner label: at stop, and at start for
   * the orphans of a run that crashed. Returns how many there were.
   */
  async removeOwned(): Promise<number> {
    const found = await this.listOwned();
    await Promise.all(found.map((c) => this.remove(c.Id)));
    return found.length;
  }
}
