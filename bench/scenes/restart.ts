/**
 * Restart (issue 9): the proxy is restarted or upgraded while clients keep connecting.
 *
 * 1. One echo server behind each proxy; a client opens a connection every 5 ms (connect,
 *    4 bytes, their echo, close) for the whole window, and a 64 MiB transfer through the echo
 *    (sha256 both ways) is open across the restart: its first half is echoed before, its
 *    second half is sent once the new process serves. The restarts: wormhole SIGTERM and a
 *    fresh wormholed on the same state directory (the segment comes back by itself);
 *    `wormholed --takeover`; docker-proxy and socat killed and started again with the same
 *    arguments. Per path: connections served and failed (by reason), the longest time with
 *    no connection served, and whether the transfer ended intact.
 * 2. Time to serve again with 1 and 200 (quick: 50) segments kept in the state directory:
 *    a restart from spawn to the first connection through the last-created segment (the
 *    SIGTERM before it timed apart), a takeover from spawn to the new daemon serving and to
 *    the old daemon's exit, with a client every 5 ms on the last segment through it.
 * With `--beside`, the build beside has a daemon of its own, and its windows and times follow
 * each of this build's.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Config } from '../config';
import {
  type Build,
  type Daemon,
  daemon,
  daemonAgain,
  echoServer,
  exited,
  missing,
  named,
  port,
  sleep,
  waitPort,
} from '../env';
import { dockerProxy, type Peer, socat } from '../peers';
import { inFlight } from '../transfer';

/** The client opens a connection this often (ms). */
const EVERY_MS = 5;
/** A connection not answered within this long counts as failed. */
const ATTEMPT_MS = 3000;
/** The transfer in flight across the restart: half before, half after. */
const TRANSFER = 64 * 1024 * 1024;
/** The window: clients run this long before the restart, and this long after it served again. */
const BEFORE_MS = 300;
const AFTER_MS = 500;
/** How long a restarted proxy may take to serve before it fails. */
const SERVE_LIMIT_MS = 20_000;
/** wormholed's default --drain-timeout, and some room: the old daemon must be gone by then. */
const DRAIN_LIMIT_MS = 15_000;

/** One proxy's restart under clients. */
export interface RestartPath {
  path: string;
  /** What the restart is. */
  how: string;
  /** Why the path did not run (a missing tool). */
  skip?: string;
  /** What went wrong, if the restart itself failed. */
  error?: string;
  /** Connections served (echo back) and failed in the window. */
  ok: number;
  failed: number;
  /** Failures by reason: an errno code, 'closed before the echo', 'no answer in 3 s'. */
  failures: Record<string, number>;
  /** When each failed connection began, ms from the start of the restart. */
  failedAtMs: number[];
  /** Longest time (ms) with no connection served. */
  gapMs: number;
  /** From the start of the restart to the first connection the new process served (ms). */
  backMs?: number;
  /** The window, first connection to last (ms). */
  windowMs: number;
  /** The transfer in flight across the restart. */
  transfer: { survived: boolean; note: string };
  /**
   * The client loop's own longest stall (ms; event-loop delay on the bench's main thread):
   * a gap no longer than this may be the client's, not the proxy's.
   */
  clientStallMs: number;
}

/** Time to serve again with `segments` kept in the state directory, each repeat (ms). */
export interface ServeAgain {
  /** The row's name: the count for this build, then `, wormhole (NAME)` for the build beside. */
  path: string;
  segments: number;
  /** SIGTERM to the running daemon's exit. */
  stopMs: number[];
  /** Spawn to the first connection through the last-created segment. */
  restartMs: number[];
  /** --takeover: spawn to the new daemon logging 'took over: serving' (its log's clock). */
  takeoverServingMs: number[];
  /** --takeover: spawn to the old daemon's exit. */
  takeoverMs: number[];
  /**
   * Connections through the last segment (one every 5 ms, from just before each takeover to
   * just after the old daemon's exit) served and failed, over every takeover.
   */
  takeoverClients: { ok: number; failed: number; failures: Record<string, number> };
  /** What stopped the repeats early, if anything did. */
  error?: string;
}

export interface Restart {
  paths: RestartPath[];
  serveAgain: ServeAgain[];
}

interface Attempt {
  start: number;
  end: number;
  ok: boolean;
  why?: string;
}

/** One client connection: connect, 4 bytes, their echo, close. Never rejects. */
export function attempt(p: number, host = '127.0.0.1'): Promise<Attempt> {
  const start = performance.now();
  return new Promise((resolve) => {
    const s = net.connect({ host, port: p });
    let got = '';
    let settled = false;
    const done = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ start, end: performance.now(), ok, why });
    };
    const timer = setTimeout(() => done(false, `no answer in ${ATTEMPT_MS / 1000} s`), ATTEMPT_MS);
    s.setNoDelay(true);
    s.on('connect', () => s.write('ping'));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= 4) done(got.startsWith('ping'), 'wrong echo');
    });
    s.on('error', (e: NodeJS.ErrnoException) => done(false, e.code ?? e.message));
    s.on('close', () => done(false, 'closed before the echo'));
  });
}

/** A connection every EVERY_MS, each on its own (one that hangs does not hold the next). */
export class Clients {
  readonly attempts: Attempt[] = [];
  readonly started = performance.now();
  private readonly pending = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly port: number,
    host?: string,
  ) {
    this.timer = setInterval(() => {
      const a = attempt(this.port, host).then((r) => void this.attempts.push(r));
      this.pending.add(a);
      void a.then(() => this.pending.delete(a));
    }, EVERY_MS);
  }

  /** When the first connection begun at `t` or later was served (waits for one). */
  async servedFrom(t: number, why: () => string | undefined): Promise<number> {
    const deadline = performance.now() + SERVE_LIMIT_MS;
    for (;;) {
      const a = this.attempts.find((x) => x.ok && x.start >= t);
      if (a) return a.end;
      const failed = why();
      if (failed) throw new Error(failed);
      if (performance.now() > deadline) throw new Error(`not served within ${SERVE_LIMIT_MS / 1000} s`);
      await sleep(EVERY_MS);
    }
  }

  /** Stop opening connections, wait for the open ones: the window's end. */
  async stop(): Promise<number> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
    return performance.now();
  }
}

/** Poll `cond` every 5 ms up to `ms`: whether it came true. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** A proxy in front of the echo server, and how it is restarted. */
interface Subject {
  path: string;
  how: string;
  skip?: string;
  port: number;
  /** Wait for it to be ready for its restart (before the window's clients start). */
  ready?: () => Promise<void>;
  /** Restart it; resolves when the new process served a client (performance.now()), with
   * `gone` resolving when the old process has exited. */
  restart(clients: Clients): Promise<{ served: number; gone: Promise<unknown> }>;
}

/** One window: clients and a transfer across one restart. */
async function window(sub: Subject): Promise<RestartPath> {
  const row: RestartPath = {
    path: sub.path,
    how: sub.how,
    ok: 0,
    failed: 0,
    failures: {},
    failedAtMs: [],
    gapMs: 0,
    windowMs: 0,
    transfer: { survived: false, note: 'not run' },
    clientStallMs: 0,
  };
  if (sub.skip) return { ...row, skip: sub.skip };
  await sub.ready?.();
  await waitPort('127.0.0.1', sub.port);
  const stalls = monitorEventLoopDelay({ resolution: 1 });
  stalls.enable();
  const clients = new Clients(sub.port);
  const transfer = inFlight(sub.port, TRANSFER);
  let end = clients.started;
  let t0 = clients.started; // the restart's start, once it starts
  try {
    await transfer.half;
    await sleep(BEFORE_MS);
    t0 = performance.now();
    const { served, gone } = await sub.restart(clients);
    row.backMs = served - t0;
    row.transfer = await transfer.finish();
    const left = await Promise.race([gone.then(() => true), sleep(DRAIN_LIMIT_MS).then(() => false)]);
    if (!left) row.error = `the old process still ran ${DRAIN_LIMIT_MS / 1000} s after the restart`;
    await sleep(AFTER_MS);
  } catch (err) {
    row.error = (err as Error).message.split('\n')[0];
  } finally {
    end = await clients.stop();
    stalls.disable();
    await transfer.stop();
  }
  row.clientStallMs = stalls.max / 1e6;
  const served = clients.attempts
    .filter((a) => a.ok)
    .map((a) => a.end)
    .sort((a, b) => a - b);
  const marks = [clients.started, ...served, end];
  for (let i = 1; i < marks.length; i++) row.gapMs = Math.max(row.gapMs, marks[i] - marks[i - 1]);
  tally(clients.attempts, row);
  row.failedAtMs = clients.attempts.filter((a) => !a.ok).map((a) => Math.round(a.start - t0));
  row.windowMs = end - clients.started;
  return row;
}

/** Add attempts to counts of served and failed (by reason). */
export function tally(
  attempts: Attempt[],
  into: { ok: number; failed: number; failures: Record<string, number> },
): void {
  for (const a of attempts) {
    if (a.ok) {
      into.ok++;
      continue;
    }
    into.failed++;
    const why = a.why ?? 'failed';
    into.failures[why] = (into.failures[why] ?? 0) + 1;
  }
}

/** Why a daemon started again is not going to serve: it exited (with its log's last line). */
export function died(d: Daemon): string | undefined {
  if (d.proc.exitCode === null && d.proc.signalCode === null) return undefined;
  const last = d.log().trim().split('\n').pop() ?? '';
  return `wormholed exited with ${d.proc.exitCode ?? d.proc.signalCode}: ${last}`;
}

/** Wait until a daemon has started (its takeover socket listens then). */
export async function started(d: Daemon): Promise<void> {
  if (!(await until(() => /wormholed started/.test(d.log()) || died(d) !== undefined, SERVE_LIMIT_MS)))
    throw new Error(`wormholed did not start within ${SERVE_LIMIT_MS / 1000} s`);
  const why = died(d);
  if (why) throw new Error(why);
}

/** Wait until a daemon started with --takeover logs that it serves; the log's time of it. */
export function tookOver(d: Daemon): Promise<number> {
  return logged(d, 'took over: serving', SERVE_LIMIT_MS);
}

/** Wait (up to limitMs) for the daemon's first log line saying `msg`; the log's time of it. */
export async function logged(d: Daemon, msg: string, limitMs: number): Promise<number> {
  let at: number | undefined;
  const find = (): boolean => {
    const line = d
      .log()
      .split('\n')
      .find((l) => l.includes(`"${msg}"`));
    if (line) at = (JSON.parse(line) as { time: number }).time;
    return at !== undefined || died(d) !== undefined;
  };
  if (!(await until(find, limitMs))) throw new Error(`no "${msg}" within ${limitMs / 1000} s`);
  if (at === undefined) throw new Error(died(d));
  return at;
}

/** SIGTERM a process and wait for its exit. */
export async function stop(p: Daemon['proc']): Promise<void> {
  p.kill('SIGTERM');
  await exited(p);
}

/** A peer proxy restarted as a user restarts it: killed, and started again with the same arguments. */
function peerSubject(path: string, needs: Record<string, string>, make: (listen: number) => Peer): Subject {
  const p = port();
  const skip = missing(needs);
  let peer = skip ? undefined : make(p);
  return {
    path,
    how: 'SIGTERM, then started again with the same arguments',
    skip,
    port: p,
    async restart(clients) {
      await stop(peer!.proc);
      const t = performance.now();
      peer = make(p);
      const fresh = peer.proc;
      const served = await clients.servedFrom(t, () =>
        fresh.exitCode !== null ? `${path} exited with ${fresh.exitCode}` : undefined,
      );
      return { served, gone: Promise.resolve() };
    },
  };
}

/**
 * `n` segments from fresh ports to the echo server, created over one API connection with the
 * client of the daemon's own build: their ports.
 */
async function segments(d: Daemon, echo: number, n: number): Promise<number[]> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the build's own client, found at run time
  const { connect } = require(
    path.join(d.build.root, 'dist/src/client'),
  ) as typeof import('../../src/client');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- and its own grammar
  const { tokenize } = require(
    path.join(d.build.root, 'dist/src/api/grammar'),
  ) as typeof import('../../src/api/grammar');
  const conn = await connect({ kind: 'unix', path: d.sock }, null);
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = port();
      await conn.call('create', { actions: tokenize(['url', `:${p}`, 'tail', 'url', `:${echo}`]) });
      ports.push(p);
    }
    return ports;
  } finally {
    conn.close();
  }
}

/** The first connection served through port p, tried every EVERY_MS: when (performance.now()). */
export async function firstServed(p: number, why: () => string | undefined, host?: string): Promise<number> {
  const deadline = performance.now() + SERVE_LIMIT_MS;
  for (;;) {
    const a = await attempt(p, host);
    if (a.ok) return a.end;
    const failed = why();
    if (failed) throw new Error(failed);
    if (performance.now() > deadline) throw new Error(`not served within ${SERVE_LIMIT_MS / 1000} s`);
    await sleep(EVERY_MS);
  }
}

/** Restart and take over a daemon with `n` segments, `repeats` times each. */
async function serveAgain(build: Build, echo: number, n: number, repeats: number): Promise<ServeAgain> {
  const d = daemon(build, { keepLog: true });
  await started(d);
  const last = (await segments(d, echo, n)).pop()!;
  await firstServed(last, () => died(d));
  const out: ServeAgain = {
    path: named(build, n.toLocaleString('en-US')),
    segments: n,
    stopMs: [],
    restartMs: [],
    takeoverServingMs: [],
    takeoverMs: [],
    takeoverClients: { ok: 0, failed: 0, failures: {} },
  };
  try {
    await repeat(out, d, last, repeats);
  } catch (err) {
    out.error = (err as Error).message.split('\n')[0];
  }
  return out;
}

async function repeat(out: ServeAgain, first: Daemon, last: number, repeats: number): Promise<void> {
  let d = first;
  for (let i = 0; i < repeats; i++) {
    let t = performance.now();
    await stop(d.proc);
    out.stopMs.push(performance.now() - t);
    t = performance.now();
    const fresh = daemonAgain(d);
    d = fresh;
    out.restartMs.push((await firstServed(last, () => died(fresh))) - t);
    await started(d);

    const old = d;
    const clients = new Clients(last);
    await sleep(50);
    const wall = Date.now();
    t = performance.now();
    d = daemonAgain(old, true);
    const gone = exited(old.proc).then(() => performance.now());
    try {
      out.takeoverServingMs.push((await tookOver(d)) - wall);
      const left = await Promise.race([gone, sleep(DRAIN_LIMIT_MS).then(() => undefined)]);
      if (left === undefined)
        throw new Error(`the old daemon still ran ${DRAIN_LIMIT_MS / 1000} s after a takeover`);
      out.takeoverMs.push(left - t);
      await sleep(100);
    } finally {
      await clients.stop();
      tally(clients.attempts, out.takeoverClients);
    }
    const now = d;
    await firstServed(last, () => died(now));
  }
}

/** wormhole's two subjects: one daemon of `build` and a segment to the echo server, restarted, then taken over. */
async function wormholeSubjects(build: Build, echo: number): Promise<[Subject, Subject]> {
  let wh = daemon(build, { keepLog: true });
  await started(wh);
  const [whPort] = await segments(wh, echo, 1);
  const restarted: Subject = {
    path: named(build, 'wormhole, restart'),
    how: 'SIGTERM, then wormholed again on the same state directory',
    port: whPort,
    async restart(clients) {
      await stop(wh.proc);
      const t = performance.now();
      const fresh = daemonAgain(wh);
      wh = fresh;
      const served = await clients.servedFrom(t, () => died(fresh));
      return { served, gone: Promise.resolve() };
    },
  };
  const takenOver: Subject = {
    path: named(build, 'wormhole, takeover'),
    how: 'wormholed --takeover (same flags and state directory)',
    port: whPort,
    ready: () => started(wh), // the restarted daemon's takeover socket listens
    async restart() {
      const old = wh;
      wh = daemonAgain(old, true);
      await tookOver(wh);
      // the old one still serves until then: the new one serves from here
      return { served: performance.now(), gone: exited(old.proc) };
    },
  };
  return [restarted, takenOver];
}

/**
 * The scene: every path's window (wormhole's restarts for each of `builds` in turn), then the
 * time to serve again (each count for each build in turn).
 */
export async function restart(cfg: Config, builds: Build[]): Promise<Restart> {
  const echo = port();
  echoServer('127.0.0.1', echo);
  await waitPort('127.0.0.1', echo);

  const subjects: [Subject, Subject][] = [];
  for (const b of builds) subjects.push(await wormholeSubjects(b, echo));
  const paths: RestartPath[] = [];
  for (const [restarted] of subjects) paths.push(await window(restarted));
  for (const [, takenOver] of subjects) paths.push(await window(takenOver));
  paths.push(
    await window(
      peerSubject('docker-proxy', { 'docker-proxy': 'docker.io' }, (p) => dockerProxy(p, '127.0.0.1', echo)),
    ),
  );
  paths.push(await window(peerSubject('socat', { socat: 'socat' }, (p) => socat(p, '127.0.0.1', echo))));

  const serve: ServeAgain[] = [];
  for (const n of [1, cfg.quick ? 50 : 200])
    for (const b of builds) serve.push(await serveAgain(b, echo, n, cfg.quick ? 1 : 3));
  return { paths, serveAgain: serve };
}
