/**
 * What a tunnel driver (WireGuard, IPsec) does: build one side of an encrypted point-to-point
 * link between two overlay addresses, find the ones that exist, and remove one. (A driver is
 * not the splice engine of src/proxy: the daemon's flag keeps the original's name,
 * --tunnel-engine, and so do `engine` in tunnel-list and the stored records.)
 */

/** One side of a tunnel, as this host builds it. */
export interface TunnelSide {
  /** Interface name (wh + 10 hex digits). */
  iface: string;
  localIp: string;
  remoteIp: string;
  /** Our UDP port (WireGuard listen port, or the ESP-in-UDP port). */
  localPort: number;
  /** The peer's underlay address and port. */
  peerAddress: string;
  peerPort: number;
  /** Our own underlay address (IPsec needs it). */
  underlay: string;
  /** Base64 32-byte keys: ours (private) and the peer's (public) for WireGuard; shared for IPsec. */
  privateKey: string;
  peerPublicKey: string;
  udp: boolean;
}

/** A tunnel interface found on this host. */
export interface FoundTunnel {
  iface: string;
  localIp?: string;
  remoteIp?: string;
  /** Up, addressed, with its peer configured. */
  complete: boolean;
  /**
   * Where its peer is and the UDP port it listens on, where the driver can read them back
   * (WireGuard's `wg show`): enough to rebuild the record of a tunnel whose state was lost.
   */
  peerAddress?: string;
  peerPort?: number;
  localPort?: number;
}

/** A driver: WireGuard or IPsec. */
export interface TunnelDriver {
  readonly name: string;
  /** Can this host run it? */
  available(): Promise<boolean>;
  /** What runs it here, for the log. */
  describe(): Promise<string>;
  /**
   * What keeps it from full speed here (said once in the log), or undefined: without
   * `iface` from what runs it, with `iface` from that tunnel's interface as well.
   */
  shortfall(iface?: string): Promise<string | undefined>;
  /** A key pair for one tunnel: [private, public] (base64). */
  keyPair(): [string, string];
  create(side: TunnelSide): Promise<void>;
  delete(iface: string): Promise<void>;
  list(): Promise<FoundTunnel[]>;
  /** A tunnel's bytes where its interface does not count them (charon's bridges); else undefined. */
  bytes?(iface: string): Promise<{ txBytes: number; rxBytes: number } | undefined>;
  /** At start, once the records are checked: stop what runs for no tunnel (a charon with none). */
  tidy?(): Promise<void>;
}

/** Interface names wormhole gives its tunnels. */
export const IFACE_PATTERN = /^wh[0-9a-f]{10}$/;

/** Run the steps that build one side; if one fails, remove what was built, then rethrow. */
export async function buildOrUndo(
  driver: TunnelDriver,
  iface: string,
  build: () => Promise<void>,
): Promise<void> {
  try {
    await build();
  } catch (err) {
    await driver.delete(iface).catch(() => undefined);
    throw err;
  }
}
