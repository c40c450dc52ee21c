/**
 * wormholed's flags: the original's (-H -K -I -E -C -P) and what several daemons on one
 * machine need (--state-dir).
 */
import * as net from 'node:net';
import { type DaemonAddress, parseDaemonAddress } from '../common/address';
import { UsageError } from '../common/errors';
import { type FlagSpec, flagValue, parseFlags, secondsFlag } from '../common/flags';
import { DEFAULT_KEY_FILE } from '../common/key';
import { DEFAULT_STATE_DIR } from './state';

/** Everything the daemon is told at start. */
export interface DaemonOptions {
  listen: DaemonAddress[];
  keyFile: string;
  stateDir: string;
  internalIp?: string;
  externalIp?: string;
  overlayCidr: string;
  udpPorts: [number, number];
  tunnelEngine?: 'wireguard' | 'ipsec';
  dialTimeoutMs: number;
  udpIdleMs: number;
  help: boolean;
}

export const DAEMON_USAGE = `usage: wormholed [flags]

  -H ADDR            listen on ADDR: tcp://HOST:PORT or unix:///PATH (repeatable;
                     default tcp://0.0.0.0:9999). TCP is TLS with the pre-shared key.
  -K FILE            the pre-shared key (default ${DEFAULT_KEY_FILE}; made if missing)
  --state-dir DIR    where this daemon keeps its state (default ${DEFAULT_STATE_DIR})
  -I IP              internal address for tunnels (default: source of the default route)
  -E IP              external address for tunnels (default: the -I address)
  -C CIDR            overlay range for tunnel addresses (default 100.65.0.0/14)
  -P FROM-TO         UDP ports for tunnels (default 4500-4599)
  --tunnel-engine E  wireguard or ipsec (default: the first the kernel offers)
  --dial-timeout S   seconds a tail is retried before a connection is dropped (default 5)
  --udp-idle S       seconds an idle UDP session is kept (default 60)
  -h, --help         this text

Logs are JSON lines on stderr; WORMHOLE_LOG=debug|info|warn|error sets the level.`;

const SPECS: FlagSpec[] = [
  { names: ['-H', '--host'], value: true, repeat: true },
  { names: ['-K', '--key'], value: true },
  { names: ['--state-dir'], value: true },
  { names: ['-I', '--internal-ip'], value: true },
  { names: ['-E', '--external-ip'], value: true },
  { names: ['-C', '--cidr'], value: true },
  { names: ['-P', '--ports'], value: true },
  { names: ['--tunnel-engine'], value: true },
  { names: ['--dial-timeout'], value: true },
  { names: ['--udp-idle'], value: true },
  { names: ['-h', '--help'], value: false },
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

/** Parse wormholed's argv. */
export function parseDaemonOptions(argv: readonly string[]): DaemonOptions {
  const p = parseFlags(argv, SPECS);
  if (p.positional.length > 0) throw new UsageError(`unexpected argument "${p.positional[0]}"`);
  const engine = flagValue(p, '--tunnel-engine');
  if (engine !== undefined && engine !== 'wireguard' && engine !== 'ipsec') {
    throw new UsageError(`--tunnel-engine "${engine}": use wireguard or ipsec`);
  }
  const internalIp = ip(flagValue(p, '-I'), '-I');
  return {
    listen: (p.values.get('-H') ?? ['tcp://0.0.0.0:9999']).map((a) => parseDaemonAddress(a, '0.0.0.0')),
    keyFile: flagValue(p, '-K', DEFAULT_KEY_FILE),
    stateDir: flagValue(p, '--state-dir', DEFAULT_STATE_DIR),
    internalIp,
    externalIp: ip(flagValue(p, '-E'), '-E') ?? internalIp,
    overlayCidr: checkCidr(flagValue(p, '-C', '100.65.0.0/14')),
    udpPorts: parsePortRange(flagValue(p, '-P', '4500-4599')),
    tunnelEngine: engine as DaemonOptions['tunnelEngine'],
    dialTimeoutMs: secondsFlag(flagValue(p, '--dial-timeout', '5'), '--dial-timeout'),
    udpIdleMs: secondsFlag(flagValue(p, '--udp-idle', '60'), '--udp-idle'),
    help: p.values.has('-h'),
  };
}
