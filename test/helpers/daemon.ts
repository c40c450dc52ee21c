/**
 * Real daemons for tests: `startDaemon(t)` runs bin/wormholed (optionally inside a network
 * namespace, as a test host) with its own key, state directory and unix socket, and stops it
 * when the test ends. `cli()` runs bin/wormhole against it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SegmentInfo } from '../../src/api/protocol';
import type { Cleanup } from './netns';

export const ROOT = path.resolve(__dirname, '../../..');
export const WORMHOLED = path.join(ROOT, 'bin/wormholed');
export const WORMHOLE = path.join(ROOT, 'bin/wormhole');

/** What a command printed and how it exited. */
export interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion (argv, no shell); `env` is added to this process's. */
export function runCmd(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string; env?: Record<string, string> } = {},
): Promise<CmdResult> {
  return new Promise((resolve) => {
    const env = opts.env ? { ...process.env, ...opts.env } : process.env;
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // a program that exits without reading its input (a short bash -c) is not an error
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Write a key file (mode 0600) with a random or given key. */
export function writeKey(file: string, key = randomBytes(24).toString('hex')): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** A segment as create reports it. */
export interface Created {
  id: string;
  url: string;
  port: number;
}

/** The "ID URL" line of create, split. */
export function parseCreate(stdout: string): Created {
  const [id, url] = stdout.trim().split(' ');
  return { id, url, port: Number(url.slice(url.lastIndexOf(':') + 1)) };
}

/** A running test daemon. */
export interface TestDaemon {
  dir: string;
  keyFile: string;
  socket: string;
  /** TCP address it listens on (tcp://...). */
  tcp: string;
  netns?: string;
  proc: ChildProcess;
  /** bin/wormhole against this daemon's unix socket. */
  cli(...args: string[]): Promise<CmdResult>;
  /** `wormhole create WORDS...`, which must succeed (else it throws with its stderr): the new segment. */
  create(...words: string[]): Promise<Created>;
  /**
   * bin/wormhole as the seed writes it (no flags), run on the daemon's namespace host; it
   * finds the key through WORMHOLE_KEY_FILE.
   */
  asWritten(...args: string[]): Promise<CmdResult>;
  /** bin/wormhole over TCP with a key file. */
  cliTcp(keyFile: string, ...args: string[]): Promise<CmdResult>;
  /** Everything the daemon logged so far. */
  log(): string;
  /** Wait for the daemon to exit by itself (it handed over); its exit code. */
  exited(): Promise<number | null>;
  /** SIGTERM and wait; resolves with the exit code and how long it took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** A segment as `list --json` shows it on `d` (asserted listed). */
export async function listed(d: TestDaemon, id: string): Promise<SegmentInfo> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  const found = (JSON.parse(r.stdout) as SegmentInfo[]).find((s) => s.id === id);
  assert.ok(found, `segment ${id} is listed`);
  return found;
}

/** Options for startDaemon. */
export interface DaemonOpts {
  /** Run inside this namespace (via ip netns exec), listening on 0.0.0.0:9999. */
  netns?: string;
  /** Use this key (text) instead of a random one. */
  key?: string;
  /** Extra daemon flags. */
  args?: string[];
  /**
   * Run the CLI as the seed writes it (`asWritten`: no -H, no -K): the daemon listens on the
   * default port of its namespace host, and the CLI finds the key through WORMHOLE_KEY_FILE
   * (the test's own key file, never /etc/wormhole). `hosts` lines go to /etc/netns/NS/hosts
   * (e.g. "10.77.1.2 myserver"), which ip netns exec mounts on /etc/hosts.
   */
  seedStyle?: { hosts?: string[] };
  /** TCP port of the API (in a namespace: default 9999; else a random one). */
  port?: number;
  /**
   * Take over from the daemon running on `dir` (give its `port` too): resolves once the new
   * daemon says it serves.
   */
  takeover?: boolean;
  /** Extra environment for the daemon. */
  env?: Record<string, string>;
  /** Reuse this directory (state dir, key) instead of a fresh one: a restart. */
  dir?: string;
  /** Tries left when the random API port is taken. */
  retries?: number;
}

/** Start bin/wormholed and wait until it answers. */
export async function startDaemon(t: Cleanup, opts: DaemonOpts = {}): Promise<TestDaemon> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'whd-'));
  const keyFile = path.join(dir, 'key.secret');
  if (opts.seedStyle) {
    if (!opts.netns) throw new Error('seedStyle needs a netns');
    const etc = path.join('/etc/netns', opts.netns);
    fs.mkdirSync(etc, { recursive: true });
    const hosts = ['127.0.0.1 localhost', ...(opts.seedStyle.hosts ?? [])];
    fs.writeFileSync(path.join(etc, 'hosts'), `${hosts.join('\n')}\n`);
    t.after(() => fs.rmSync(etc, { recursive: true, force: true }));
  }
  if (!fs.existsSync(keyFile) || opts.key !== undefined) writeKey(keyFile, opts.key);
  const socket = path.join(dir, 'api.sock');
  // below the ephemeral range (32768+), where outgoing connections of busy tests take ports
  const port = opts.port ?? (opts.netns ? 9999 : 20000 + (randomBytes(2).readUInt16BE(0) % 12000));
  const tcp = opts.netns ? `tcp://0.0.0.0:${port}` : `tcp://127.0.0.1:${port}`;
  const daemonArgs = [
    '-H',
    tcp,
    '-H',
    `unix://${socket}`,
    '-K',
    keyFile,
    '--state-dir',
    path.join(dir, 'state'),
    ...(opts.takeover ? ['--takeover'] : []),
    ...(opts.args ?? []),
  ];
  const logFile = path.join(dir, `wormholed-${Date.now()}.log`);
  const out = fs.openSync(logFile, 'a');
  const [file, args] = opts.netns
    ? ['ip', ['netns', 'exec', opts.netns, process.execPath, WORMHOLED, ...daemonArgs]]
    : [process.execPath, [WORMHOLED, ...daemonArgs]];
  const proc = spawn(file, args as string[], {
    stdio: ['ignore', out, out],
    env: { ...process.env, WORMHOLE_LOG: 'debug', ...opts.env },
  });
  fs.closeSync(out);
  let exited: { code: number | null } | undefined;
  const exitPromise = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      exited = { code };
      resolve(code);
    }),
  );
  const cli = (...a: string[]): Promise<CmdResult> =>
    runCmd(process.execPath, [WORMHOLE, '-H', `unix://${socket}`, ...a]);
  const d: TestDaemon = {
    dir,
    keyFile,
    socket,
    tcp: opts.netns ? `tcp://127.0.0.1:${port}` : tcp,
    netns: opts.netns,
    proc,
    cli,
    async create(...words) {
      const r = await cli('create', ...words);
      if (r.code !== 0) throw new Error(`create ${words.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return parseCreate(r.stdout);
    },
    asWritten: (...a) =>
      runCmd('ip', ['netns', 'exec', opts.netns ?? '', process.execPath, WORMHOLE, ...a], {
        env: { WORMHOLE_KEY_FILE: keyFile },
      }),
    cliTcp: (key, ...a) => runCmd(process.execPath, [WORMHOLE, '-H', tcp, '-K', key, ...a]),
    log: () => fs.readFileSync(logFile, 'utf8'),
    exited: () => exitPromise,
    async stop(signal = 'SIGTERM') {
      const started = Date.now();
      if (exited) return { code: exited.code, ms: 0 };
      proc.kill(signal);
      const code = await exitPromise;
      return { code, ms: Date.now() - started };
    },
  };
  t.after(async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exitPromise;
      clearTimeout(timer);
    }
  });
  for (let i = 0; i < 100; i++) {
    if (exited) {
      // another test's listener took the random port first: try another one
      if (!opts.netns && !opts.port && (opts.retries ?? 3) > 0 && /address in use/.test(d.log()))
        return startDaemon(t, { ...opts, retries: (opts.retries ?? 3) - 1 });
      throw new Error(`wormholed exited with ${exited.code}: ${d.log()}`);
    }
    if (opts.takeover) {
      // the predecessor answers pings until then
      if (/took over: serving/.test(d.log())) return d;
    } else if (fs.existsSync(socket) && /wormholed started/.test(d.log())) {
      // (started: the segments its state directory keeps are built again by then)
      const r = await cli('ping');
      if (r.code === 0) return d;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`wormholed did not answer: ${d.log()}`);
}
