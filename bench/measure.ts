/**
 * The measurements, each against a TCP port: throughput (iperf3), new connections per
 * second, round-trip latency on one open connection, and memory with idle connections open.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

/** iperf3 through `port` for `seconds`: Gbit/s received. `prefix` runs it elsewhere (ip netns exec). */
export function throughput(
  host: string,
  port: number,
  seconds: number,
  prefix: string[] = [],
): Promise<number> {
  const argv = [...prefix, 'iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'];
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(new Error(`iperf3 via ${host}:${port}: ${err.message}`));
      const r = JSON.parse(stdout) as {
        error?: string;
        end?: { sum_received?: { bits_per_second: number } };
      };
      const bps = r.end?.sum_received?.bits_per_second;
      if (bps === undefined) reject(new Error(`iperf3 via ${host}:${port}: ${r.error ?? 'no result'}`));
      else resolve(bps / 1e9);
    });
  });
}

function oneConnection(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    s.once('connect', () => s.write('x'));
    s.once('data', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

/**
 * `count` connections (connect, 1 byte each way, close), `parallel` at a time: per second.
 * A quarter as many go first, untimed, so that every path is measured warm (a JIT warms up).
 */
export async function connectionRate(
  host: string,
  port: number,
  count: number,
  parallel = 8,
): Promise<number> {
  for (let i = 0; i < Math.ceil(count / 4); i++) await oneConnection(host, port);
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await oneConnection(host, port);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** 1-byte ping-pong `rounds` times on one connection: p50 and p99 in microseconds. */
export function latency(host: string, port: number, rounds: number): Promise<{ p50: number; p99: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    const samples: number[] = [];
    let sent = 0n;
    const ping = (): void => {
      sent = process.hrtime.bigint();
      s.write('x');
    };
    s.once('connect', ping);
    s.on('data', () => {
      samples.push(Number(process.hrtime.bigint() - sent) / 1000);
      if (samples.length < rounds) ping();
      else {
        s.destroy();
        samples.sort((a, b) => a - b);
        resolve({ p50: samples[Math.floor(rounds * 0.5)], p99: samples[Math.floor(rounds * 0.99)] });
      }
    });
    s.once('error', reject);
  });
}

/** Resident memory of processes, in MiB. */
export function rssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

/** Children of a process (one level), e.g. socat's forks. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** Open `count` idle connections (each answered once, so that the proxy has dialed), then measure `pids()`. */
export async function idleMemory(
  host: string,
  port: number,
  count: number,
  pids: () => number[],
): Promise<number> {
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < count; i += 50) {
      await Promise.all(
        Array.from(
          { length: Math.min(50, count - i) },
          () =>
            new Promise<void>((resolve, reject) => {
              const s = net.connect({ host, port });
              sockets.push(s);
              s.once('connect', () => s.write('x'));
              s.once('data', () => resolve());
              s.once('error', reject);
            }),
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    return rssMiB(pids());
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
  }
}
