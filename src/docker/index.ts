/**
 * Docker behind the daemon: the Docker Engine API over its socket (DOCKER_HOST honoured),
 * through dockerode; never the docker CLI. Containers a daemon starts carry its owner label,
 * so that they are removed with their segment, when the daemon stops, and, after a crash, when
 * it starts again.
 */
import Dockerode from 'dockerode';
import { CONTAINER_PATTERN } from '../api/grammar';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerRuntime } from '../segment/context';
import { type RunSpec, parseRunArgs } from './args';

export { parseRunArgs, type RunSpec } from './args';

/** Label keys wormhole puts on the containers it starts. */
export const OWNER_LABEL = 'wormhole.owner';
export const SEGMENT_LABEL = 'wormhole.segment';

function where(): string {
  return process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Say what a failed Engine API call means, as one line a user can act on. */
function dockerError(err: unknown, what: string): WormholeError {
  if (err instanceof WormholeError) return err;
  const code = errnoCode(err);
  if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES' || code === 'ECONNRESET') {
    return new WormholeError(
      'DOCKER_UNAVAILABLE',
      `the Docker engine is not running at ${where()} (${code}): start dockerd`,
    );
  }
  const body = (err as { json?: { message?: string } }).json?.message ?? errorMessage(err);
  return new WormholeError(
    'DOCKER_FAILED',
    `${what}: ${body.replace(/^\(HTTP code \d+\) [a-z ]+ - /, '').trim()}`,
  );
}

/** The daemon's container runtime. */
export class Docker implements ContainerRuntime {
  private readonly api = new Dockerode();

  constructor(
    private readonly log: Logger,
    /** This daemon's owner id (from its state directory). */
    private readonly ownerId: string,
  ) {}

  /** The network namespace file of a running container. */
  async namespaceOf(container: string): Promise<string> {
    if (!CONTAINER_PATTERN.test(container)) {
      throw new WormholeError('CONTAINER_NOT_FOUND', `"${container}" is not a container id or name`);
    }
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.api.getContainer(container).inspect();
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new WormholeError(
          'CONTAINER_NOT_FOUND',
          `container ${container} does not exist: 'docker ps' lists the running ones`,
        );
      }
      throw dockerError(err, `inspect container ${container}`);
    }
    if (!info.State.Running || !info.State.Pid) {
      throw new WormholeError(
        'CONTAINER_NOT_RUNNING',
        `container ${container} is not running: start it first`,
      );
    }
    return `/proc/${info.State.Pid}/ns/net`;
  }

  /** Make sure an image is here, pulling it (with its progress logged) if not. */
  async ensureImage(image: string): Promise<void> {
    try {
      await this.api.getImage(image).inspect();
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw dockerError(err, `inspect image ${image}`);
    }
    this.log.info({ image }, 'pulling image');
    try {
      const stream = await this.api.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.api.modem.followProgress(
          stream,
          (err: Error | null, events: { error?: string }[]) => {
            const failed = events?.find((e) => e.error);
            if (err || failed) reject(new Error(failed?.error ?? err?.message));
            else resolve();
          },
          (event: { status?: string; progress?: string; id?: string }) =>
            this.log.debug(
              { image, status: event.status, progress: event.progress, layer: event.id },
              'pull progress',
            ),
        );
      });
    } catch (err) {
      const e = dockerError(err, 'pull');
      if (e.code === 'DOCKER_UNAVAILABLE') throw e;
      throw new WormholeError(
        'IMAGE_UNAVAILABLE',
        `image ${image} is not here and cannot be pulled: ${e.message.replace(/^pull: /, '')}`,
      );
    }
    this.log.info({ image }, 'image pulled');
  }

  /** Check docker-run's words and have the image ready. */
  async prepare(args: string[]): Promise<void> {
    await this.ensureImage(parseRunArgs(args).image);
  }

  /** Create and start a container for a segment; its id and namespace file. */
  async run(args: string[], segmentId: string): Promise<{ id: string; nsPath: string }> {
    const spec: RunSpec = parseRunArgs(args);
    await this.ensureImage(spec.image);
    let container: Dockerode.Container;
    try {
      container = await this.api.createContainer({
        Image: spec.image,
        Cmd: spec.cmd.length > 0 ? spec.cmd : undefined,
        Env: spec.env,
        name: spec.name,
        Labels: { ...spec.labels, [OWNER_LABEL]: this.ownerId, [SEGMENT_LABEL]: segmentId },
        HostConfig: { Binds: spec.binds.length > 0 ? spec.binds : undefined },
      });
    } catch (err) {
      throw dockerError(err, `create a container from ${spec.image}`);
    }
    try {
      await container.start();
      return { id: container.id, nsPath: await this.namespaceOf(container.id) };
    } catch (err) {
      await this.remove(container.id);
      throw dockerError(err, `start a container from ${spec.image}`);
    }
  }

  /** Remove a container (force; a missing one is fine). */
  async remove(id: string): Promise<void> {
    try {
      await this.api.getContainer(id).remove({ force: true });
      this.log.info({ container: id }, 'container removed');
    } catch (err) {
      if (statusOf(err) === 404 || statusOf(err) === 409) return;
      throw dockerError(err, `remove container ${id}`);
    }
  }

  /** Remove every container this daemon owns: at stop, and at start for a crashed run's orphans. */
  async removeOwned(): Promise<number> {
    const found = await this.api
      .listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=${this.ownerId}`] } })
      .catch((err: unknown) => {
        throw dockerError(err, 'list containers');
      });
    await Promise.all(found.map((c) => this.remove(c.Id)));
    return found.length;
  }
}
