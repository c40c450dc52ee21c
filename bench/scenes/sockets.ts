/**
 * More kinds of socket (issue 12), two scenes:
 * - tcp -> unix on one host: a unix echo server (test/fixtures/server.js) and a unix sink
 *   (bench/sink.c, iperf-like: iperf3 cannot use unix sockets) reached from a TCP port
 *   through wormhole (`create url :P tail url unix:///PATH`) and through socat
 *   (`TCP-LISTEN:P,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:PATH`), beside the unix
 *   socket reached directly; throughput, new connections per second, latency, median of the
 *   rounds, each measurement over every path before the next;
 * - UDP between two hosts (namespaces joined by a veth pair, a daemon on each): a UDP echo
 *   on the second reached from the first over the plain link, through a `remote` segment
 *   (each session an attach stream, TLS 1.3 between the daemons) and through a `tunnel`
 *   segment (WireGuard): echoed rate and round trips (bench/udpprobe.ts, run in the first
 *   host's namespace).
 * With `--beside`, each wormhole row is followed by the same row of the build beside (for UDP,
 * on a pair of hosts of its own).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Config } from '../config';
import {
  type Build,
  ROOT,
  daemon,
  hostPair,
  missing,
  named,
  onBeforeStop,
  onCleanup,
  port,
  sh,
  sleep,
  start,
  waitPort,
} from '../env';
import { connectionRate, latency } from '../measure';
import type { Row } from '../report';

const median = (xs: number[]): number | undefined =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : undefined;

/** A path to the unix servers: where the client connects for each measurement. */
interface UnixPath {
  name: string;
  /** The echo, as `host` for connectionRate/latency: 127.0.0.1, or the socket's path. */
  echoHost: string;
  echoPort: number;
  /** The sink, as `sink send` takes it: [host, port] or [path, '-']. */
  sink: [string, string];
  skip?: string;
}

/** bench/sink.c built for this run (gcc), or why not. */
function buildSink(): string | { skip: string } {
  const gone = missing({ gcc: 'gcc' });
  if (gone) return { skip: gone };
  const out = path.join(ROOT, 'dist/bench/sink');
  sh('gcc', '-O2', '-o', out, path.join(ROOT, 'bench/sink.c'));
  return out;
}

/** `sink send` through one path for `seconds`: Gbit/s the sink read. */
function sinkThroughput(bin: string, target: [string, string], seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ['send', ...target, String(seconds)],
      { timeout: (seconds + 30) * 1000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`sink via ${target.join(':')}: ${stderr.trim() || err.message}`));
        resolve((JSON.parse(stdout) as { gbps: number }).gbps);
      },
    );
  });
}

/** Wait (up to 10 s) until a unix socket file exists. */
async function waitFile(p: string): Promise<void> {
  for (let i = 0; i < 100 && !fs.existsSync(p); i++) await sleep(100);
  if (!fs.existsSync(p)) throw new Error(`nothing listens at ${p}`);
}

/** tcp -> unix: direct, wormhole, socat; rows of the scene table (no memory columns). */
export async function tcpToUnix(cfg: Config, builds: Build[]): Promise<Row[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whbu-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [echoSock, sinkSock] = [path.join(dir, 'echo.sock'), path.join(dir, 'sink.sock')];
  const bin = buildSink();
  start(process.execPath, [path.join(ROOT, 'test/fixtures/server.js'), 'unix-echo', echoSock, '-']);
  if (typeof bin === 'string') start(bin, ['listen', sinkSock]);
  await waitFile(echoSock);
  if (typeof bin === 'string') await waitFile(sinkSock);

  const paths: UnixPath[] = [
    { name: 'direct (the unix socket, no proxy)', echoHost: echoSock, echoPort: 0, sink: [sinkSock, '-'] },
  ];
  for (const b of builds) {
    const wh = daemon(b);
    const [we, ws] = [port(), port()];
    wh.cli('create', 'url', `:${we}`, 'tail', 'url', `unix://${echoSock}`);
    wh.cli('create', 'url', `:${ws}`, 'tail', 'url', `unix://${sinkSock}`);
    paths.push({
      name: named(b, 'wormhole (tcp -> unix)'),
      echoHost: '127.0.0.1',
      echoPort: we,
      sink: ['127.0.0.1', String(ws)],
    });
  }

  const [se, ss] = [port(), port()];
  const socatGone = missing({ socat: 'socat' });
  if (!socatGone)
    for (const [p, to] of [
      [se, echoSock],
      [ss, sinkSock],
    ] as const)
      start('socat', [`TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr,fork,backlog=1024`, `UNIX-CONNECT:${to}`]);
  paths.push({
    name: 'socat (TCP-LISTEN,fork UNIX-CONNECT)',
    echoHost: '127.0.0.1',
    echoPort: se,
    sink: ['127.0.0.1', String(ss)],
    skip: socatGone,
  });

  const rows = paths.map((p) => ({
    row: { path: p.name, notes: p.skip ? [p.skip] : [] } as Row,
    p,
    s: { gbps: [] as number[], conns: [] as number[], p50: [] as number[], p99: [] as number[] },
  }));
  for (const x of rows.filter((r) => r.p.echoPort)) await waitPort('127.0.0.1', x.p.echoPort);
  for (let round = 0; round < cfg.repeats; round++) {
    for (const x of rows) {
      if (x.p.skip) continue;
      try {
        if (typeof bin === 'string') x.s.gbps.push(await sinkThroughput(bin, x.p.sink, cfg.seconds));
        x.s.conns.push(await connectionRate(x.p.echoHost, x.p.echoPort, cfg.conns));
        const lat = await latency(x.p.echoHost, x.p.echoPort, cfg.rounds);
        x.s.p50.push(lat.p50);
        x.s.p99.push(lat.p99);
      } catch (err) {
        x.row.notes!.push(`failed: ${(err as Error).message.split('\n')[0]}`);
        x.p.skip = 'failed';
      }
    }
  }
  if (typeof bin !== 'string') rows.forEach((x) => x.row.notes!.push(`no throughput: ${bin.skip}`));
  for (const { row, s } of rows) {
    [row.gbps, row.connsPerSec, row.p50us, row.p99us] = [
      median(s.gbps),
      median(s.conns),
      median(s.p50),
      median(s.p99),
    ];
    console.error(
      `# tcp -> unix / ${row.path}: ${row.gbps?.toFixed(2)} Gbit/s, ${row.connsPerSec?.toFixed(0)} conn/s, ` +
        `p50 ${row.p50us?.toFixed(0)} µs, p99 ${row.p99us?.toFixed(0)} µs`,
    );
  }
  return rows.map((x) => x.row);
}

/** One path of the UDP scene. */
export interface UdpRow {
  path: string;
  /** Echoed payload rate (Mbit/s) and datagrams per second, 1,400-byte datagrams. */
  mbps?: number;
  datagramsPerSec?: number;
  /** Datagrams not echoed within 200 ms during the rate run. */
  lost?: number;
  p50us?: number;
  p99us?: number;
  notes?: string[];
}

/** The probe, in the first host's namespace, through host:port. */
function udpProbe(ns: string, host: string, p: number, cfg: Config): Promise<UdpRow> {
  const probe = path.join(__dirname, '..', 'udpprobe.js');
  const args = [host, p, cfg.seconds, 1400, 32, cfg.quick ? 500 : 2000].map(String);
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, probe, ...args],
      { timeout: (cfg.seconds + 60) * 1000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(stderr.trim() || err.message));
        const r = JSON.parse(stdout) as {
          mbps: number;
          datagramsPerSec: number;
          lost: number;
          p50: number;
          p99: number;
        };
        resolve({
          path: '',
          mbps: r.mbps,
          datagramsPerSec: r.datagramsPerSec,
          lost: r.lost,
          p50us: r.p50,
          p99us: r.p99,
        });
      },
    );
  });
}

/** A UDP path from the first host: where the probe sends, from which namespace. */
interface UdpSpec {
  name: string;
  /** The first host's namespace, where the probe runs. */
  ns: string;
  host: string;
  port: number;
  skip?: string;
}

/**
 * A pair of hosts for one build (a daemon of it on each, a UDP echo on the second) and its
 * paths: the plain link (`link`: the first pair only), `remote`, `tunnel`.
 */
async function udpPair(build: Build, link: boolean): Promise<UdpSpec[]> {
  const { a, b, ipB, da } = await hostPair(build);
  const echo = port();
  start('ip', [
    'netns',
    'exec',
    b,
    process.execPath,
    path.join(ROOT, 'test/fixtures/server.js'),
    'udp-echo',
    '0.0.0.0',
    String(echo),
  ]);

  const specs: UdpSpec[] = link
    ? [{ name: 'plain veth link (no proxy, no encryption)', ns: a, host: ipB, port: echo }]
    : [];
  const r = port();
  da.cli(
    'create',
    'url',
    `udp://:${r}`,
    'remote',
    ipB,
    'url',
    `udp://:${port()}`,
    'tail',
    'url',
    `udp://:${echo}`,
  );
  specs.push({
    name: named(build, 'wormhole remote (a TLS 1.3 stream per session)'),
    ns: a,
    host: '127.0.0.1',
    port: r,
  });
  const tunnelGone = missing({ 'wireguard-go': 'wireguard-go', wg: 'wireguard-tools' });
  const tp = port();
  if (!tunnelGone) {
    onBeforeStop(() => da.cli('tunnel-delete', ipB));
    da.cli(
      'create',
      'url',
      `udp://:${tp}`,
      'tunnel',
      ipB,
      'url',
      `udp://:${port()}`,
      'tail',
      'url',
      `udp://:${echo}`,
    );
  }
  specs.push({
    name: named(build, 'wormhole tunnel (wireguard-go)'),
    ns: a,
    host: '127.0.0.1',
    port: tp,
    skip: tunnelGone,
  });
  return specs;
}

/**
 * UDP between two hosts: the plain link, `remote`, `tunnel`, each wormhole row followed by
 * the same row of the build beside (on a pair of hosts of its own); the median of the rounds.
 */
export async function udpTwoHosts(cfg: Config, builds: Build[]): Promise<UdpRow[]> {
  const perBuild: UdpSpec[][] = [];
  for (const [i, b] of builds.entries()) perBuild.push(await udpPair(b, i === 0));
  // the link, then remote of each build, then tunnel of each build
  const [mine, ...others] = perBuild;
  const specs = [mine[0], ...mine.slice(1).flatMap((s, k) => [s, ...others.map((o) => o[k])])];
  const samples = specs.map(() => [] as UdpRow[]);
  const notes = specs.map((s) => (s.skip ? [s.skip] : []));
  for (let round = 0; round < cfg.repeats; round++) {
    for (const [i, s] of specs.entries()) {
      if (s.skip || notes[i].length) continue;
      try {
        samples[i].push(await udpProbe(s.ns, s.host, s.port, cfg));
      } catch (err) {
        notes[i].push(`failed: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  return specs.map((s, i) => {
    const pick = (f: (u: UdpRow) => number | undefined): number | undefined =>
      median(samples[i].map(f).filter((v): v is number => v !== undefined));
    const row: UdpRow = {
      path: s.name,
      mbps: pick((u) => u.mbps),
      datagramsPerSec: pick((u) => u.datagramsPerSec),
      lost: pick((u) => u.lost),
      p50us: pick((u) => u.p50us),
      p99us: pick((u) => u.p99us),
      notes: notes[i],
    };
    console.error(
      `# udp two hosts / ${row.path}: ${row.mbps?.toFixed(0)} Mbit/s, ${row.datagramsPerSec?.toFixed(0)} datagrams/s, ` +
        `p50 ${row.p50us?.toFixed(0)} µs, p99 ${row.p99us?.toFixed(0)} µs, lost ${row.lost}`,
    );
    return row;
  });
}
