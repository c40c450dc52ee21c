/**
 * A tunnel's counters for the metrics: bytes through its interface (whatever the driver), and
 * for WireGuard its last handshake. Read with `ip` and `wg` (argv arrays, no shell).
 */
import { run } from '../common/exec';

/** What a scrape reports of one tunnel. */
export interface TunnelCounters {
  host: string;
  iface: string;
  /** wireguard or ipsec (the metrics' `engine` label). */
  driver: string;
  /** Bytes sent to and received from the peer through the tunnel (the interface's counters). */
  txBytes: number;
  rxBytes: number;
  /** The last handshake (seconds since the epoch), where the driver has them (WireGuard). */
  lastHandshake: number | null;
}

interface IpLinkStats {
  stats64?: { rx?: { bytes?: number }; tx?: { bytes?: number } };
}

/** The interface's byte counters; zeros if it cannot be read (it went away). */
export async function interfaceBytes(iface: string): Promise<{ txBytes: number; rxBytes: number }> {
  try {
    const links = JSON.parse(
      (await run('ip', ['-s', '-j', 'link', 'show', 'dev', iface])).stdout,
    ) as IpLinkStats[];
    const s = links[0]?.stats64;
    return { txBytes: s?.tx?.bytes ?? 0, rxBytes: s?.rx?.bytes ?? 0 };
  } catch {
    return { txBytes: 0, rxBytes: 0 };
  }
}

/** The most recent handshake of a WireGuard interface's peers (null: none yet, or not WireGuard). */
export async function wireguardHandshake(iface: string): Promise<number | null> {
  try {
    const out = (await run('wg', ['show', iface, 'latest-handshakes'])).stdout;
    const times = out
      .split('\n')
      .map((l) => Number(l.split('\t')[1]))
      .filter((n) => Number.isFinite(n) && n > 0);
    return times.length > 0 ? Math.max(...times) : null;
  } catch {
    return null;
  }
}
