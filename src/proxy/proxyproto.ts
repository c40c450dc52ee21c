/**
 * The PROXY protocol header (HAProxy's doc/proxy-protocol.txt) for connections the
 * JavaScript mover carries to a tail set with `proxy-protocol v1|v2`: the server behind
 * learns the client's address and port and the head's, as HAProxy and nginx read them. The
 * engine builds the same bytes in C (native/proxyproto.c); the tests hold both to them.
 *
 * v1 is one text line, `PROXY TCP4 SRC DST SPORT DPORT\r\n` (TCP6 for IPv6), or
 * `PROXY UNKNOWN\r\n` when the client is no TCP peer (a unix socket). v2 is binary: the
 * 12-byte signature, 0x21 (version 2, PROXY), the family (0x11 TCP4, 0x21 TCP6, 0x31 unix
 * stream, 0x00 unknown), the length of the addresses (big endian), then the addresses:
 * IPv4 4+4 and ports 2+2, IPv6 16+16 and ports, unix two 108-byte paths.
 */
import * as net from 'node:net';

/** One end of a connection: an IP address and port, or a unix socket ('' unnamed, '@' abstract). */
export type SockAddr = { host: string; port: number } | { path: string };

/** Who connected (src: the client) to what (dst: the head). */
export interface Origin {
  src: SockAddr;
  dst: SockAddr;
}

/** The v2 signature. */
const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A unix address field in v2: sun_path's size. */
const UNIX_FIELD = 108;

function isInet(a: SockAddr): a is { host: string; port: number } {
  return 'host' in a;
}

/** Both ends IPv4 (4), both IPv6 (6), both unix ('unix'), or anything else (undefined). */
function familyOf(o: Origin | undefined): 4 | 6 | 'unix' | undefined {
  if (!o) return undefined;
  const { src, dst } = o;
  if (isInet(src) && isInet(dst)) {
    if (net.isIPv4(src.host) && net.isIPv4(dst.host)) return 4;
    if (net.isIPv6(src.host) && net.isIPv6(dst.host)) return 6;
    return undefined;
  }
  if (!isInet(src) && !isInet(dst)) return 'unix';
  return undefined;
}

/** An IPv6 address in text (valid: net.isIPv6) as its 16 bytes, `::` and a dotted IPv4 tail included. */
export function ipv6Bytes(text: string): Buffer {
  let s = text.replace(/%.*$/, ''); // a zone (fe80::1%eth0) is no part of the address
  let tail: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    // ::ffff:1.2.3.4: the dotted quad is the last two words
    const b = v4[2].split('.').map(Number);
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    s = v4[1].endsWith('::') ? v4[1] : v4[1].slice(0, -1);
  }
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const gap = s.indexOf('::');
  let all: number[];
  if (gap < 0) all = [...words(s), ...tail];
  else {
    const head = words(s.slice(0, gap));
    const rest = [...words(s.slice(gap + 2)), ...tail];
    all = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  }
  const out = Buffer.alloc(16);
  all.slice(0, 8).forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

function unixField(a: SockAddr): Buffer {
  const field = Buffer.alloc(UNIX_FIELD);
  const path = isInet(a) ? '' : a.path;
  // an abstract name is written as the kernel has it: a NUL byte, then the name
  if (path.startsWith('@')) Buffer.from(path.slice(1)).copy(field, 1, 0, UNIX_FIELD - 1);
  else Buffer.from(path).copy(field, 0, 0, UNIX_FIELD);
  return field;
}

function v1(o: Origin | undefined): Buffer {
  const family = familyOf(o);
  if (!o || (family !== 4 && family !== 6)) return Buffer.from('PROXY UNKNOWN\r\n');
  const src = o.src as { host: string; port: number };
  const dst = o.dst as { host: string; port: number };
  return Buffer.from(`PROXY TCP${family} ${src.host} ${dst.host} ${src.port} ${dst.port}\r\n`);
}

function v2(o: Origin | undefined): Buffer {
  const family = familyOf(o);
  let fam = 0x00;
  let addrs = Buffer.alloc(0);
  if (o && (family === 4 || family === 6)) {
    const src = o.src as { host: string; port: number };
    const dst = o.dst as { host: string; port: number };
    const bytes = (h: string): Buffer =>
      family === 4 ? Buffer.from(h.split('.').map(Number)) : ipv6Bytes(h);
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(src.port, 0);
    ports.writeUInt16BE(dst.port, 2);
    fam = family === 4 ? 0x11 : 0x21;
    addrs = Buffer.concat([bytes(src.host), bytes(dst.host), ports]);
  } else if (o && family === 'unix') {
    fam = 0x31;
    addrs = Buffer.concat([unixField(o.src), unixField(o.dst)]);
  }
  const head = Buffer.alloc(4);
  head[0] = 0x21; // version 2, PROXY
  head[1] = fam; // (0x00: unknown; the receiver uses the connection's own addresses)
  head.writeUInt16BE(addrs.length, 2);
  return Buffer.concat([SIG, head, addrs]);
}

/** The header of PROXY protocol `version` for a connection from origin.src to origin.dst. */
export function proxyHeader(version: 1 | 2, origin: Origin | undefined): Buffer {
  return version === 1 ? v1(origin) : v2(origin);
}

/**
 * A plain socket's origin: its remote end and its local one (the head). A unix socket has
 * no address Node reads: its client is unnamed and the head is `unixName`, the head's
 * address as the user named it (the bound name is a /proc/self/fd one).
 */
export function originOf(s: net.Socket, unixName?: string): Origin | undefined {
  if (s.remoteAddress !== undefined && s.remotePort !== undefined && s.localAddress !== undefined)
    return {
      src: { host: s.remoteAddress, port: s.remotePort },
      dst: { host: s.localAddress, port: s.localPort ?? 0 },
    };
  return unixName !== undefined ? { src: { path: '' }, dst: { path: unixName } } : undefined;
}
