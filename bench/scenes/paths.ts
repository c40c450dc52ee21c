/**
 * Measure every path of a scene, one after the other, in front of the same servers: a path
 * that cannot run (a tool is missing, its proxy fails) keeps its row with a footnote, and the
 * run goes on.
 */
import type { Config } from '../config';
import { sleep, waitPort } from '../env';
import { connectionRate, idleMemory, latency, throughput } from '../measure';
import type { Row } from '../report';

export interface PathSpec {
  name: string;
  /** Where the client connects (the proxy's head, or the server itself for `direct`). */
  host: string;
  iperf: number;
  echo: number;
  /** The proxy's processes, for memory; none for `direct`. */
  pids?: () => number[];
  /** Memory only up to this many idle connections (socat), with the reason. */
  idleMax?: { count: number; why: string };
  /** Why the path is not measured at all (one line). */
  skip?: string;
}

export async function measurePaths(scene: string, paths: PathSpec[], cfg: Config): Promise<Row[]> {
  const rows: Row[] = [];
  for (const p of paths) {
    const row: Row = { path: p.name, notes: [] };
    rows.push(row);
    if (p.skip) {
      row.notes!.push(p.skip);
      console.error(`# ${scene} / ${p.name}: skipped: ${p.skip}`);
      continue;
    }
    try {
      // Probe only the echo side: a probe through a proxy to iperf3 can leave its server busy.
      await waitPort(p.host, p.echo);
      await sleep(200);
      row.gbps = await throughput(p.host, p.iperf, cfg.seconds);
      row.connsPerSec = await connectionRate(p.host, p.echo, cfg.conns);
      const lat = await latency(p.host, p.echo, cfg.rounds);
      [row.p50us, row.p99us] = [lat.p50, lat.p99];
      if (p.pids) {
        const counts = cfg.idle.filter((n) => !p.idleMax || n <= p.idleMax.count);
        if (counts.length < cfg.idle.length) row.notes!.push(p.idleMax!.why);
        const mem = await idleMemory(p.host, p.echo, counts, p.pids);
        row.idleMiB = mem.mib;
        if (mem.error) row.notes!.push(`memory ramp stopped ${mem.error}`);
      }
    } catch (err) {
      row.notes!.push(`failed: ${(err as Error).message.split('\n')[0]}`);
    }
    console.error(
      `# ${scene} / ${p.name}: ${row.gbps?.toFixed(2)} Gbit/s, ${row.connsPerSec?.toFixed(0)} conn/s, ` +
        `p50 ${row.p50us?.toFixed(0)} µs, p99 ${row.p99us?.toFixed(0)} µs, idle MiB ${JSON.stringify(row.idleMiB ?? {})}`,
    );
  }
  return rows;
}
