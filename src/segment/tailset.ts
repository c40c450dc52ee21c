/**
 * Several tails for one segment (`also`, `docker-label`): which endpoints they are now, in
 * which of the head's slots, and whether each is healthy.
 *
 * A tail draft that names a container (`docker-ns`, `docker-run`) or a label (`docker-label`)
 * is looked up again whenever Docker says a container started, died or was removed, and at
 * each reconnection of that event stream: a label's containers come and go as tails, a
 * restarted container's tail moves to its new namespace. Health is a TCP connect to each
 * tail every `healthMs` (unless off): a tail that fails it gets no new connection (the head
 * and the engine skip it) until it passes again. The picking itself is the head's (the
 * engine in C, or src/proxy/balance.ts for the JavaScript mover and UDP sessions).
 */
import type { SegmentInfo } from '../api/protocol';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/log';
import { connectTcp, connectUnix } from '../netns';
import { Balancer, type Policy } from '../proxy/balance';
import type { TailStats, TcpHead } from '../proxy/head';
import type { ContainerRuntime } from './context';
import { type Draft, type Endpoint, describe, resolveTail } from './endpoint';
import { confineUnixTail, unixDialPlace } from './hostunix';
import { streamTarget } from './streamends';

/** How long a health check's connect may take. */
const CHECK_TIMEOUT_MS = 2000;
/** Container events in a burst are looked at once, after this quiet time. */
const SETTLE_MS = 200;

type TailInfo = NonNullable<SegmentInfo['tails']>[number];

interface Slot {
  key: string;
  ep: Endpoint;
  /** The last health check (undefined: none yet). */
  healthy?: boolean;
  lastError?: string;
}

/** What a tail set needs from the daemon. */
export interface TailSetContext {
  log: Logger;
  containers: ContainerRuntime;
  /** The segment's id, for the log. */
  segment: string;
  /** The --allow-unix directories (a host-path unix tail is dialed only under one). */
  allowUnix: readonly string[];
}

/** The tails of one segment. */
export class TailSet {
  private readonly slots: (Slot | null)[] = [];
  /** For UDP sessions (the head picks TCP connections itself). */
  private readonly udp = new Balancer<Endpoint>();
  private stopWatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly ctx: TailSetContext,
    private readonly head: TcpHead | undefined,
    private readonly drafts: Draft[],
    private readonly headDraft: Draft,
    policy: Policy,
    private readonly healthMs: number | null,
  ) {
    head?.setBalance(policy);
    this.udp.policy = policy;
  }

  /** Find the tails, put them in the head's slots, and start following and checking them. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.drafts.some((d) => d.container || d.label))
      this.stopWatch = this.ctx.containers.watch({
        event: () => this.soon(),
        connected: () => this.soon(),
      });
    if (this.healthMs !== null) {
      this.timer = setInterval(() => void this.check(), this.healthMs);
      this.timer.unref();
      void this.check();
    }
  }

  private soon(): void {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.refresh().catch(() => undefined), SETTLE_MS);
  }

  /** The endpoints the drafts name now, by a key that stays while the tail does. */
  private async endpoints(): Promise<Map<string, Endpoint>> {
    const out = new Map<string, Endpoint>();
    for (const d of this.drafts) {
      try {
        if (d.label) {
          for (const c of await this.ctx.containers.withLabel(d.label)) {
            const ep = await resolveTail(
              { ...d, ns: c.nsPath, nsLabel: c.name, container: c.name },
              this.headDraft,
            );
            out.set(`${c.id}/${where(ep)}`, ep);
          }
        } else if (d.container) {
          const c = await this.ctx.containers.locate(d.container);
          const ep = await resolveTail({ ...d, ns: c.nsPath }, this.headDraft);
          out.set(`${c.id}/${where(ep)}`, ep);
        } else {
          const ep = confineUnixTail(await resolveTail(d, this.headDraft), this.ctx.allowUnix);
          out.set(`${ep.ns ?? ''}/${ep.host}/${where(ep)}`, ep);
        }
      } catch (err) {
        // a container that is not running is no tail for now; the next event looks again
        this.ctx.log.debug({ segment: this.ctx.segment, err: errorMessage(err) }, 'a tail is not there');
      }
    }
    return out;
  }

  /** Look again: tails that went leave their slots, new ones take free slots. */
  async refresh(): Promise<void> {
    const now = await this.endpoints();
    if (this.closed) return;
    for (const [i, slot] of this.slots.entries()) {
      if (!slot || now.has(slot.key)) continue;
      this.slots[i] = null;
      void this.head?.setTailSlot(i, null);
      this.udp.set(i, null);
      this.ctx.log.info({ segment: this.ctx.segment, tail: describe(slot.ep) }, 'tail gone');
    }
    const have = new Set(this.slots.filter((s): s is Slot => !!s).map((s) => s.key));
    for (const [key, ep] of now) {
      if (have.has(key)) continue;
      let i = this.slots.indexOf(null);
      if (i < 0) i = this.slots.length;
      if (i >= 64) {
        this.ctx.log.warn(
          { segment: this.ctx.segment, tail: describe(ep) },
          'more than 64 tails: this one is left out',
        );
        continue;
      }
      this.slots[i] = { key, ep };
      await this.point(i, ep, key);
      this.ctx.log.info({ segment: this.ctx.segment, tail: describe(ep), slot: i }, 'tail added');
    }
  }

  private async point(i: number, ep: Endpoint, key: string): Promise<void> {
    this.udp.set(i, ep, key);
    const head = this.head;
    if (!head) return;
    await head
      .setTailSlot(i, streamTarget(ep), key)
      .catch((err: unknown) =>
        this.ctx.log.warn(
          { segment: this.ctx.segment, tail: describe(ep), err: errorMessage(err) },
          'tail not set',
        ),
      );
  }

  /** A TCP connect to every tail; the result decides who gets new connections. */
  private async check(): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot, i) => {
        if (!slot || slot.ep.proto === 'udp') return;
        const ok = await connectWithin(slot.ep, CHECK_TIMEOUT_MS).then(
          () => undefined,
          (err: unknown) => errorMessage(err),
        );
        if (this.closed || this.slots[i] !== slot) return;
        const healthy = ok === undefined;
        if (healthy !== slot.healthy)
          this.ctx.log.info(
            { segment: this.ctx.segment, tail: describe(slot.ep), healthy, err: ok },
            healthy ? 'tail healthy' : 'tail unhealthy: no new connection until it passes',
          );
        slot.healthy = healthy;
        slot.lastError = ok;
        this.head?.setHealth(i, healthy);
        this.udp.setHealth(i, healthy);
      }),
    );
  }

  /** A tail for a new UDP session (source: by the client's address). */
  pickUdp(client: string): Endpoint | undefined {
    const i = this.udp.pick(new Set(), client);
    return i >= 0 ? (this.udp.tail(i) ?? undefined) : undefined;
  }

  /** Every tail now. */
  get endpointsNow(): Endpoint[] {
    return this.slots.filter((s): s is Slot => !!s).map((s) => s.ep);
  }

  /** Each tail as `list` shows it: health (the checks', else the last dials'), counts. */
  info(stats: (TailStats | null)[]): TailInfo[] {
    const out: TailInfo[] = [];
    for (const [i, slot] of this.slots.entries()) {
      if (!slot) continue;
      const st = stats[i];
      const byDials =
        !st || (st.okAt === 0 && st.failedAt === 0) ? 'unknown' : st.okAt >= st.failedAt ? 'up' : 'down';
      const health = slot.healthy === undefined ? byDials : slot.healthy ? 'up' : 'down';
      out.push({
        url: describe(slot.ep),
        health,
        lastError: health === 'down' ? slot.lastError : undefined,
        open: st?.open,
        total: st?.total,
        dialFailures: st?.failed,
      });
    }
    return out;
  }

  dispose(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.settle);
    this.stopWatch?.();
  }
}

/** Connect and close, within a time. */
async function connectWithin(ep: Endpoint, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  const unix = ep.proto === 'unix' ? unixDialPlace(ep) : undefined;
  const dial = unix ? connectUnix(ep.ns, unix.path, unix.root) : connectTcp(ep.ns, ep.host, ep.port);
  try {
    (await Promise.race([dial, timeout])).destroy();
  } catch (err) {
    // a connect that answers after the time is up is closed when it does
    dial.then((socket) => socket.destroy()).catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Where a tail is within its namespace or container: a port, or a unix socket's address. */
function where(ep: Endpoint): string {
  return ep.proto === 'unix' ? (ep.path ?? '') : String(ep.port);
}
