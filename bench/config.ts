/** How long and how much each measurement runs: `--quick` for development, else the full run. */
export interface Config {
  quick: boolean;
  /** iperf3 seconds per path. */
  seconds: number;
  /** Timed connections for the connection rate (a quarter as many go first, untimed). */
  conns: number;
  /** One-byte round trips for the latency percentiles. */
  rounds: number;
  /** Rounds of throughput, connection rate and latency over every path; the median is kept. */
  repeats: number;
  /** Idle proxied connections at which memory is read, in one ramp. */
  idle: number[];
  /** socat forks a process per connection: it is ramped up to this many only. */
  socatIdleMax: number;
}

/**
 * `fdLimit`: the open files each process may have. A proxy holds at least two per idle
 * connection (client and upstream sockets), so the top count is cut to what fits: with the
 * 20,000 that a machine without CAP_SYS_RESOURCE is stuck with, 10,000 becomes 9,800.
 * 3,000 is there because Go's splice (docker-proxy) and pasta keep a pipe per direction on
 * every idle connection, 6 files each: 3,000 is the last round count they can reach there.
 */
export function config(quick: boolean, fdLimit = Infinity): Config {
  const idle = quick ? [1000, 3000, 5000] : [1000, 3000, 5000, 10000];
  const fits = Math.floor((fdLimit - 256) / 2 / 100) * 100; // 256: the proxy's other files
  const counts = [...new Set(idle.map((n) => Math.min(n, fits)))].filter((n) => n > 0);
  return quick
    ? { quick, seconds: 2, conns: 300, rounds: 2000, repeats: 1, idle: counts, socatIdleMax: 1000 }
    : { quick, seconds: 5, conns: 1000, rounds: 5000, repeats: 3, idle: counts, socatIdleMax: 1000 };
}
