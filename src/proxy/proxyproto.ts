/**
 * The PROXY protocol header (HAProxy's doc/proxy-protocol.txt) for connections the
 * JavaScript mover carries to a tail set with `proxy-protocol v1|v2`, and for a segment that
 * serves a peer's client: the server behind learns the client's address and port and the
 * head's, as HAProxy and nginx read them. The bytes are built in one place, the addon's C
 * builder (native/proxyproto.c), which the engine writes for the connections it carries.
 */
import type * as net from 'node:net';
import { native } from '../native';

/** One end of a connection: an IP address and port, or a unix socket ('' unnamed, '@' abstract). */
export type SockAddr = { host: string; port: number } | { path: string };

/** Who connected (src: the client) to what (dst: the head). */
export interface Origin {
  src: SockAddr;
  dst: SockAddr;
}

/**
 * The header of PROXY protocol `version` for a connection from origin.src to origin.dst:
 * v1 a text line (TCP4, TCP6, or UNKNOWN for anything else), v2 binary (TCP over IPv4 or
 * IPv6, unix stream, or unspecified). No origin: UNKNOWN (v1), unspecified (v2).
 */
export function proxyHeader(version: 1 | 2, origin: Origin | undefined): Buffer {
  return native().proxyHeader(version, origin ?? null);
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
