/**
 * Daemon addresses: `tcp://host:port`, `unix:///path`, or `host[:port]` (TCP, port 9999).
 */
import * as net from 'node:net';
import { UsageError } from './errors';

/** The port a daemon listens on unless told otherwise. */
export const DEFAULT_PORT = 9999;

/** Where a daemon listens or a client connects. */
export type DaemonAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Parse `tcp://host:port`, `unix://PATH`, `host`, `host:port` or `[v6]:port`. */
export function parseDaemonAddress(text: string, defaultHost = '127.0.0.1'): DaemonAddress {
  if (text.startsWith('unix://')) {
    const p = text.slice('unix://'.length);
    if (!p.startsWith('/'))
      throw new UsageError(
        `"${text}": a unix address needs an absolute path, e.g. unix:///run/wormhole.sock`,
      );
    return { kind: 'unix', path: p };
  }
  let rest = text.startsWith('tcp://') ? text.slice('tcp://'.length) : text;
  if (rest.includes('://')) throw new UsageError(`"${text}": use tcp://HOST:PORT or unix:///PATH`);
  let host = defaultHost;
  let port = DEFAULT_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1];
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      const p = rest.slice(colon + 1);
      if (!/^\d{1,5}$/.test(p)) throw new UsageError(`"${text}": port "${p}" is not a number`);
      port = Number(p);
      rest = rest.slice(0, colon);
    }
    if (rest !== '') host = rest;
  }
  if (port < 1 || port > 65535) throw new UsageError(`"${text}": port must be 1-65535`);
  if (host.includes(':') && !net.isIPv6(host)) throw new UsageError(`"${text}": not a valid address`);
  return { kind: 'tcp', host, port };
}

/** Format an address back to its URL form. */
export function formatDaemonAddress(a: DaemonAddress): string {
  if (a.kind === 'unix') return `unix://${a.path}`;
  return `tcp://${net.isIPv6(a.host) ? `[${a.host}]` : a.host}:${a.port}`;
}
