/**
 * CPU time of processes, from /proc/PID/stat: what a path costs per byte, which on a machine
 * shared with other work says more than its Gbit/s (a busy neighbour slows every path, but
 * the CPU-seconds each process spends per GB moved change little).
 */
import * as fs from 'node:fs';
import { sh } from './env';

/** CPU seconds a process has used (user and system), from /proc/PID/stat; undefined once gone. */
export function cpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime: clock ticks (USER_HZ 100)
}

/** The processes that carry a path, by the name the kernel knows them (comm), as printed. */
const CARRIERS: Record<string, string> = {
  node: 'wormholed', // (the only node in a host's namespace while iperf3 runs: its daemon)
  'wireguard-go': 'wireguard-go',
  charon: 'charon',
  ssh: 'ssh',
  sshd: 'sshd',
  iperf3: 'iperf3 server', // (the client is gone when the window closes: not counted)
};

interface Sample {
  name: string;
  host: string;
  pid: number;
  s: number;
}

/** The CPU seconds so far of each carrier in each named namespace (`hosts`: label to netns). */
export function sampleCarriers(hosts: Record<string, string>): Sample[] {
  const out: Sample[] = [];
  for (const [host, ns] of Object.entries(hosts)) {
    for (const pid of sh('ip', 'netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number)) {
      let comm: string;
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue; // (ended since the list)
      }
      const s = cpuSeconds(pid);
      if (CARRIERS[comm] && s !== undefined) out.push({ name: CARRIERS[comm], host, pid, s });
    }
  }
  return out;
}

/**
 * What each carrier spent between two samples per GB moved, one line: `wireguard-go 2.01 (a) +
 * 2.20 (b), wormholed 0.17 (a) + 0.35 (b)`; a process that spent under 0.005 s a GB is left out.
 */
export function perGB(before: Sample[], after: Sample[], bytes: number): string | undefined {
  const byName = new Map<string, string[]>();
  for (const b of before) {
    const a = after.find((x) => x.pid === b.pid);
    const per = a ? (a.s - b.s) / (bytes / 1e9) : 0;
    if (per < 0.005) continue; // (a process that did nothing for these bytes: a tick, or none)
    const parts = byName.get(b.name) ?? [];
    parts.push(`${per.toFixed(2)} (${b.host})`);
    byName.set(b.name, parts);
  }
  if (!byName.size) return undefined;
  return [...byName].map(([name, parts]) => `${name} ${parts.join(' + ')}`).join(', ');
}
