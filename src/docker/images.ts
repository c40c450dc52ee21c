/**
 * Images for docker-run: found, or pulled once however many callers wait for them (the pull's
 * progress logged, a line per layer and status change and a running one every few seconds).
 */
import type Dockerode from 'dockerode';
import { WormholeError } from '../common/errors';
import type { Logger } from '../common/log';
import { isImageReference } from './args';
import { engineMessage, statusOf } from './engineapi';
import { type EngineProgress, PullWatchers, progressSink } from './progress';

/** How often a pull's unchanged progress is logged again. */
const PROGRESS_EVERY_MS = 2_000;

/** What the puller needs of the runtime: its client, its call time limit, its errors, its log. */
export interface ImageHost {
  api(): Dockerode;
  timed(): { abortSignal: AbortSignal };
  failure(err: unknown, what: string): WormholeError;
  log(): Logger;
}

/** The images of one runtime, with the pulls in flight (one per image). */
export class Images {
  private readonly pulls = new Map<string, { done: Promise<void>; watchers: PullWatchers }>();

  constructor(private readonly host: ImageHost) {}

  /**
   * Make sure an image is here, pulling it if not (its progress logged, and told to the
   * request waiting for it: progress.ts). A pull that fails is IMAGE_UNAVAILABLE with the
   * engine's reason.
   */
  async ensure(image: string): Promise<void> {
    if (!isImageReference(image)) {
      throw new WormholeError('IMAGE_UNAVAILABLE', `"${image}" is not a valid image name`);
    }
    if (await this.hasImage(image)) return;
    let pull = this.pulls.get(image);
    if (!pull) {
      const watchers = new PullWatchers(image);
      pull = { done: this.pull(image, watchers).finally(() => this.pulls.delete(image)), watchers };
      this.pulls.set(image, pull);
    }
    const sink = progressSink();
    const stop = sink ? pull.watchers.add(sink) : undefined;
    try {
      await pull.done;
    } finally {
      stop?.();
    }
  }

  private async hasImage(image: string): Promise<boolean> {
    const api = this.host.api();
    try {
      // GET /images/NAME/json, as dockerode's Image.inspect, but with the time limit (which
      // that one does not pass on)
      await new Promise((resolve, reject) =>
        api.modem.dial(
          {
            path: `/images/${image}/json`,
            method: 'GET',
            abortSignal: this.host.timed().abortSignal,
            statusCodes: { 200: true, 404: 'no such image', 500: 'server error' },
          },
          (err: unknown, data: unknown) => (err ? reject(err) : resolve(data)),
        ),
      );
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw this.host.failure(err, `inspect image ${image}`);
    }
  }

  private async pull(image: string, watchers: PullWatchers): Promise<void> {
    const api = this.host.api();
    const started = Date.now();
    this.host.log().info({ image }, 'image not here: pulling it');
    const unavailable = (why: string) =>
      new WormholeError(
        'IMAGE_UNAVAILABLE',
        `image ${image} is not here and cannot be pulled: ${why.replace(/\s*\n\s*/g, ' ').trim()}`,
      );
    let stream: NodeJS.ReadableStream;
    try {
      stream = await api.pull(image);
    } catch (err) {
      const e = this.host.failure(err, 'pull');
      if (e.code === 'DOCKER_UNAVAILABLE') throw e;
      throw unavailable(engineMessage(err));
    }
    const lastLogged = new Map<string, { status: string; at: number }>();
    await new Promise<void>((resolve, reject) => {
      api.modem.followProgress(
        stream,
        (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[] | undefined) => {
          const failed = (events ?? []).find((e) => e.error || e.errorDetail);
          if (err || failed) {
            reject(unavailable(failed?.errorDetail?.message ?? failed?.error ?? engineMessage(err)));
          } else {
            resolve();
          }
        },
        (event: EngineProgress & { progress?: string }) => {
          watchers.event(event);
          // One line per layer and status change, and a running one every few seconds.
          const layer = event.id ?? '';
          const status = event.status ?? '';
          const seen = lastLogged.get(layer);
          const now = Date.now();
          if (seen && seen.status === status && now - seen.at < PROGRESS_EVERY_MS) return;
          lastLogged.set(layer, { status, at: now });
          this.host.log().info({ image, layer: event.id, status, progress: event.progress }, 'pull progress');
        },
      );
    });
    if (!(await this.hasImage(image))) throw unavailable('the pull ended but the image is not here');
    this.host.log().info({ image, ms: Date.now() - started }, 'image pulled');
  }
}
