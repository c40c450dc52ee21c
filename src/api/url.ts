/**
 * The URL of the create grammar: `[proto://][ns@][host][:port]`, every part optional, host
 * may be `[v6]`. Each part that the URL names is set; the others stay as they were.
 *
 * A unix stream socket is `unix:///PATH` (a file, in the end's filesystem) or `unix://@NAME`
 * (an abstract name, in the end's network namespace), with a namespace as for TCP:
 * `unix://NS@/PATH`, `unix://NS@@NAME`. A head's socket file takes `?mode=0660` (octal).
 */
import * as net from 'node:net';
import { UsageError } from '../common/errors';

/** Protocols a head or tail can speak. */
export const PROTOCOLS = ['tcp', 'udp', 'unix'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Byte stream protocols: a head of one joins a tail of another (udp joins only udp). */
export function isStream(proto: Protocol): boolean {
  return proto !== 'udp';
}

/** The parts a URL names; absent parts are undefined. */
export interface UrlParts {
  proto?: Protocol;
  /** Namespace word: a plain name (`ip netns`) or an absolute path to a namespace file. */
  ns?: string;
  host?: string;
  port?: number;
  /**
   * A port range `:A-B` (SPEC.md "Port ranges"): `port` is A, this is B. A head listens on
   * every port of it; a tail range of the same length takes head port i to tail port i.
   */
  portEnd?: number;
  /** A unix socket: `/absolute/path`, or `@name` in the abstract namespace. */
  path?: string;
  /** The file mode of a unix head's socket file (`?mode=0600`). */
  mode?: number;
}

/** The longest abstract name: sun_path's 108 bytes less the leading NUL. */
const ABSTRACT_MAX = 107;
/** A path as the kernel takes it (PATH_MAX less its NUL). */
const PATH_MAX = 4095;

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/;

/** The most ports one range may hold (SPEC.md: up to 10,000). */
export const MAX_RANGE = 10000;

/** How many ports a URL names: B - A + 1 for a range, else 1. */
export function portCount(url: { port?: number; portEnd?: number }): number {
  return url.portEnd === undefined || url.port === undefined ? 1 : url.portEnd - url.port + 1;
}

/** `A-B` as a range: both ends 1-65535, A <= B, at most MAX_RANGE ports. */
function parseRange(text: string, what: string): { port: number; portEnd: number } {
  const [a, b] = text.split('-', 2).map((t) => parsePort(t, what));
  if (a === 0 || b === 0)
    throw new UsageError(`${what}: port 0 cannot be in a range (it means "any free port"): start at 1`);
  if (b < a)
    throw new UsageError(`${what}: the range ends (${b}) before it starts (${a}): write it as ${b}-${a}`);
  if (b - a + 1 > MAX_RANGE)
    throw new UsageError(
      `${what}: the range has ${b - a + 1} ports, more than ${MAX_RANGE.toLocaleString('en')}: split it into several segments`,
    );
  return { port: a, portEnd: b };
}

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
      throw new UsageError(`url "${text}": protocol "${proto}" is not supported: use tcp, udp or unix`);
    }
    out.proto = proto as Protocol;
    rest = rest.slice(schemeAt + 3);
    if (proto === 'unix') return parseUnix(text, rest);
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
  if (port !== undefined && /^\d+-\d+$/.test(port)) Object.assign(out, parseRange(port, `url "${text}"`));
  else if (port !== undefined) out.port = parsePort(port, `url "${text}"`);
  return out;
}

/**
 * The part of a unix URL after `unix://`: `[NS@]/PATH` or `[NS@]@NAME`, then `?mode=OCTAL`.
 * A namespace that is a path (`/proc/PID/ns/net`) ends at the first `@` followed by `/` or
 * `@`, so a socket path containing `@/` needs its namespace named (`unix:///ns/file@/a@/b`).
 */
function parseUnix(text: string, rest: string): UrlParts {
  const form =
    'expected unix:///PATH or unix://@NAME, optionally NS@ before them and ?mode=0660 after a path';
  const out: UrlParts = { proto: 'unix' };
  const q = rest.lastIndexOf('?');
  if (q >= 0 && /^[a-z]+=/.test(rest.slice(q + 1))) {
    for (const pair of rest.slice(q + 1).split('&')) {
      const [key, value] = pair.split('=', 2);
      if (key !== 'mode') throw new UsageError(`url "${text}": "${key}" is not an option: only ?mode=0660`);
      if (!/^0?[0-7]{3}$/.test(value ?? ''))
        throw new UsageError(`url "${text}": mode "${value}" is not an octal file mode such as 0660`);
      out.mode = parseInt(value, 8);
    }
    rest = rest.slice(0, q);
  }
  let address = rest;
  if (rest.startsWith('/')) {
    // `/proc/PID/ns/net@/path`: a namespace path, then the address
    const m = /@[/@]/.exec(rest);
    if (m) [out.ns, address] = [rest.slice(0, m.index), rest.slice(m.index + 1)];
  } else if (!rest.startsWith('@')) {
    const at = rest.indexOf('@');
    if (at < 0) throw new UsageError(`url "${text}" is not valid: ${form}`);
    [out.ns, address] = [rest.slice(0, at), rest.slice(at + 1)];
  }
  if (address.includes('\0')) throw new UsageError(`url "${text}": a NUL byte cannot be in a socket address`);
  if (address.startsWith('@')) {
    const bytes = Buffer.byteLength(address) - 1;
    if (bytes === 0 || bytes > ABSTRACT_MAX)
      throw new UsageError(`url "${text}": an abstract name has 1 to ${ABSTRACT_MAX} bytes`);
    if (out.mode !== undefined)
      throw new UsageError(`url "${text}": an abstract socket has no file, so no mode`);
  } else if (address.startsWith('/')) {
    if (Buffer.byteLength(address) > PATH_MAX || address.endsWith('/') || /\/\.\.?$/.test(address))
      throw new UsageError(`url "${text}": "${address}" does not name a socket file`);
  } else {
    throw new UsageError(`url "${text}" is not valid: ${form}`);
  }
  out.path = address;
  return out;
}

/** Format an address as a URL: `tcp://[ns@]host:port` (`:A-B` given `portEnd`), brackets around IPv6. */
export function formatUrl(
  proto: Protocol,
  host: string,
  port: number,
  ns?: string,
  portEnd?: number,
): string {
  const h = net.isIPv6(host) ? `[${host}]` : host;
  return `${proto}://${ns ? `${ns}@` : ''}${h}:${port}${portEnd === undefined ? '' : `-${portEnd}`}`;
}

/** Format a unix socket as a URL: `unix://[ns@]/path` or `unix://[ns@]@name`. */
export function formatUnixUrl(address: string, ns?: string): string {
  return `unix://${ns ? `${ns}@` : ''}${address}`;
}
