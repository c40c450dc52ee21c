/**
 * Measure every path of every scene in front of their servers. Each measurement runs over
 * all paths before the next starts, and the whole is repeated `cfg.repeats` times (each
 * round starting one path later), keeping the median: a burst of load from something else on
 * the machine then hits neighbouring measurements of different paths alike instead of one
 * path's whole row, so the ratios between paths hold better than the absolute figures.
 * Memory comes last, one ramp per path. A path that cannot run (a tool is missing, its proxy
 * fails) keeps its row with a footnote, and the run goes on.
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

export interface Scene {
  name: string;
  paths: PathSpec[];
}

/** Every sample of a row, kept in the JSON results beside the medians. */
export interface Samples {
  gbps: number[];
  connsPerSec: number[];
  p50us: number[];
  p99us: number[];
}

const median = (xs: number[]): number | undefined =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : undefined;

/** The rows of each scene, in the scenes' order. */
export async function measureScenes(
  scenes: Scene[],
  cfg: Config,
): Promise<(Row & { samples?: Samples })[][]> {
  const all = scenes.flatMap((s) =>
    s.paths.map((p) => ({
      scene: s.name,
      p,
      row: { path: p.name, notes: [] as string[] } as Row & { samples?: Samples },
      samples: { gbps: [], connsPerSec: [], p50us: [], p99us: [] } as Samples,
      failed: false,
    })),
  );
  const label = (x: (typeof all)[number]): string => `${x.scene} / ${x.p.name}`;
  for (const x of all) {
    if (!x.p.skip) continue;
    x.row.notes!.push(x.p.skip);
    x.failed = true;
    console.error(`# ${label(x)}: skipped: ${x.p.skip}`);
  }
  /** Run one measurement on every path still standing, starting at path `from`. */
  const phase = async (from: number, what: string, fn: (p: PathSpec, s: Samples) => Promise<void>) => {
    for (let k = 0; k < all.length; k++) {
      const x = all[(from + k) % all.length];
      if (x.failed) continue;
      try {
        await fn(x.p, x.samples);
      } catch (err) {
        x.failed = true;
        x.row.notes!.push(`${what} failed: ${(err as Error).message.split('\n')[0]}`);
        console.error(`# ${label(x)}: ${what} failed: ${(err as Error).message}`);
      }
    }
  };

  for (let round = 0; round < cfg.repeats; round++) {
    await phase(round, 'throughput', async (p, s) => {
      // Probe only the echo side: a probe through a proxy to iperf3 can leave its server busy.
      await waitPort(p.host, p.echo);
      await sleep(200);
      s.gbps.push(await throughput(p.host, p.iperf, cfg.seconds));
    });
    await phase(round, 'connection rate', async (p, s) => {
      s.connsPerSec.push(await connectionRate(p.host, p.echo, cfg.conns));
    });
    await phase(round, 'latency', async (p, s) => {
      const lat = await latency(p.host, p.echo, cfg.rounds);
      s.p50us.push(lat.p50);
      s.p99us.push(lat.p99);
    });
  }
  for (const x of all) {
    const { row, samples } = x;
    [row.gbps, row.connsPerSec] = [median(samples.gbps), median(samples.connsPerSec)];
    [row.p50us, row.p99us] = [median(samples.p50us), median(samples.p99us)];
    if (cfg.repeats > 1) row.samples = samples;
  }

  // memory last: a ramp leaves thousands of sockets in TIME_WAIT behind it
  for (const x of all) {
    const { p, row } = x;
    if (x.failed || !p.pids) continue;
    const counts = cfg.idle.filter((n) => !p.idleMax || n <= p.idleMax.count);
    if (counts.length < cfg.idle.length) row.notes!.push(p.idleMax!.why);
    const mem = await idleMemory(p.host, p.echo, counts, p.pids);
    row.idleMiB = mem.mib;
    if (mem.error) row.notes!.push(`memory ramp stopped ${mem.error}`);
  }
  for (const x of all.filter((y) => !y.p.skip)) {
    const r = x.row;
    console.error(
      `# ${label(x)}: ${r.gbps?.toFixed(2)} Gbit/s, ${r.connsPerSec?.toFixed(0)} conn/s, ` +
        `p50 ${r.p50us?.toFixed(0)} µs, p99 ${r.p99us?.toFixed(0)} µs, idle MiB ${JSON.stringify(r.idleMiB ?? {})}`,
    );
  }
  return scenes.map((s) => all.filter((x) => x.scene === s.name).map((x) => x.row));
}
