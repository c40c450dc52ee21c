/**
 * The measurements, each against a TCP port: throughput (iperf3), new connections per
 * second, round-trip latency on one open connection, and memory with idle connections open.
 * Every wait is bounded: a proxy that stops answering fails its row, not the run. The
 * connection rate and the latency also take a unix socket's path as `host` (port unused).
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
    const opts = { maxBuffer: 64 * 1024 * 1024, timeout: (seconds + 30) * 1000 };
    execFile(argv[0], argv.slice(1), opts, (err, stdout) => {
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

/** How long one connection or one round trip may take before its measurement fails. */
const STALL_MS = 5000;

/** A socket that fails (and says where) when nothing happens on it for STALL_MS. */
function bounded(s: net.Socket, host: string, port: number, reject: (e: Error) => void): net.Socket {
  s.setTimeout(STALL_MS, () => {
    s.destroy();
    reject(new Error(`${host}:${port} did not answer within ${STALL_MS} ms`));
  });
  s.once('error', reject);
  // a proxy out of files may accept and close at once: a close before an answer is a failure
  // (rejecting after the answer is a no-op)
  s.once('close', () => reject(new Error(`${host}:${port} closed the connection before answering`)));
  return s;
}

/** Where to connect: host:port, or a unix socket when `host` is a path. */
function target(host: string, port: number): net.NetConnectOpts {
  return host.startsWith('/') ? { path: host } : { host, port };
}

function oneConnection(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = bounded(net.connect(target(host, port)), host, port, reject);
    s.setNoDelay(true);
    s.once('connect', () => s.write('x'));
    s.once('data', () => {
      s.destroy();
      resolve();
    });
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
    const s = bounded(net.connect(target(host, port)), host, port, reject);
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

/** Open files of processes, the smallest soft limit among them, and how many still run. */
export function openFiles(pids: number[]): { open: number; limit: number; alive: number } {
  let open = 0;
  let limit = Infinity;
  let alive = 0;
  for (const pid of pids) {
    try {
      const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
      if (fds === 0) continue; // a zombie: exited, not yet reaped
      open += fds;
      alive++;
      const m = /Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
      if (m) limit = Math.min(limit, Number(m[1]));
    } catch {
      // gone
    }
  }
  return { open, limit, alive };
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

/**
 * Open idle connections through host:port up to each of `counts` in turn (each answered once,
 * so that the proxy has dialed its side too), and after each step the resident memory of
 * `pids()` in MiB. One ramp serves every count. A step that fails (the proxy refuses, a limit
 * is hit) ends the ramp: the counts reached so far are returned, with the reason.
 */
export async function idleMemory(
  host: string,
  port: number,
  counts: number[],
  pids: () => number[],
): Promise<{ mib: Record<number, number>; error?: string }> {
  const sockets: net.Socket[] = [];
  const mib: Record<number, number> = {};
  const open = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const s = bounded(net.connect({ host, port }), host, port, reject);
      sockets.push(s);
      s.once('connect', () => s.write('x'));
      s.once('data', () => {
        s.setTimeout(0); // idle from here on, by design
        resolve();
      });
    });
  try {
    for (const count of counts) {
      // 50 at a time: a burst the size of a listen backlog no proxy here should drop
      while (sockets.length < count) {
        await Promise.all(Array.from({ length: Math.min(50, count - sockets.length) }, open));
      }
      await new Promise((r) => setTimeout(r, 500)); // let the proxies settle (a GC, lazy frees)
      mib[count] = rssMiB(pids());
    }
    return { mib };
  } catch (err) {
    // the usual cause is the proxy's open-file limit: say how close to it the proxy was
    await new Promise((r) => setTimeout(r, 300)); // one that is exiting: let it finish
    const { open, limit, alive } = openFiles(pids());
    const fds = alive
      ? `; the proxy held ${open.toLocaleString('en-US')} open files (limit ${limit.toLocaleString('en-US')})`
      : '; the proxy had exited (docker-proxy does when accept() runs out of open files)';
    const at = sockets.length.toLocaleString('en-US');
    return { mib, error: `at about ${at} connections (${(err as Error).message})${fds}` };
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 1000));
  }
}
