/**
 * `ready health|exec`'s questions to a tail's container, through the Engine API (never the
 * docker CLI, never a shell): is its HEALTHCHECK healthy (from the event stream, the state read
 * once when the stream is connected; not polled), and what does a command run inside it exit
 * with. The segment layer (src/segment/ready.ts) decides what to do with the answers.
 */
import type Dockerode from 'dockerode';
import { WormholeError, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { EngineClient } from './client';
import { isContainerRef, statusOf } from './engineapi';
import { HEALTH_ACTION, healthOf, watchContainers } from './events';
import type { ContainerProbes } from './runtime';

/** An exec's output, read and thrown away (only its exit code counts) until it ends. */
function drain(stream: NodeJS.ReadableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const destroy = (): void => (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    const onAbort = (): void => {
      destroy();
      reject(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', (err: Error) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    stream.resume();
  });
}

/** The probes of one daemon's engine client. */
export class EngineProbes implements ContainerProbes {
  constructor(
    private readonly engine: EngineClient,
    private readonly log: Logger,
  ) {}

  healthy(id: string, status: (s: string) => void, signal: AbortSignal): Promise<void> {
    if (!isContainerRef(id))
      return Promise.reject(new WormholeError('CONTAINER_NOT_FOUND', `no container ${id}`));
    return new Promise<void>((resolve, reject) => {
      // (set just below: finish may only run once the watch has begun, from its callbacks)
      const watch: { stop?: () => void } = {};
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        watch.stop?.();
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(String(err)));
      };
      const onAbort = (): void => finish(signal.reason);
      const seen = (s: string): void => {
        status(s);
        if (s === 'healthy') finish();
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      // The stream first, then the state: a change between the two is in the stream. At every
      // (re)connection the state is read again (events are lost while the stream is away).
      watch.stop = watchContainers(
        () => this.engine.api(),
        {
          event: (e) => {
            const s = healthOf(e);
            if (s !== undefined && e.id === id) seen(s);
          },
          // (no HEALTHCHECK: never healthy; an engine away a moment: said, and read again
          // when the stream is back)
          connected: () =>
            void this.health(id).then(seen, (err: unknown) =>
              err instanceof WormholeError && err.code === 'NO_HEALTHCHECK'
                ? finish(err)
                : status(errorMessage(err)),
            ),
        },
        this.log,
        this.engine.callTimeoutMs,
        { type: ['container'], container: [id], event: [HEALTH_ACTION] },
      );
      if (done) watch.stop();
    });
  }

  /** The container's health status now; NO_HEALTHCHECK when its image has none. */
  private async health(id: string): Promise<string> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.engine.api().getContainer(id).inspect(this.engine.timed());
    } catch (err) {
      if (statusOf(err) === 404)
        throw new WormholeError('CONTAINER_NOT_FOUND', `container ${id} does not exist`);
      throw this.engine.failure(err, `inspect container ${id}`);
    }
    const test = info.Config.Healthcheck?.Test;
    const status = info.State.Health?.Status;
    // (`HEALTHCHECK NONE`, or `--no-healthcheck`, is Test ["NONE"]: no check either)
    if (status === undefined || !test || test[0] === 'NONE')
      throw new WormholeError(
        'NO_HEALTHCHECK',
        `container ${info.Name.replace(/^\//, '')} has no HEALTHCHECK: add one to its image, or use ready banner or ready exec`,
      );
    return status;
  }

  async exec(id: string, argv: readonly string[], signal: AbortSignal): Promise<number> {
    if (!isContainerRef(id)) throw new WormholeError('CONTAINER_NOT_FOUND', `no container ${id}`);
    const what = `exec ${argv[0]} in container ${id.slice(0, 12)}`;
    try {
      const container = this.engine.api().getContainer(id);
      const exec = await container.exec({
        Cmd: [...argv],
        AttachStdout: true,
        AttachStderr: true,
        abortSignal: signal,
      } as Dockerode.ExecCreateOptions);
      // attached: the stream ends when the command has exited
      const stream = await exec.start({
        hijack: true,
        stdin: false,
        abortSignal: signal,
      } as Dockerode.ExecStartOptions);
      await drain(stream, signal);
      const info = await exec.inspect({ abortSignal: signal } as object);
      return info.ExitCode ?? -1;
    } catch (err) {
      if (signal.aborted) throw err;
      if (statusOf(err) === 404) throw new WormholeError('CONTAINER_NOT_FOUND', `${what}: no such container`);
      if (statusOf(err) === 409)
        throw new WormholeError('CONTAINER_NOT_RUNNING', `${what}: it is not running`);
      throw this.engine.failure(err, what);
    }
  }
}
