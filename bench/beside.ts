/**
 * `--beside DIR [--beside-label NAME]`: every wormhole row measured again, in the same rounds,
 * with the daemon and CLI of another built checkout of wormhole, so that a change that must
 * not alter behaviour can be shown within noise of the build before it (issue 16). Here: the
 * options read and checked, and the table of this build's figures over the other's, row by
 * row. The scenes name the other build's rows with env.ts's named(); this pairs them by it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from './config';
import { type Build, named } from './env';
import type { Row } from './report';
import type { BalanceRow } from './scenes/balance';
import type { ColdStart } from './scenes/cold-start';
import type { Samples } from './scenes/paths';
import type { Restart } from './scenes/restart';
import type { UdpRow } from './scenes/sockets';
import type { TwoHosts } from './scenes/two-hosts';

/**
 * What a checkout must hold for the bench to run it: the daemon and the CLI, what they load
 * (compiled JavaScript, the engine's addon, the npm dependencies), and the client and grammar
 * the restart scene creates its segments with.
 */
const BUILT = [
  'bin/wormholed',
  'bin/wormhole',
  'dist/src/daemon/main.js',
  'dist/src/cli/main.js',
  'dist/src/client/index.js',
  'dist/src/api/grammar.js',
  'native/build/Release/wormhole.node',
  'node_modules',
];

/** Print one line and exit 1 (nothing has started yet). */
function refuse(line: string): never {
  console.error(`bench: ${line}`);
  process.exit(1);
}

/** The value after `flag` in argv, undefined without the flag; refuses a flag with no value. */
function option(argv: string[], flag: string, what: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) refuse(`${flag} takes ${what}`);
  return v;
}

/**
 * The build named by `--beside DIR` (its rows labelled `--beside-label NAME`, else the short
 * commit of DIR's HEAD), or undefined without the option. When DIR cannot be run (missing, not
 * built, no name to give it), one line saying what to do, and exit 1.
 */
export function besideBuild(argv: string[]): Build | undefined {
  const dir = option(argv, '--beside', 'the directory of another built checkout of wormhole');
  let label = option(argv, '--beside-label', 'a name for the build beside (e.g. main)');
  if (dir === undefined) {
    if (label !== undefined) refuse('--beside-label names the build of --beside DIR: give --beside too');
    return undefined;
  }
  // npm runs the script from the project's root: DIR is relative to where npm was run
  const root = path.resolve(process.env.INIT_CWD ?? process.cwd(), dir);
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory())
    refuse(`--beside ${dir}: no such directory (give the directory of another checkout of wormhole)`);
  const absent = BUILT.find((f) => !fs.existsSync(path.join(root, f)));
  if (absent)
    refuse(
      `--beside ${dir}: no ${absent} there: build it first (./setup.sh, or npm ci && npm run build in it)`,
    );
  if (label === undefined) {
    try {
      label = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      refuse(`--beside ${dir}: not a git checkout, so no commit to name it by: give --beside-label NAME`);
    }
  }
  // the name goes into markdown tables and row names
  if (!/^[^|\p{Cc}]{1,40}$/u.test(label) || label.trim() !== label)
    refuse('--beside-label takes 1 to 40 characters, no |, no control characters, no space at either end');
  return { root, beside: label };
}

/** One figure of one wormhole row, this build's and the other build's. */
export interface Figure {
  scene: string;
  path: string;
  figure: string;
  /** Whether less is better (latency, memory, time, failures). */
  lower: boolean;
  mine?: number;
  theirs?: number;
  /**
   * Where the rounds were several (a full run of the local scenes): the larger of the two
   * builds' spreads, (largest sample - smallest) / median. A ratio nearer 1 than this is noise.
   */
  spread?: number;
}

/**
 * Which figures of a kind of row are compared: name, less is better, how it is read, and
 * where its rounds' samples are, if kept.
 */
type Spec<R> = [
  figure: string,
  lower: boolean,
  get: (r: R) => number | undefined,
  samples?: (r: R) => number[] | undefined,
][];

const median = (xs: number[] | undefined): number | undefined =>
  xs?.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : undefined;

/** (largest - smallest) / median of several samples; undefined for fewer than two. */
function spreadOf(xs: number[] | undefined): number | undefined {
  const mid = median(xs);
  if (!xs || xs.length < 2 || !mid) return undefined;
  return (Math.max(...xs) - Math.min(...xs)) / mid;
}

/** Each row of this build that has its pair of the build beside: every figure of `spec`. */
function paired<R extends { path: string }>(
  scene: string,
  rows: R[] | undefined,
  other: Build,
  spec: Spec<R>,
): Figure[] {
  const out: Figure[] = [];
  for (const r of rows ?? []) {
    const theirs = rows!.find((x) => x.path === named(other, r.path));
    if (!theirs) continue; // a peer's row, or one of the build beside's own
    for (const [figure, lower, get, samples] of spec) {
      const spreads = samples ? [r, theirs].map((x) => spreadOf(samples(x))) : [undefined];
      const spread = spreads.some((x) => x === undefined) ? undefined : Math.max(...(spreads as number[]));
      const f = { scene, path: r.path, figure, lower, mine: get(r), theirs: get(theirs), spread };
      if (f.mine !== undefined || f.theirs !== undefined) out.push(f);
    }
  }
  return out;
}

const LATENCY: Spec<{ p50us?: number; p99us?: number }> = [
  ['p50 (µs)', true, (r) => r.p50us],
  ['p99 (µs)', true, (r) => r.p99us],
];
/** Rows of TCP paths; the local scenes' keep their rounds' samples (a full run). */
const TCP: Spec<Row & { samples?: Samples }> = [
  ['Gbit/s', false, (r) => r.gbps, (r) => r.samples?.gbps],
  ['new conn/s', false, (r) => r.connsPerSec, (r) => r.samples?.connsPerSec],
  ['p50 (µs)', true, (r) => r.p50us, (r) => r.samples?.p50us],
  ['p99 (µs)', true, (r) => r.p99us, (r) => r.samples?.p99us],
];
/** The local scenes' rows: TCP and memory at each idle count. */
const withMemory = (idle: number[]): Spec<Row> => [
  ...TCP,
  ...idle.map((n): Spec<Row>[number] => [
    `MiB, ${n.toLocaleString('en-US')} idle`,
    true,
    (r) => r.idleMiB?.[n],
  ]),
];

/** What run.ts keeps of a run (dist/bench-results.json), the parts with wormhole rows. */
export interface Results {
  oneNamespace?: (Row & { samples?: Samples })[];
  acrossNamespaces?: (Row & { samples?: Samples })[];
  coldStart?: ColdStart | string;
  twoHosts?: TwoHosts;
  restart?: Restart;
  balance?: BalanceRow[];
  sockets?: { tcpToUnix: Row[]; udpTwoHosts: UdpRow[] };
}

/** Every figure of every wormhole row of the run, beside the same of the build `other`. */
export function besideFigures(r: Results, other: Build, cfg: Config): Figure[] {
  const cold = typeof r.coldStart === 'object' ? r.coldStart : undefined;
  const coldRows = cold?.beside ? [{ path: 'wormhole', ...cold }, cold.beside] : undefined;
  const ping = r.twoHosts?.beside ? [{ path: 'wormhole', ...r.twoHosts }, r.twoHosts.beside] : undefined;
  return [
    ...paired('one namespace', r.oneNamespace, other, withMemory(cfg.idle)),
    ...paired('across namespaces', r.acrossNamespaces, other, withMemory(cfg.idle)),
    ...paired('cold start', coldRows, other, [
      ['trigger docker-run, first byte (ms)', true, (x) => median(x.wormholeMs)],
      ['after idle, first byte (ms)', true, (x) => median(x.afterIdleMs)],
    ]),
    ...paired('two hosts', r.twoHosts?.rows, other, [
      ['Gbit/s', false, (x) => x.gbps],
      ['new conn/s', false, (x) => x.connsPerSec],
      ...LATENCY,
    ]),
    ...paired('two hosts', ping, other, [
      ['wormhole ping (ms)', true, (x) => x.peerPingMs],
      ['first ping after a start (ms)', true, (x) => x.peerPingFirstMs],
    ]),
    ...paired('restart', r.restart?.paths, other, [
      ['failed', true, (x) => x.failed],
      ['longest gap (ms)', true, (x) => x.gapMs],
      ['new process serving (ms)', true, (x) => x.backMs],
    ]),
    ...paired('serve again (segments kept)', r.restart?.serveAgain, other, [
      ['SIGTERM to exit (ms)', true, (x) => median(x.stopMs)],
      ['restart (ms)', true, (x) => median(x.restartMs)],
      ['takeover, new serving (ms)', true, (x) => median(x.takeoverServingMs)],
      ['takeover, old gone (ms)', true, (x) => median(x.takeoverMs)],
      ['takeover, clients failed', true, (x) => x.takeoverClients.failed],
    ]),
    ...paired('several tails', r.balance, other, [['new conn/s', false, (x) => x.connsPerSec]]),
    ...paired('tcp -> unix', r.sockets?.tcpToUnix, other, TCP),
    ...paired('udp two hosts', r.sockets?.udpTwoHosts, other, [
      ['Mbit/s echoed', false, (x) => x.mbps],
      ['datagrams/s', false, (x) => x.datagramsPerSec],
      ['lost', true, (x) => x.lost],
      ...LATENCY,
    ]),
  ];
}

/** A figure as printed: whole numbers as they are, else none from 100 up, one from 10, two below. */
const shown = (v: number | undefined): string =>
  v === undefined
    ? '–'
    : v.toFixed(Number.isInteger(v) || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);

/**
 * The beside table: one line per figure, this build's value over the other's, and the spread
 * of the rounds where there were several (the noise the ratio is read against).
 */
export function besideTable(figures: Figure[], other: Build): string {
  const spread = figures.some((f) => f.spread !== undefined);
  const head = [
    `| scene | path | figure | this build | ${other.beside} | this / ${other.beside} | better when |${spread ? " rounds' spread |" : ''}`,
    `|---|---|---|---|---|---|---|${spread ? '---|' : ''}`,
  ];
  const body = figures.map((f) => {
    const ratio = f.mine !== undefined && f.theirs ? `${(f.mine / f.theirs).toFixed(2)}x` : '–';
    const better = f.lower ? 'lower' : 'higher';
    const noise = !spread ? '' : f.spread === undefined ? ' – |' : ` ${(f.spread * 100).toFixed(0)}% |`;
    return `| ${f.scene} | ${f.path} | ${f.figure} | ${shown(f.mine)} | ${shown(f.theirs)} | ${ratio} | ${better} |${noise}`;
  });
  return [...head, ...body].join('\n');
}
