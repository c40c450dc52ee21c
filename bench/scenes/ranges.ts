/**
 * Port ranges (issue 20): the memory of forwarding 1,000 and 10,000 host ports to a service
 * namespace, port i to port i, through one wormhole segment (`url A-B tail url NS@C-D`),
 * pasta (`-t A-B:C-D`, one process) and docker-proxy (one process per port, as dockerd starts
 * it for `-p A-B:C-D`).
 * - wormhole: the daemon's RSS growth over the create (a fresh daemon for each count), and
 *   the create's wall time (every port bound); with the engine, and with the JavaScript mover.
 * - pasta: its process's RSS once it forwards.
 * - docker-proxy: the sum of RSS (and of PSS, which shares the binary's pages out fairly) of
 *   1,000 processes; for 10,000 it is extrapolated from 1,000 (ten times), not measured.
 * wormhole and pasta run in alternating rounds (cfg.repeats), each figure their median.
 * Every path is checked with one round trip through a port in the middle of its range, to an
 * echo server (wormhole and pasta: in the namespace; docker-proxy: on the host, its target
 * being beside the point here). The heads are on 127.20.20.21-23, addresses no other scene
 * takes, so the ranges collide with no other port of the run.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { exchange } from '../../test/helpers/services';
import type { Config } from '../config';
import { type Build, daemon, echoServer, exited, named, netns, port, sleep, start, waitPort } from '../env';
import { rssMiB } from '../measure';
import { dockerProxy } from '../peers';
import { median } from '../report';

/** The heads' first port, and the tails' (in the namespace). */
const HEAD = 20000;
const TAIL = 30000;

/** One path's figures at one count (MiB); `note` says what was not measured, or failed. */
export interface RangeRow {
  path: string;
  ports: number;
  /** RSS (wormhole: the daemon's growth) in MiB. */
  rssMiB?: number;
  /** docker-proxy: the processes' PSS in MiB. */
  pssMiB?: number;
  /** wormhole: the create's wall time (ms). */
  createMs?: number;
  /** The round trip through the middle port worked. */
  roundTrip?: boolean;
  note?: string;
}

/** Proportional set size of processes (MiB): shared pages divided among their sharers. */
function pssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** One round trip through host:port to an echo server (it adds 'bye' at the end). */
async function roundTrip(host: string, p: number): Promise<boolean> {
  try {
    return (await exchange(p, 'ping', host)) === 'pingbye';
  } catch {
    return false;
  }
}

/**
 * wormhole: one segment for `n` ports on a fresh daemon; `engineOff`: with the JavaScript
 * mover (WORMHOLE_ENGINE=off), which keeps a net.Server per port.
 */
async function wormhole(build: Build, ns: string, n: number, engineOff = false): Promise<RangeRow> {
  const row: RangeRow = { path: named(build, engineOff ? 'wormhole, engine off' : 'wormhole'), ports: n };
  // (the daemon inherits this process's environment when it is spawned, and only then)
  if (engineOff) process.env.WORMHOLE_ENGINE = 'off';
  const d = daemon(build);
  delete process.env.WORMHOLE_ENGINE;
  await sleep(500); // (its start settles: its RSS before)
  const before = rssMiB([d.pid]);
  const t = performance.now();
  d.cli(
    'create',
    'url',
    `127.20.20.21:${HEAD}-${HEAD + n - 1}`,
    'tail',
    'url',
    `tcp://${ns}@127.0.0.1:${TAIL}-${TAIL + n - 1}`,
  );
  row.createMs = performance.now() - t;
  await sleep(500);
  row.rssMiB = rssMiB([d.pid]) - before;
  row.roundTrip = await roundTrip('127.20.20.21', HEAD + n / 2);
  d.proc.kill('SIGTERM');
  await exited(d.proc); // (its ports are free for the next row)
  return row;
}

/** pasta: one process forwarding the range into the namespace. */
async function pasta(ns: string, n: number): Promise<RangeRow> {
  const row: RangeRow = { path: 'pasta', ports: n };
  const p = start('pasta', [
    '--runas',
    '0',
    '--netns',
    `/var/run/netns/${ns}`,
    '-t',
    `127.20.20.22/${HEAD}-${HEAD + n - 1}:${TAIL}-${TAIL + n - 1}`,
    ...['-u', 'none', '-T', 'none', '-U', 'none', '--config-net', '-f', '-q'],
  ]);
  try {
    await waitPort('127.20.20.22', HEAD + n / 2);
  } catch (err) {
    row.note = (err as Error).message;
    return row;
  }
  await sleep(500);
  row.rssMiB = rssMiB([p.pid!]);
  row.roundTrip = await roundTrip('127.20.20.22', HEAD + n / 2);
  p.kill('SIGTERM');
  await exited(p);
  return row;
}

/** docker-proxy: one process per port, 1,000 of them, to the echo server on the host. */
async function dockerProxies(echo: number): Promise<RangeRow[]> {
  const n = 1000;
  const peers = [];
  // (on 127.20.20.23: the range on 127.0.0.1 would meet other ports of the run)
  for (let i = 0; i < n; i++) peers.push(dockerProxy(HEAD + i, '127.0.0.1', echo, '127.20.20.23'));
  const row: RangeRow = { path: 'docker-proxy', ports: n };
  try {
    await waitPort('127.20.20.23', HEAD + n - 1);
  } catch (err) {
    row.note = (err as Error).message;
  }
  await sleep(1000);
  const pids = peers.map((p) => p.proc.pid!).filter(Boolean);
  row.rssMiB = rssMiB(pids);
  row.pssMiB = pssMiB(pids);
  row.roundTrip = await roundTrip('127.20.20.23', HEAD + n / 2);
  for (const p of peers) p.proc.kill('SIGTERM');
  const ten: RangeRow = {
    path: 'docker-proxy',
    ports: 10 * n,
    rssMiB: row.rssMiB * 10,
    pssMiB: row.pssMiB * 10,
    note: 'extrapolated from 1,000 (x10), not measured',
  };
  return [row, ten];
}

/**
 * The scene: every path at 1,000 and 10,000 ports (quick: 1,000 only). Only this build (the
 * first of `builds`): a build beside it may have no ranges, and the peers are the comparison.
 */
export async function ranges(cfg: Config, builds: Build[]): Promise<RangeRow[]> {
  const build = builds[0];
  const ns = netns(`ranges-bench-${process.pid}`);
  const counts = cfg.quick ? [1000] : [1000, 10_000];
  // the echo server answers on the middle tail port of each count
  for (const n of counts) {
    echoServer('127.0.0.1', TAIL + n / 2, ns);
    await waitPort('127.0.0.1', TAIL + n / 2, ns);
  }
  const hostEcho = port();
  echoServer('127.0.0.1', hostEcho);
  await waitPort('127.0.0.1', hostEcho);
  // rounds alternate the paths (the machine's load moves); each figure is the rounds' median
  const rounds: RangeRow[][] = [];
  for (let r = 0; r < cfg.repeats; r++)
    for (const n of counts) {
      const round: RangeRow[] = [];
      round.push(await wormhole(build, ns, n), await wormhole(build, ns, n, true));
      round.push(await pasta(ns, n));
      rounds.push(round);
    }
  const rows = medians(rounds.flat());
  rows.push(...(await dockerProxies(hostEcho)));
  return rows.sort((a, b) => a.ports - b.ports);
}

/** One row per path and count: the median of its rounds' figures, a round trip ok only if every one was. */
function medians(all: RangeRow[]): RangeRow[] {
  const groups = new Map<string, RangeRow[]>();
  for (const r of all) groups.set(`${r.path}|${r.ports}`, [...(groups.get(`${r.path}|${r.ports}`) ?? []), r]);
  const mid = (v: (number | undefined)[]): number | undefined => {
    const ok = v.filter((x): x is number => x !== undefined);
    return ok.length ? median(ok) : undefined;
  };
  return [...groups.values()].map((g) => ({
    path: g[0].path,
    ports: g[0].ports,
    rssMiB: mid(g.map((r) => r.rssMiB)),
    createMs: mid(g.map((r) => r.createMs)),
    roundTrip: g.every((r) => r.roundTrip),
    note: [...new Set(g.map((r) => r.note).filter(Boolean))].join('; ') || undefined,
  }));
}

/** The scene's table. */
export function rangesTable(rows: RangeRow[]): string {
  const mib = (v: number | undefined): string => (v === undefined ? '–' : `${v.toFixed(1)} MiB`);
  const head = [
    '| path | ports | memory (RSS) | docker-proxy PSS | create | one round trip | note |',
    '|---|---|---|---|---|---|---|',
  ];
  const body = rows.map(
    (r) =>
      `| ${r.path} | ${r.ports.toLocaleString('en-US')} | ${mib(r.rssMiB)} | ${r.pssMiB === undefined ? '' : mib(r.pssMiB)} | ${r.createMs === undefined ? '' : `${(r.createMs / 1000).toFixed(2)} s`} | ${r.roundTrip === undefined ? '–' : r.roundTrip ? 'ok' : '**failed**'} | ${r.note ?? ''} |`,
  );
  return [...head, ...body].join('\n');
}
