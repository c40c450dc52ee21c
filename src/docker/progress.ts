/**
 * A pull's progress, told to whoever waits for the image: the API request that asked for it
 * (a `create` or `apply` whose client shows the layers) runs in `withPullProgress`, and every
 * pull started or joined inside it (however deep in the segment's build) reaches its sink.
 * AsyncLocalStorage carries the sink down, so that the layers between the API and the images
 * (segments, steps, the runtime) pass nothing along; a pull shared by several requests tells
 * each of them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** One step of a pull: a layer's status (and bytes), or the image's own line (no layer). */
export interface PullProgress {
  image: string;
  /** The layer's short id, as the engine names it. */
  layer?: string;
  /** The engine's words: `Pulling fs layer`, `Downloading`, `Pull complete`, ... */
  status: string;
  /** Bytes done and in all, while a layer downloads or extracts. */
  current?: number;
  total?: number;
}

/** Who is told. */
export type ProgressSink = (p: PullProgress) => void;

/** A layer's byte counts are told at most this often; a change of status at once. */
const BYTES_EVERY_MS = 250;
/** The longest texts told (the wire's limits, src/api/protocol.ts): the engine's are cut. */
const MAX_TEXT = 1024;
const MAX_LAYER = 256;

const sinks = new AsyncLocalStorage<ProgressSink>();

/** Run `fn`, telling `sink` of every pull it waits for. */
export function withPullProgress<T>(sink: ProgressSink, fn: () => Promise<T>): Promise<T> {
  return sinks.run(sink, fn);
}

/** The sink of the request this code runs for, if it asked for progress. */
export function progressSink(): ProgressSink | undefined {
  return sinks.getStore();
}

/** An engine's pull progress event, as the Engine API streams it (Docker's and Podman's). */
export interface EngineProgress {
  id?: string;
  status?: string;
  progressDetail?: { current?: number; total?: number };
}

/**
 * The sinks waiting for one pull: each engine event is told to all of them, a layer's byte
 * counts at most every BYTES_EVERY_MS. A sink that throws is dropped (its client went away).
 */
export class PullWatchers {
  private readonly sinks = new Set<ProgressSink>();
  private readonly last = new Map<string, { status: string; at: number }>();

  constructor(private readonly image: string) {}

  /** Tell `sink` from now on; the returned function stops. */
  add(sink: ProgressSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** One event of the engine's stream. */
  event(e: EngineProgress): void {
    if (this.sinks.size === 0 || typeof e.status !== 'string') return;
    const layer = typeof e.id === 'string' ? e.id : undefined;
    const now = Date.now();
    const seen = this.last.get(layer ?? '');
    if (seen && seen.status === e.status && now - seen.at < BYTES_EVERY_MS) return;
    this.last.set(layer ?? '', { status: e.status, at: now });
    const p: PullProgress = { image: this.image.slice(0, MAX_TEXT), status: e.status.slice(0, MAX_TEXT) };
    if (layer !== undefined) p.layer = layer.slice(0, MAX_LAYER);
    const { current, total } = e.progressDetail ?? {};
    if (typeof current === 'number' && current >= 0) p.current = current;
    if (typeof total === 'number' && total > 0) p.total = total;
    for (const sink of this.sinks) {
      try {
        sink(p);
      } catch {
        this.sinks.delete(sink);
      }
    }
  }
}
