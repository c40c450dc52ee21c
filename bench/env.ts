/**
 * The bench's surroundings: the processes it starts (all stopped at the end), ports, tools
 * that may be missing, namespaces, and wormhole daemons with a key and state of their own,
 * of this checkout or of the build beside it (`--beside`).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeNetns, withHostPair } from '../test/helpers/netns';

export const ROOT = path.resolve(__dirname, '../..');

const procs: ChildProcess[] = [];
const cleanups: (() => void)[] = [];
/** Clean-ups that need the daemons still running (a tunnel is deleted through its daemon). */
const beforeStop: (() => void)[] = [];

export const onCleanup = (fn: () => void): number => cleanups.push(fn);
export const onBeforeStop = (fn: () => void): number => beforeStop.push(fn);

/**
 * Start a process whose output nobody reads (or goes to the file `out`, an open descriptor
 * this closes); it is stopped by stopAll().
 */
export function start(file: string, args: string[], extraFd = false, out?: number): ChildProcess {
  const stdio: ('ignore' | number)[] = ['ignore', out ?? 'ignore', out ?? 'ignore'];
  if (extraFd) stdio.push(fs.openSync('/dev/null', 'r')); // docker-proxy reports on fd 3
  const p = spawn(file, args, { stdio });
  if (out !== undefined) fs.closeSync(out);
  p.on('error', () => {}); // a missing binary shows up as a port nobody listens on
  procs.push(p);
  return p;
}

/** Run to completion, output as a string; throws on a non-zero exit. */
export function sh(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Stop everything this run started, newest first, then run the clean-ups. */
export async function stopAll(): Promise<void> {
  for (const c of beforeStop.splice(0)) {
    try {
      c();
    } catch {
      // best effort: the namespace holding it is removed below anyway
    }
  }
  for (const p of procs.splice(0).reverse()) if (p.exitCode === null) p.kill('SIGTERM');
  await sleep(1000);
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // best effort
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when the process has exited (at once if it has): its exit code, null after a signal. */
export function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

/** The tool, if it is on PATH (or an absolute path that exists). */
export function which(tool: string): string | undefined {
  if (tool.startsWith('/')) return fs.existsSync(tool) ? tool : undefined;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const full = path.join(dir, tool);
    if (fs.existsSync(full)) return full;
  }
  return undefined;
}

/**
 * Why a row cannot run, in one line, or undefined when every tool it needs is here.
 * `tools` maps each binary to the Debian package that has it.
 */
export function missing(tools: Record<string, string>): string | undefined {
  const gone = Object.entries(tools).filter(([t]) => !which(t));
  if (gone.length === 0) return undefined;
  return `missing ${gone.map(([t]) => t).join(', ')} (apt-get install ${[...new Set(gone.map(([, p]) => p))].join(' ')})`;
}

// Ports below the ephemeral range (32768+), which the connection runs fill with TIME_WAIT
// sockets; a random start so that two benches on one machine rarely collide.
let nextPort = 12000 + Math.floor(Math.random() * 1500) * 10;
export const port = (): number => nextPort++;

/** Can a TCP connection be made to host:port, from this process (no netns) or inside netns? */
function probe(host: string, p: number, netns?: string): Promise<boolean> {
  if (netns) {
    // a short node inside the namespace: needs nothing but node and ip
    const code = `require('net').connect(${p},'${host}',()=>process.exit(0)).on('error',()=>process.exit(1))`;
    return new Promise((resolve) => {
      const c = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', code], { stdio: 'ignore' });
      c.on('close', (status) => resolve(status === 0));
    });
  }
  return new Promise((resolve) => {
    const s = net.connect({ host, port: p }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Wait (up to 10 s) until something accepts on host:port. */
export async function waitPort(host: string, p: number, netns?: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await probe(host, p, netns)) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${host}:${p}`);
}

/** A fresh network namespace with its loopback up, removed at the end. */
export function netns(name: string): string {
  sh('ip', 'netns', 'add', name);
  onCleanup(() => removeNetns(name));
  sh('ip', '-n', name, 'link', 'set', 'lo', 'up');
  return name;
}

/**
 * A veth pair from namespace a (or the host, when a is undefined) to namespace b, addressed
 * ipA/24 and ipB/24 and up. Removed with its namespace.
 */
export function veth(
  a: string | undefined,
  b: string,
  nameA: string,
  nameB: string,
  ipA: string,
  ipB: string,
) {
  sh(
    'ip',
    'link',
    'add',
    nameA,
    ...(a ? ['netns', a] : []),
    'type',
    'veth',
    'peer',
    'name',
    nameB,
    'netns',
    b,
  );
  const inA = a ? ['-n', a] : [];
  if (!a) onCleanup(() => sh('ip', 'link', 'del', nameA));
  sh('ip', ...inA, 'addr', 'add', `${ipA}/24`, 'dev', nameA);
  sh('ip', '-n', b, 'addr', 'add', `${ipB}/24`, 'dev', nameB);
  sh('ip', ...inA, 'link', 'set', nameA, 'up');
  sh('ip', '-n', b, 'link', 'set', nameB, 'up');
}

/** The test echo server (echo every byte; Node) on host:port, in netns if given. */
export function echoServer(host: string, p: number, netns?: string): ChildProcess {
  const argv = [process.execPath, path.join(ROOT, 'test/fixtures/server.js'), 'tcp-echo', host, String(p)];
  return netns ? start('ip', ['netns', 'exec', netns, ...argv]) : start(argv[0], argv.slice(1));
}

/** iperf3's server on port (every address, or bind), in netns if given. */
export function iperfServer(p: number, netns?: string, bind?: string): ChildProcess {
  const argv = ['iperf3', '-s', '-p', String(p), ...(bind ? ['-B', bind] : [])];
  return netns ? start('ip', ['netns', 'exec', netns, ...argv]) : start(argv[0], argv.slice(1));
}

/**
 * A built checkout of wormhole whose daemon and CLI the bench runs: this one, or the one given
 * by `--beside DIR` (bench/beside.ts), measured in the same rounds.
 */
export interface Build {
  /** The checkout: bin/wormholed, bin/wormhole and what they load (dist/, native/build/). */
  root: string;
  /** The name of the build beside this one (its rows are `wormhole (NAME)`); undefined for this one. */
  beside?: string;
}

/** This checkout. */
export const THIS_BUILD: Build = { root: ROOT };

/**
 * A row's name for a build: for this build the name as it is; for the build beside, its
 * label after `wormhole` (`wormhole (NAME) remote`), or after the name where the name does
 * not start with it (`one tail, wormhole (NAME)`). bench/beside.ts pairs rows by it.
 */
export function named(b: Build, name: string): string {
  if (b.beside === undefined) return name;
  const who = `wormhole (${b.beside})`;
  return name.startsWith('wormhole') ? who + name.slice('wormhole'.length) : `${name}, ${who}`;
}

export interface Daemon {
  sock: string;
  pid: number;
  /** Its directory: key, API socket, state directory, logs. */
  dir: string;
  /** The namespace it runs in, if any. */
  ns?: string;
  /** Whose daemon and CLI these are. */
  build: Build;
  proc: ChildProcess;
  /** The CLI of its build against this daemon: its output, trimmed. */
  cli: (...a: string[]) => string;
  /** What it logged so far (pino's JSON lines), when started with its log kept; else ''. */
  log: () => string;
}

/** How a daemon is started: every field optional. */
export interface DaemonOptions {
  /** Its key (random: a daemon of its own); two daemons that are peers share one. */
  key?: string;
  /** The namespace to run it in (it then also listens on TCP 9999, for its peers). */
  ns?: string;
  /** Keep its log (Daemon.log). */
  keepLog?: boolean;
  /** More wormholed flags. */
  flags?: string[];
}

/** A wormholed of `build` with its own key and state. */
export function daemon(build: Build, o: DaemonOptions = {}): Daemon {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whbench-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'key'), `${o.key ?? randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
  const d = spawnDaemon(build, dir, o.ns, false, o.keepLog ?? false, o.flags ?? []);
  for (let i = 0; i < 100 && !fs.existsSync(d.sock); i++) execFileSync('sleep', ['0.1']);
  return d;
}

/**
 * A new wormholed (same build) on the directory (key, state, flags) of `d`, which has stopped
 * (a restart: it builds the segments kept there again) or, with `takeover`, still runs and
 * hands its sockets over. Returns at once, its log kept: the caller waits for what it measures.
 */
export function daemonAgain(d: Daemon, takeover = false): Daemon {
  return spawnDaemon(d.build, d.dir, d.ns, takeover, true);
}

/** The second host's address of each pair of hosts standing now. */
const pairsUp = new Set<string>();

/**
 * Two test hosts (test/helpers/netns.ts: namespaces a and b joined by a veth pair) with a
 * daemon of `build` on each, peers of each other (one key); all removed at the end. Returns
 * the first host's daemon (both with `flags`). No two pairs standing at once share addresses: a tunnel's
 * interface is named after both ends' addresses, and wireguard-go's control socket lies in
 * /var/run/wireguard whatever the namespace (with `--beside`, each build has a pair).
 */
export async function hostPair(
  build: Build,
  flags: string[] = [],
): Promise<{ a: string; b: string; ipB: string; da: Daemon; db: Daemon }> {
  let pair = withHostPair({ after: (fn) => onCleanup(() => void fn()) });
  // one that collides is removed at the end with the others
  while (pairsUp.has(pair.ipB)) pair = withHostPair({ after: (fn) => onCleanup(() => void fn()) });
  const { a, b, ipB } = pair;
  pairsUp.add(ipB);
  onCleanup(() => pairsUp.delete(ipB));
  const key = randomBytes(16).toString('hex');
  const da = daemon(build, { key, ns: a, flags });
  const db = daemon(build, { key, ns: b, flags });
  await waitPort(ipB, 9999, a);
  return { a, b, ipB, da, db };
}

let daemonRuns = 0;

function spawnDaemon(
  build: Build,
  dir: string,
  ns: string | undefined,
  takeover: boolean,
  keepLog: boolean,
  flags: string[] = [],
): Daemon {
  const sock = path.join(dir, 'api.sock');
  const args = [
    path.join(build.root, 'bin/wormholed'),
    '-H',
    `unix://${sock}`,
    '-K',
    path.join(dir, 'key'),
    '--state-dir',
    path.join(dir, 'state'),
  ];
  if (ns) args.push('-H', 'tcp://0.0.0.0:9999');
  if (takeover) args.push('--takeover');
  args.push(...flags);
  const logFile = path.join(dir, `wormholed-${++daemonRuns}.log`);
  const out = keepLog ? fs.openSync(logFile, 'a') : undefined;
  // `ip netns exec` execs node in place, so the pid is the daemon's own
  const p = ns
    ? start('ip', ['netns', 'exec', ns, process.execPath, ...args], false, out)
    : start(process.execPath, args, false, out);
  const cli = (...a: string[]): string =>
    sh(process.execPath, path.join(build.root, 'bin/wormhole'), '-H', `unix://${sock}`, ...a).trim();
  const log = (): string => (keepLog && fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  return { sock, pid: p.pid!, dir, ns, build, proc: p, cli, log };
}

/** The soft limit on open files of this process. */
export function fdLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}
