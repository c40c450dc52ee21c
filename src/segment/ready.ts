/**
 * `ready health|banner|exec` (SPEC.md, "Smarter activation"): a segment's tail counts as
 * there only once the service behind it is ready, not as soon as its port accepts.
 *
 * The gate is the segment's: when a tail is set (at create, by a trigger run, after idle
 * restarted or thawed its container, when its container runs again) the gate is armed and the
 * check runs; meanwhile the head has no tail, so every new connection comes to the segment,
 * which waits at the gate (up to the dial timeout) before it dials. When the check passes the
 * segment points the head at the tail (from then the mover dials by itself) and lets the
 * waiting connections go. The data path (src/proxy, native) knows nothing of this.
 *
 * - health: the container's HEALTHCHECK says healthy (the engine's events; src/docker/probes.ts).
 *   A container with no HEALTHCHECK fails the gate at once: clients are refused with why.
 * - banner: a probe connection to the tail receives a first byte (a MySQL greeting, an SSH
 *   banner); a server that accepts and closes, or says nothing, is not ready. Tried every 200 ms.
 * - exec: the command, run in the container by the engine (no shell), exits 0. Every 200 ms.
 */
import type { ReadyCheck } from '../api/grammar';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import type { ContainerProbes, SegmentContext } from './context';
import type { Endpoint } from './endpoint';
import { streamTarget } from './streamends';

/** How often banner and exec are tried again. */
export const READY_RETRY_MS = 200;
/** How long a banner probe waits for a first byte before it tries again. */
const BANNER_WAIT_MS = 1000;

/** What list shows of the gate. */
export interface ReadyInfo {
  mode: ReadyCheck['mode'];
  /** ready; waiting (with why); failed (the check cannot pass: why). */
  state: 'ready' | 'waiting' | 'failed';
  why?: string;
}

type Waiter = { resolve: () => void; reject: (err: Error) => void };

/** One segment's ready gate. */
export class ReadyGate {
  private state: ReadyInfo['state'] = 'waiting';
  private why = 'no tail yet';
  private readonly waiters = new Set<Waiter>();
  /** The check under way (aborted when the tail changes, stops, or the segment closes). */
  private check: AbortController | undefined;

  private readonly host: { id: string; log: Logger; probes: ContainerProbes };

  constructor(
    private readonly ready: ReadyCheck,
    id: string,
    ctx: Pick<SegmentContext, 'log' | 'containers'>,
  ) {
    this.host = { id, log: ctx.log, probes: ctx.containers.probes };
  }

  /**
   * A tail is set (or its container (re)started or thawed): check it again from now; once it
   * passes, `point` (the head aimed at the tail) runs, then the waiting connections go.
   */
  arm(ep: Endpoint, point: () => Promise<void>): void {
    this.stopCheck();
    const ac = new AbortController();
    this.check = ac;
    this.set('waiting', `${this.ready.mode}: checking`);
    const started = Date.now();
    const { id, log } = this.host;
    void this.passes(ep, ac.signal)
      .then(async () => {
        if (ac.signal.aborted) return;
        await point();
        if (ac.signal.aborted) return;
        this.set('ready');
        log.info({ segment: id, mode: this.ready.mode, ms: Date.now() - started }, 'tail ready');
        for (const w of this.waiters) w.resolve();
        this.waiters.clear();
      })
      .catch((err: unknown) => {
        if (ac.signal.aborted) return;
        this.set('failed', `${this.ready.mode}: ${errorMessage(err)}`);
        log.warn({ segment: id, mode: this.ready.mode, err: errorMessage(err) }, 'tail can never be ready');
        const refused = this.notReady(`the tail can never be ready (${this.why})`);
        for (const w of this.waiters) w.reject(refused);
        this.waiters.clear();
      });
  }

  /** The tail's container stopped, or idle let go of it: not ready until armed again. */
  drop(why: string): void {
    this.stopCheck();
    this.set('waiting', why);
  }

  /** The segment closes: no more checks, and what waits goes on (to find it closed). */
  dispose(): void {
    this.stopCheck();
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  info(): ReadyInfo {
    return { mode: this.ready.mode, state: this.state, ...(this.state === 'ready' ? {} : { why: this.why }) };
  }

  /** Resolves once the tail is ready; rejects NOT_READY after `ms`, or at once if it never can be. */
  async wait(ms: number): Promise<void> {
    if (this.state === 'ready') return;
    if (this.state === 'failed') throw this.notReady(`the tail can never be ready (${this.why})`);
    let timer: NodeJS.Timeout | undefined;
    let waiter: Waiter | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        waiter = { resolve, reject };
        this.waiters.add(waiter);
        timer = setTimeout(
          () => reject(this.notReady(`the tail was not ready within ${ms / 1000} s (${this.why})`)),
          ms,
        );
      });
    } finally {
      clearTimeout(timer);
      if (waiter) this.waiters.delete(waiter);
    }
  }

  private notReady(message: string): WormholeError {
    return new WormholeError('NOT_READY', message);
  }

  private set(state: ReadyInfo['state'], why = ''): void {
    this.state = state;
    this.why = why;
  }

  private stopCheck(): void {
    this.check?.abort();
    this.check = undefined;
    if (this.state === 'ready') this.set('waiting', 'not checked yet');
  }

  /** Until the tail passes the check (rejects when it never can, or when aborted). */
  private async passes(ep: Endpoint, signal: AbortSignal): Promise<void> {
    const status = (s: string): void => {
      if (!signal.aborted) this.why = `${this.ready.mode}: ${s}`;
    };
    const container = ep.containerId;
    if (this.ready.mode === 'health') {
      if (!container) throw new WormholeError('NOT_READY', 'the tail is in no container');
      return this.host.probes.healthy(container, status, signal);
    }
    for (;;) {
      if (signal.aborted) throw signal.reason;
      if (this.ready.mode === 'banner') {
        if (await banner(ep, status)) return;
      } else {
        if (!container) throw new WormholeError('NOT_READY', 'the tail is in no container');
        const code = await this.host.probes
          .exec(container, this.ready.argv ?? [], signal)
          .catch((err: unknown) => {
            if (signal.aborted) throw err;
            status(errorMessage(err));
            return undefined;
          });
        if (code === 0) return;
        if (code !== undefined) status(`exit ${code}`);
      }
      await new Promise((r) => setTimeout(r, READY_RETRY_MS));
    }
  }
}

/** One banner probe: does a connection to the tail receive a byte? (`status`: why not.) */
async function banner(ep: Endpoint, status: (s: string) => void): Promise<boolean> {
  let socket;
  try {
    socket = await streamTarget(ep).connect(BANNER_WAIT_MS);
  } catch (err) {
    status(errnoCode(err) === 'ECONNREFUSED' ? 'nothing listens yet' : errorMessage(err));
    return false;
  }
  const s = socket;
  const got = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), BANNER_WAIT_MS);
    s.once('data', () => resolve(true));
    s.once('end', () => resolve(false));
    s.once('close', () => resolve(false));
    s.once('error', () => resolve(false));
    s.on('close', () => clearTimeout(timer));
  });
  s.destroy();
  if (!got) status('no bytes yet');
  return got;
}
