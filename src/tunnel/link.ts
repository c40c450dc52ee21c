/** Tunnels as a segment sees them (the daemon's tunnels, index.ts, do this). */

/** Encrypted L3 tunnels to peers. */
export interface TunnelLink {
  /** Build (or find) the tunnel to `host`; our and its overlay addresses. */
  ensure(host: string, udp: boolean): Promise<{ localIp: string; remoteIp: string }>;
}
