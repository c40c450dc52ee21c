/**
 * The URL of the create grammar: `[proto://][ns@][host][:port]`, every part optional, host
 * may be `[v6]`. Each part that the URL names is set; the others stay as they were.
 */
import * as net from 'node:net';
import { UsageError } from '../common/errors';

/** Protocols a head or tail can speak. */
export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The parts a URL names; absent parts are undefined. */
export interface UrlParts {
  proto?: Protocol;
  /** Namespace word: a plain name (`ip netns`) or an absolute path to a namespace file. */
  ns?: string;
  host?: string;
  port?: number;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/;

/** Parse a port number 0-65535; throws UsageError naming what it belongs to. */
export function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`${what}: port "${text}" is not a number from 0 to 65535`);
  }
  return Number(text);
}

/** Parse a create-grammar URL. Throws UsageError with what is wrong and the expected form. */
export function parseUrl(text: string): UrlParts {
  const form = 'expected [tcp|udp://][namespace@][host][:port], e.g. tcp://127.0.0.1:3306 or :3306';
  if (text.length === 0 || text.length > 4200) throw new UsageError(`url "${text}" is not valid: ${form}`);
  const out: UrlParts = {};
  let rest = text;
  const schemeAt = rest.indexOf('://');
  if (schemeAt >= 0) {
    const proto = rest.slice(0, schemeAt).toLowerCase();
    if (!(PROTOCOLS as readonly string[]).includes(proto)) {
      throw new UsageError(`url "${text}": protocol "${proto}" is not supported: use tcp or udp`);
    }
    out.proto = proto as Protocol;
    rest = rest.slice(schemeAt + 3);
  }
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const ns = rest.slice(0, at);
    if (ns.length === 0) throw new UsageError(`url "${text}": the namespace before "@" is empty`);
    out.ns = ns;
    rest = rest.slice(at + 1);
  }
  let host: string;
  let port: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new UsageError(`url "${text}": "[" without "]" around the IPv6 address`);
    host = rest.slice(1, close);
    if (!net.isIPv6(host)) throw new UsageError(`url "${text}": "${host}" is not an IPv6 address`);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw new UsageError(`url "${text}" is not valid: ${form}`);
    if (after.startsWith(':')) port = after.slice(1);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      port = rest.slice(colon + 1);
    } else {
      host = rest;
    }
    if (host.includes(':'))
      throw new UsageError(`url "${text}": put an IPv6 address in brackets, e.g. [::1]:80`);
    if (host !== '' && !net.isIPv4(host) && !HOSTNAME.test(host)) {
      throw new UsageError(`url "${text}": "${host}" is not a valid host name or address`);
    }
  }
  if (host !== '') out.host = host;
  if (port !== undefined) out.port = parsePort(port, `url "${text}"`);
  return out;
}

/** Format an address as a URL: `tcp://[ns@]host:port`, brackets around IPv6. */
export function formatUrl(proto: Protocol, host: string, port: number, ns?: string): string {
  const h = net.isIPv6(host) ? `[${host}]` : host;
  return `${proto}://${ns ? `${ns}@` : ''}${h}:${port}`;
}
