/**
 * wormholed's flags: the original's (-H -K -I -E -C -P), what several daemons on one
 * machine need (--state-dir), and the limits that keep a key holder or a flood of clients
 * from bending a root daemon (--allow-bind, --allow-unix, --max-*, --api-idle).
 */
import * as net from 'node:net';
import { type DaemonAddress, parseDaemonAddress } from '../common/address';
import { UsageError, WormholeError } from '../common/errors';
import { type FlagSpec, countFlag, flagValue, parseFlags, secondsFlag } from '../common/flags';
import { DEFAULT_KEY_FILE } from '../common/key';
import { DEFAULT_STATE_DIR } from './state';

/** Everything the daemon is told at start. */
export interface DaemonOptions {
  listen: DaemonAddress[];
  keyFile: string;
  /** More keys, each with its rights (src/trust/keys.ts); none: -K's alone. */
  keysFile?: string;
  stateDir: string;
  internalIp?: string;
  externalIp?: string;
  overlayCidr: string;
  udpPorts: [number, number];
  /** The tunnel driver asked for (the flag keeps the original's name: --tunnel-engine). */
  tunnelDriver?: 'wireguard' | 'ipsec';
  dialTimeoutMs: number;
  udpIdleMs: number;
  /** Host directories docker-run may bind-mount from (as given; resolved at start). */
  allowBind: string[];
  /** Host directories whose unix sockets a tail may dial (as given; resolved at start). */
  allowUnix: string[];
  /** Open TCP connections per segment; more are refused at once. */
  maxConnections: number;
  /** UDP sessions (client addresses) per segment; more are refused at once. */
  maxUdpSessions: number;
  /** Bytes the engine's grown pipes may hold beyond their first size, all connections together. */
  pipeBudget: number;
  /** Open authenticated API connections (attached streams not counted); more are closed at once. */
  maxApiConnections: number;
  /** An API connection with no request for this long is closed. */
  apiIdleMs: number;
  /** How often segments that could not be built again at start are tried again. */
  retryFailedMs: number;
  /** Where Prometheus metrics are served (/metrics), if anywhere. */
  metrics?: DaemonAddress;
  /** Where the web view is served, if anywhere (src/ui). */
  ui?: DaemonAddress;
  /** One info line per proxied connection when it ends. */
  accessLog: boolean;
  /** Follow containers' `wormhole.NAME=PLAN` labels (src/segment/labels.ts). */
  labels: boolean;
  /** Take over from the daemon running on the same state directory (its sockets handed over). */
  takeover: boolean;
  /** After handing over, how long open connections may take to finish before this daemon exits. */
  drainTimeoutMs: number;
  /** The log level, from WORMHOLE_LOG. */
  logLevel: string;
  help: boolean;
  version: boolean;
}

/** Limits unless flags say otherwise. 20,000 connections: 40,000 fds, well inside root's limit. */
export const DEFAULT_MAX_CONNECTIONS = 20000;
export const DEFAULT_MAX_UDP_SESSIONS = 4096;
export const DEFAULT_MAX_API_CONNECTIONS = 256;
/** MiB the engine's grown pipes may hold in all (a pipe grows to 1 MiB for bulk data). */
export const DEFAULT_PIPE_BUDGET_MIB = 64;

/** WORMHOLE_LOG's accepted values (pino's levels). */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export const DAEMON_USAGE = `usage: wormholed [flags]

  -H ADDR            listen on ADDR: tcp://HOST:PORT or unix:///PATH (repeatable;
                     default tcp://0.0.0.0:9999). TCP is TLS with the pre-shared key.
  -K FILE            the pre-shared key (default ${DEFAULT_KEY_FILE}; made if missing);
                     its holder, named admin, may do everything
  --keys FILE        more keys, one a line: NAME KEYFILE [OPTIONS] (read-only, peer,
                     permit-listen=ADDR, permit-open=ADDR, permit-image=GLOB); read
                     again at SIGHUP
  --state-dir DIR    where this daemon keeps its state (default ${DEFAULT_STATE_DIR})
  -I IP              internal address for tunnels (default: source of the default route)
  -E IP              external address for tunnels (default: the -I address)
  -C CIDR            overlay range for tunnel addresses (default 100.65.0.0/14)
  -P FROM-TO         UDP ports for tunnels (default 4500-4599)
  --tunnel-engine E  wireguard or ipsec (default: the first the kernel offers)
  --dial-timeout S   seconds a tail is retried before a connection is dropped (default 5)
  --udp-idle S       seconds an idle UDP session is kept (default 60)
  --allow-bind DIR   docker-run may bind-mount host paths under DIR (repeatable; default
                     none: only named volumes)
  --allow-unix DIR   a unix tail may dial a host socket under DIR (repeatable; default
                     none: only sockets inside containers and abstract names)
  --max-connections N
                     open TCP connections per segment; more are refused at once
                     (default ${DEFAULT_MAX_CONNECTIONS})
  --max-udp-sessions N
                     UDP sessions (client addresses) per segment; more are dropped
                     (default ${DEFAULT_MAX_UDP_SESSIONS})
  --pipe-budget MIB  kernel memory the engine's pipes may grow into, all connections
                     together (default ${DEFAULT_PIPE_BUDGET_MIB}); past it pipes stay small
  --max-api-connections N
                     open authenticated API connections, attached peer streams aside;
                     more are closed at once (default ${DEFAULT_MAX_API_CONNECTIONS});
                     those in their TLS handshake have a budget of their own
  --api-idle S       seconds an API connection may send no request (default 30)
  --metrics ADDR     serve Prometheus metrics at http://HOST:PORT/metrics, ADDR being
                     tcp://HOST:PORT (plain HTTP: keep it on a private address)
  --ui ADDR          serve the web view (a live drawing of the segments) at ADDR,
                     tcp://127.0.0.1:PORT or unix:///PATH; 'wormhole ui' prints its
                     address with a token
  --no-access-log    no info line per proxied connection
  --labels           make segments from containers' wormhole.NAME=PLAN labels (one
                     daemon per Docker engine should: each would make them)
  --retry-failed S   seconds between tries of segments that could not be built
                     again at start (default 30)
  --takeover         take over from the wormholed running on the same --state-dir: its
                     listening sockets are handed to this one (no connection refused),
                     its containers and peer children adopted; it drains and exits
  --drain-timeout S  after handing over, seconds open connections may take to finish
                     before this daemon exits (default 10)
  --version          print wormholed's version
  -h, --help         this text

Logs are JSON lines on stderr; WORMHOLE_LOG=debug|info|warn|error sets the level.`;

const SPECS: FlagSpec[] = [
  { names: ['-H', '--host'], value: true, repeat: true },
  { names: ['-K', '--key'], value: true },
  { names: ['--keys'], value: true },
  { names: ['--state-dir'], value: true },
  { names: ['-I', '--internal-ip'], value: true },
  { names: ['-E', '--external-ip'], value: true },
  { names: ['-C', '--cidr'], value: true },
  { names: ['-P', '--ports'], value: true },
  { names: ['--tunnel-engine'], value: true },
  { names: ['--dial-timeout'], value: true },
  { names: ['--udp-idle'], value: true },
  { names: ['--allow-bind'], value: true, repeat: true },
  { names: ['--allow-unix'], value: true, repeat: true },
  { names: ['--max-connections'], value: true },
  { names: ['--max-udp-sessions'], value: true },
  { names: ['--max-api-connections'], value: true },
  { names: ['--pipe-budget'], value: true },
  { names: ['--api-idle'], value: true },
  { names: ['--retry-failed'], value: true },
  { names: ['--metrics'], value: true },
  { names: ['--ui'], value: true },
  { names: ['--no-access-log'], value: false },
  { names: ['--labels'], value: false },
  { names: ['--takeover'], value: false },
  { names: ['--drain-timeout'], value: true },
  { names: ['-h', '--help'], value: false },
  { names: ['--version'], value: false },
];

function ip(text: string | undefined, flag: string): string | undefined {
  if (text === undefined) return undefined;
  if (!net.isIP(text)) throw new UsageError(`${flag} "${text}" is not an IP address`);
  return text;
}

/** Check an IPv4 CIDR like 100.65.0.0/14. */
export function checkCidr(text: string): string {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(text);
  if (!m || !net.isIPv4(m[1]) || Number(m[2]) > 30 || Number(m[2]) < 8) {
    throw new UsageError(`-C "${text}" is not an IPv4 range like 100.65.0.0/14 (prefix 8-30)`);
  }
  return text;
}

/** Parse FROM-TO. */
export function parsePortRange(text: string): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  const from = m ? Number(m[1]) : NaN;
  const to = m ? Number(m[2]) : NaN;
  if (!m || from < 1 || to > 65535 || from > to)
    throw new UsageError(`-P "${text}" is not a port range like 4500-4599`);
  return [from, to];
}

/** A directory for --allow-bind or --allow-unix: absolute (resolved, symlinks followed, at start). */
function absoluteDir(flag: string, text: string): string {
  if (!text.startsWith('/')) throw new UsageError(`${flag} "${text}" is not an absolute path`);
  return text;
}

/** --metrics: a TCP address only (HTTP), its host as given (127.0.0.1 when left out). */
function metricsAddress(text: string | undefined): DaemonAddress | undefined {
  if (text === undefined) return undefined;
  const a = parseDaemonAddress(text);
  if (a.kind !== 'tcp' || !/:\d{1,5}$/.test(text))
    throw new UsageError(
      `--metrics "${text}" is not a TCP address with a port: give tcp://HOST:PORT, e.g. tcp://127.0.0.1:9101`,
    );
  return a;
}

/** --ui: a TCP address with a port, or a unix socket's absolute path. */
function uiAddress(text: string | undefined): DaemonAddress | undefined {
  if (text === undefined) return undefined;
  let a: DaemonAddress;
  try {
    a = parseDaemonAddress(text);
  } catch (e) {
    throw e instanceof UsageError ? new UsageError(`--ui ${e.message}`) : e;
  }
  if (a.kind === 'tcp' && !/:\d{1,5}$/.test(text))
    throw new UsageError(
      `--ui "${text}" has no port: give tcp://127.0.0.1:PORT (or unix:///PATH), e.g. tcp://127.0.0.1:9180`,
    );
  return a;
}

/** WORMHOLE_LOG, checked: a typo must not be a stack trace from the logger. */
export function logLevel(env: NodeJS.ProcessEnv): string {
  const level = env.WORMHOLE_LOG ?? 'info';
  if (!LOG_LEVELS.includes(level))
    throw new WormholeError(
      'BAD_ENV',
      `WORMHOLE_LOG="${level}" is not a log level: use ${LOG_LEVELS.join(', ')}`,
    );
  return level;
}

/** Parse wormholed's argv (and its environment). */
export function parseDaemonOptions(argv: readonly string[], env = process.env): DaemonOptions {
  const p = parseFlags(argv, SPECS);
  if (p.positional.length > 0) throw new UsageError(`unexpected argument "${p.positional[0]}"`);
  const driver = flagValue(p, '--tunnel-engine');
  if (driver !== undefined && driver !== 'wireguard' && driver !== 'ipsec') {
    throw new UsageError(`--tunnel-engine "${driver}": use wireguard or ipsec`);
  }
  const internalIp = ip(flagValue(p, '-I'), '-I');
  return {
    listen: (p.values.get('-H') ?? ['tcp://0.0.0.0:9999']).map((a) => parseDaemonAddress(a, '0.0.0.0')),
    keyFile: flagValue(p, '-K', DEFAULT_KEY_FILE),
    keysFile: flagValue(p, '--keys'),
    stateDir: flagValue(p, '--state-dir', DEFAULT_STATE_DIR),
    internalIp,
    externalIp: ip(flagValue(p, '-E'), '-E') ?? internalIp,
    overlayCidr: checkCidr(flagValue(p, '-C', '100.65.0.0/14')),
    udpPorts: parsePortRange(flagValue(p, '-P', '4500-4599')),
    tunnelDriver: driver as DaemonOptions['tunnelDriver'],
    dialTimeoutMs: secondsFlag(flagValue(p, '--dial-timeout', '5'), '--dial-timeout'),
    udpIdleMs: secondsFlag(flagValue(p, '--udp-idle', '60'), '--udp-idle'),
    allowBind: (p.values.get('--allow-bind') ?? []).map((d) => absoluteDir('--allow-bind', d)),
    allowUnix: (p.values.get('--allow-unix') ?? []).map((d) => absoluteDir('--allow-unix', d)),
    maxConnections: countFlag(
      flagValue(p, '--max-connections', String(DEFAULT_MAX_CONNECTIONS)),
      '--max-connections',
      1,
      1_000_000,
    ),
    maxUdpSessions: countFlag(
      flagValue(p, '--max-udp-sessions', String(DEFAULT_MAX_UDP_SESSIONS)),
      '--max-udp-sessions',
      1,
      1_000_000,
    ),
    pipeBudget:
      countFlag(
        flagValue(p, '--pipe-budget', String(DEFAULT_PIPE_BUDGET_MIB)),
        '--pipe-budget',
        0,
        1_000_000,
      ) *
      1024 *
      1024,
    maxApiConnections: countFlag(
      flagValue(p, '--max-api-connections', String(DEFAULT_MAX_API_CONNECTIONS)),
      '--max-api-connections',
      1,
      100_000,
    ),
    apiIdleMs: secondsFlag(flagValue(p, '--api-idle', '30'), '--api-idle'),
    metrics: metricsAddress(flagValue(p, '--metrics')),
    ui: uiAddress(flagValue(p, '--ui')),
    accessLog: !p.values.has('--no-access-log'),
    labels: p.values.has('--labels'),
    retryFailedMs: secondsFlag(flagValue(p, '--retry-failed', '30'), '--retry-failed'),
    takeover: p.values.has('--takeover'),
    drainTimeoutMs: secondsFlag(flagValue(p, '--drain-timeout', '10'), '--drain-timeout'),
    logLevel: logLevel(env),
    help: p.values.has('-h'),
    version: p.values.has('--version'),
  };
}
