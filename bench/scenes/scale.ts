/**
 * Scale (issue 20): one daemon holding 10,000 segments (quick: 1,000), declared in one file,
 * each an idle head on a port of its own (127.20.20.20, an address no other scene takes) to
 * the echo server.
 * 1. `wormhole apply -f` of the file on a fresh daemon: the CLI's wall time, and the daemon's
 *    RSS before and after, over the count (memory per idle segment).
 * 2. `wormhole list` of them all (paged: never one reply of all): its wall time.
 * 3. A restart: SIGTERM, then wormholed again on the same state directory: spawn to the log's
 *    'segments from the state directory' (every record built again), and to the last
 *    segment serving a client.
 * 4. A takeover (`wormholed --takeover`) with a client every 5 ms on the last segment: spawn
 *    to 'took over: serving', and the clients refused or failed across it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Config } from '../config';
import { type Build, daemon, daemonAgain, echoServer, exited, named, port, sleep, waitPort } from '../env';
import { Clients, died, firstServed, logged, started, stop, tally, tookOver } from './restart';

/** The heads' address: loopback, but no other scene's (their ports are the bench's own). */
const HOST = '127.20.20.20';
/** The first head port: the heads take FIRST .. FIRST + count - 1. */
const FIRST = 20000;
/** How long the restarted daemon may take to build every segment again. */
const LIMIT_MS = 120_000;

/** One scale run's figures (ms, KiB); what failed, if anything did. */
export interface Scale {
  path: string;
  segments: number;
  applyMs?: number;
  /** The daemon's RSS growth over the apply, per segment (KiB). */
  kibPerSegment?: number;
  listMs?: number;
  /** Spawn to every record built again, and to the last segment serving. */
  restartAllMs?: number;
  restartLastMs?: number;
  /** --takeover: spawn to the new daemon serving (its log's clock), and the clients on the last segment. */
  takeoverMs?: number;
  takeoverClients?: { ok: number; failed: number; failures: Record<string, number> };
  error?: string;
}

/** The daemon's resident memory (KiB), from /proc. */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Apply, list, restart and take over `n` segments on a daemon of `build`. */
async function run(build: Build, echo: number, n: number, out: Scale): Promise<void> {
  let d = daemon(build, { keepLog: true });
  await started(d);
  const file = path.join(d.dir, 'scale.yaml');
  const lines = Array.from({ length: n }, (_, i) => `  s${i}: url ${HOST}:${FIRST + i} tail url :${echo}`);
  fs.writeFileSync(file, `segments:\n${lines.join('\n')}\n`);
  await sleep(500); // (the daemon's start settles: its RSS before)
  const before = rssKiB(d.pid);
  let t = performance.now();
  d.cli('apply', '-f', file);
  out.applyMs = performance.now() - t;
  await sleep(500);
  out.kibPerSegment = (rssKiB(d.pid) - before) / n;
  t = performance.now();
  const rows = d.cli('list').split('\n').length - 1;
  out.listMs = performance.now() - t;
  if (rows !== n) throw new Error(`list showed ${rows} segments of ${n}`);
  const last = FIRST + n - 1;
  await firstServed(last, () => died(d), HOST);

  await stop(d.proc);
  const wall = Date.now();
  t = performance.now();
  const again = daemonAgain(d);
  d = again;
  out.restartLastMs = (await firstServed(last, () => died(again), HOST)) - t;
  out.restartAllMs = (await logged(again, 'segments from the state directory', LIMIT_MS)) - wall;

  const clients = new Clients(last, HOST);
  await sleep(50);
  const old = d;
  const takeoverWall = Date.now();
  d = daemonAgain(old, true);
  try {
    out.takeoverMs = (await tookOver(d)) - takeoverWall;
    await exited(old.proc);
    await sleep(100);
  } finally {
    await clients.stop();
    out.takeoverClients = { ok: 0, failed: 0, failures: {} };
    tally(clients.attempts, out.takeoverClients);
  }
  await stop(d.proc);
}

/** The scale scene for each build. */
export async function scale(cfg: Config, builds: Build[]): Promise<Scale[]> {
  const echo = port();
  echoServer('127.0.0.1', echo);
  await waitPort('127.0.0.1', echo);
  const n = cfg.quick ? 1000 : 10_000;
  const results: Scale[] = [];
  for (const b of builds) {
    const out: Scale = { path: named(b, 'wormhole'), segments: n };
    try {
      await run(b, echo, n, out);
    } catch (err) {
      out.error = (err as Error).message.split('\n')[0];
    }
    results.push(out);
  }
  return results;
}

/** A figure in ms, s or KiB, and whether it meets its target (issue 20). */
function cell(v: number | undefined, goal: number, unit: 's' | 'KiB'): string {
  if (v === undefined) return '–';
  const shown = unit === 's' ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(1)} KiB`;
  const limit = unit === 's' ? goal * 1000 : goal;
  return v <= limit ? `${shown} (met, ≤ ${goal} ${unit})` : `**${shown}** (missed: ≤ ${goal} ${unit})`;
}

/** The scene's table: each figure beside issue 20's target for it. */
export function scaleTable(rows: Scale[]): string {
  const head = [
    '| path | segments | apply -f | memory per idle segment | list (every page) | restart: all built again | restart: last segment serving | takeover: new daemon serving | clients during the takeover: served / failed |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const body = rows.map((r) => {
    const c = r.takeoverClients;
    const why = Object.entries(c?.failures ?? {})
      .map(([w, n]) => `${w} ${n}`)
      .join(', ');
    const clients = c ? `${c.ok} / ${c.failed ? `**${c.failed}** (${why})` : '0'}` : '–';
    const list = r.listMs === undefined ? '–' : `${(r.listMs / 1000).toFixed(1)} s`;
    const lastMs = r.restartLastMs === undefined ? '–' : `${(r.restartLastMs / 1000).toFixed(1)} s`;
    const line = `| ${r.path} | ${r.segments.toLocaleString('en-US')} | ${cell(r.applyMs, 10, 's')} | ${cell(r.kibPerSegment, 4, 'KiB')} | ${list} | ${cell(r.restartAllMs, 5, 's')} | ${lastMs} | ${cell(r.takeoverMs, 5, 's')} | ${clients} |`;
    return r.error ? `${line}\n\n${r.path}: ${r.error}` : line;
  });
  return [...head, ...body].join('\n');
}
