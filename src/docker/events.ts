/**
 * The Engine API's event stream (`GET /events`), for following containers as they stop and
 * start: a long-lived HTTP response carrying one JSON object per line. A watch reconnects
 * with back-off when the stream ends or fails (dockerd restarted, or not running yet), and
 * says so after every (re)connection, because events that happened while it was away are
 * lost: the follower checks what it follows again then.
 */
import { StringDecoder } from 'node:string_decoder';
import type Dockerode from 'dockerode';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerEvent, ContainerWatcher } from './runtime';

/** The container actions a watch hears of (Docker's names). */
export const WATCHED_ACTIONS = ['start', 'die', 'destroy'];

/**
 * Podman's names for them where they differ. Its compatible API filters on its own names
 * (`event=die` matches nothing: it filters on `died`), sends `die` in the events themselves,
 * and has no `destroy`: a removed container is `remove`. Docker has no container events by
 * these names, so asking for both is asking for the same three on either engine.
 */
const PODMAN_ACTIONS = new Map([
  ['died', 'die'],
  ['remove', 'destroy'],
]);

/** What a watch asks the engine to filter on: Docker's names and Podman's. */
export const FILTERED_ACTIONS = [...WATCHED_ACTIONS, ...PODMAN_ACTIONS.keys()];

/**
 * A health check's event: Docker sends the action `health_status: healthy` (and filters
 * `event=health_status` on the part before the colon). Podman's compatible API is said to send
 * `health_status` with the status in the attribute `health_status`: read too, but untested
 * here (the tests run Docker).
 */
export const HEALTH_ACTION = 'health_status';

/** The health status an event reports (`healthy`, `unhealthy`, `starting`), if it is one. */
export function healthOf(e: ContainerEvent): string | undefined {
  if (e.action.startsWith(`${HEALTH_ACTION}: `)) return e.action.slice(HEALTH_ACTION.length + 2).trim();
  return e.action === HEALTH_ACTION ? e.health : undefined;
}

/** First wait before reconnecting; doubled after each failure up to the most. */
const RETRY_FIRST_MS = 500;
const RETRY_MOST_MS = 10_000;

/**
 * Splits a byte stream into JSON lines: a chunk may carry several objects, or part of one
 * (split anywhere, even inside a UTF-8 sequence). Lines that are not a JSON object are skipped.
 */
export class JsonLines {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  /** The complete objects this chunk ends. */
  push(chunk: Buffer | string): unknown[] {
    this.rest += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const lines = this.rest.split('\n');
    this.rest = lines.pop() ?? '';
    const out: unknown[] = [];
    for (const line of lines) {
      const text = line.trim();
      if (!text) continue;
      try {
        const value: unknown = JSON.parse(text);
        if (value && typeof value === 'object') out.push(value);
      } catch {
        // not JSON: skipped, the stream goes on
      }
    }
    return out;
  }
}

/** A container event from one object of the stream, if it is one. */
export function parseContainerEvent(raw: unknown): ContainerEvent | undefined {
  const o = raw as {
    Type?: unknown;
    Action?: unknown;
    status?: unknown;
    id?: unknown;
    Actor?: { ID?: unknown; Attributes?: { name?: unknown; health_status?: unknown } };
  };
  if (o.Type !== undefined && o.Type !== 'container') return undefined;
  const action = typeof o.Action === 'string' ? o.Action : o.status;
  const id = typeof o.Actor?.ID === 'string' ? o.Actor.ID : o.id;
  if (typeof action !== 'string' || typeof id !== 'string' || !id) return undefined;
  const name = o.Actor?.Attributes?.name;
  const health = o.Actor?.Attributes?.health_status;
  return {
    id,
    action: PODMAN_ACTIONS.get(action) ?? action,
    name: typeof name === 'string' ? name.replace(/^\//, '') : undefined,
    ...(typeof health === 'string' ? { health } : {}),
  };
}

/**
 * Watch container events until the returned function is called. `api` makes (or gives) the
 * client, and may throw; `connectTimeoutMs` bounds how long the engine may take to answer the
 * request (not the stream, which is silent as long as nothing happens). Never throws, never
 * rejects: every failure is a log line and a reconnection. `filters`: the engine's event
 * filters (default: every container's start, die and destroy).
 */
export function watchContainers(
  api: () => Dockerode,
  handlers: ContainerWatcher,
  log: Logger,
  connectTimeoutMs: number,
  filters: Record<string, string[]> = { type: ['container'], event: FILTERED_ACTIONS },
): () => void {
  let stopped = false;
  let attempt: AbortController | undefined;
  let stream: NodeJS.ReadableStream | undefined;
  let retry: NodeJS.Timeout | undefined;
  let delay = RETRY_FIRST_MS;
  /** Whether the last attempt failed (so a success is worth a line in the log). */
  let lost = false;

  const again = (why: string): void => {
    stream = undefined;
    if (stopped) return;
    if (!lost) log.warn({ err: why, retryMs: delay }, 'docker event stream lost: reconnecting');
    else log.debug({ err: why, retryMs: delay }, 'docker event stream still lost');
    lost = true;
    retry = setTimeout(connect, delay);
    retry.unref();
    delay = Math.min(delay * 2, RETRY_MOST_MS);
  };

  const connect = (): void => {
    retry = undefined;
    if (stopped) return;
    const ac = new AbortController();
    attempt = ac;
    const timer = setTimeout(() => ac.abort(), connectTimeoutMs);
    timer.unref();
    let client: Dockerode;
    try {
      client = api();
    } catch (err) {
      clearTimeout(timer);
      again(errorMessage(err));
      return;
    }
    client
      .getEvents({
        filters,
        abortSignal: ac.signal,
      })
      .then(
        (s) => {
          clearTimeout(timer);
          if (stopped) {
            destroy(s);
            return;
          }
          stream = s;
          const lines = new JsonLines();
          let ended = false;
          const end = (why: string): void => {
            if (ended) return;
            ended = true;
            destroy(s);
            again(why);
          };
          s.on('data', (chunk: Buffer) => {
            for (const raw of lines.push(chunk)) {
              const ev = parseContainerEvent(raw);
              if (!ev) continue;
              try {
                handlers.event(ev);
              } catch (err) {
                log.error({ err: errorMessage(err), event: ev }, 'container event not handled');
              }
            }
          });
          s.on('error', (err: Error) => end(errorMessage(err)));
          s.on('end', () => end('the engine ended the stream'));
          s.on('close', () => end('the stream closed'));
          if (lost) log.info('docker event stream back');
          lost = false;
          delay = RETRY_FIRST_MS;
          try {
            handlers.connected();
          } catch (err) {
            log.error({ err: errorMessage(err) }, 'container resync not started');
          }
        },
        (err: unknown) => {
          clearTimeout(timer);
          again(ac.signal.aborted && !stopped ? 'the engine did not answer' : errorMessage(err));
        },
      );
  };

  connect();
  return () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(retry);
    attempt?.abort();
    if (stream) destroy(stream);
  };
}

function destroy(s: NodeJS.ReadableStream): void {
  (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}
