/**
 * Two test hosts (namespaces a and b joined by a veth pair, a wormhole daemon on each): the
 * plain link, a `remote` segment (TLS 1.3 PSK between the daemons), a `tunnel` segment
 * (WireGuard; IPsec, on a pair of its own whose daemons run `--tunnel-engine ipsec`), the
 * tunnel alone (to b's tunnel address, no proxy) and an `ssh -L` forward,
 * all measured from a to servers on b; and the control path's round trip, `wormhole ping
 * HOST` from a's daemon to b's. Each throughput row's note says what the processes carrying
 * it (the daemons, wireguard-go, charon, ssh, sshd, iperf3's server) spent per GB moved. With
 * `--beside`, the build beside gets a pair of hosts of its own, and its rows follow each of
 * this build's.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Config } from '../config';
import {
  type Build,
  type Daemon,
  daemonAgain,
  echoServer,
  hostPair,
  iperfServer,
  missing,
  named,
  onBeforeStop,
  onCleanup,
  port,
  sh,
  sleep,
  start,
  waitPort,
} from '../env';
import { perGB, sampleCarriers } from '../cpu';
import { rssMiB, throughput } from '../measure';
import type { Row } from '../report';
import { started, stop } from './restart';

export interface TwoHosts {
  rows: Row[];
  /** Median of `wormhole ping --json B`'s `peerMs` (a's daemon to b's), in ms. */
  peerPingMs?: number;
  /** The first `ping B` after the daemons started (median of 3 starts): the CLI's `ms`, the channel's opening in it. */
  peerPingFirstMs?: number;
  peerPingNote?: string;
  /** The same from the daemon of the build beside (`--beside`), on its own pair of hosts. */
  beside?: { path: string; peerPingMs?: number; peerPingFirstMs?: number; peerPingNote?: string };
  /** What one idle stream on the channel costs both daemons together (RSS bytes), by build. */
  idleStreamBytes?: { path: string; bytes: number }[];
}

/**
 * A pair of hosts for one build: namespaces a and b, a daemon of the build on each, and
 * iperf3 and an echo server on b, on every address (the link, loopback, the tunnel's).
 */
interface HostPair {
  build: Build;
  a: string;
  b: string;
  ipB: string;
  da: Daemon;
  db: Daemon;
  iperf: number;
  echo: number;
}

async function hostsFor(build: Build, flags: string[] = []): Promise<HostPair> {
  const { a, b, ipB, da, db } = await hostPair(build, flags);
  const [iperf, echo] = [port(), port()];
  iperfServer(iperf, b);
  echoServer('0.0.0.0', echo, b);
  await waitPort(ipB, iperf, a);
  await waitPort(ipB, echo, a);
  return { build, a, b, ipB, da, db, iperf, echo };
}

/** How many starts the first ping after a start is the median of (one figure is mostly noise). */
const FIRST_PING_STARTS = 3;

/**
 * `wormhole ping --json B` from a's daemon: the first after a start (the CLI's whole round
 * trip, opening the channel), the median over the pair's own start (pinged once b's port and
 * servers answer) and two restarts of both daemons, each pinged once both have said they
 * started (as systemd's READY=1 would);
 * then the median of 5 of the daemons' own round trip (ms).
 */
async function peerPing(
  p: HostPair,
): Promise<{ peerPingMs?: number; peerPingFirstMs?: number; peerPingNote?: string }> {
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  try {
    const once = (): { ms: number; peerMs: number } =>
      JSON.parse(p.da.cli('ping', '--json', p.ipB)) as { ms: number; peerMs: number };
    const firsts = [once().ms];
    while (firsts.length < FIRST_PING_STARTS) {
      await Promise.all([stop(p.da.proc), stop(p.db.proc)]);
      [p.da, p.db] = [daemonAgain(p.da), daemonAgain(p.db)];
      await Promise.all([started(p.da), started(p.db)]);
      firsts.push(once().ms);
    }
    const pings: number[] = [];
    for (let k = 0; k < 5; k++) pings.push(once().peerMs);
    const [ms, first] = [median(pings), median(firsts)];
    console.error(
      `# two hosts / ${named(p.build, 'wormhole')} ping: ${ms} ms (median of ${pings.join(', ')}), ` +
        `first after a start ${first} ms (median of ${firsts.join(', ')})`,
    );
    return { peerPingMs: ms, peerPingFirstMs: first };
  } catch (err) {
    return { peerPingNote: `failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

/**
 * `count` idle connections through the remote segment to b's echo server (each answered
 * once, so both daemons hold their ends): the RSS both daemons gained, per stream, in bytes;
 * or why it could not be read.
 */
async function idleStreams(p: HostPair, head: number, count: number): Promise<number | string> {
  const pids = [p.da.pid, p.db.pid];
  await sleep(500); // (what the measurements before let go of, freed)
  const before = rssMiB(pids);
  const r = await probeIn<{ mib: Record<number, number>; error?: string }>(p.a, [
    'idle',
    '127.0.0.1',
    head,
    count,
    ...pids,
  ]);
  if (r.error !== undefined || r.mib[count] === undefined) return `idle streams: ${r.error ?? 'not read'}`;
  const bytes = ((r.mib[count] - before) * 1024 * 1024) / count;
  console.error(
    `# two hosts / ${named(p.build, 'wormhole')}: ${count} idle streams, ${bytes.toFixed(0)} B each`,
  );
  return bytes;
}

/**
 * The scene, with a pair of hosts for each of `builds` (the plain link and ssh measured on
 * the first): each wormhole row is followed by the same row of the build beside.
 */
export async function twoHosts(cfg: Config, builds: Build[]): Promise<TwoHosts> {
  const pairs: HostPair[] = [];
  for (const b of builds) pairs.push(await hostsFor(b));
  const [first] = pairs;

  const out: TwoHosts = { rows: [] };
  const measure = async (p: HostPair, name: string, host: string, i: number, e: number): Promise<void> => {
    const row: Row = { path: name, notes: [] };
    out.rows.push(row);
    try {
      await waitPort(host, e, p.a);
      await sleep(200);
      // the CPU each process carrying the path spent on the bytes: on a shared machine a
      // steadier figure than Gbit/s (what bounds the tunnel, issue 19, shows here)
      const hosts = { a: p.a, b: p.b };
      const before = sampleCarriers(hosts);
      row.gbps = await throughput(host, i, cfg.seconds, ['ip', 'netns', 'exec', p.a]);
      const cpu = perGB(before, sampleCarriers(hosts), (row.gbps * 1e9 * cfg.seconds) / 8);
      if (cpu) row.notes!.push(`CPU-seconds per GB moved: ${cpu}`);
      const lat = await probeIn<{ p50: number; p99: number }>(p.a, [host, e, cfg.quick ? 500 : 2000]);
      [row.p50us, row.p99us] = [lat.p50, lat.p99];
      row.connsPerSec = (
        await probeIn<{ connsPerSec: number }>(p.a, ['conns', host, e, cfg.conns])
      ).connsPerSec;
    } catch (err) {
      row.notes!.push(`failed: ${(err as Error).message.split('\n')[0]}`);
    }
    console.error(
      `# two hosts / ${name}: ${row.gbps?.toFixed(2)} Gbit/s, p50 ${row.p50us?.toFixed(0)} µs, ` +
        `${row.connsPerSec?.toFixed(0)} conn/s`,
    );
  };

  // the control path first, while nothing else loads the link
  Object.assign(out, await peerPing(first));
  if (pairs[1]) out.beside = { path: named(pairs[1].build, 'wormhole'), ...(await peerPing(pairs[1])) };

  await measure(first, 'plain veth link (no proxy, no encryption)', first.ipB, first.iperf, first.echo);

  for (const p of pairs) {
    const [ri, re] = [port(), port()];
    const tail = (to: number): string[] => ['remote', p.ipB, 'url', `:${port()}`, 'tail', 'url', `:${to}`];
    p.da.cli('create', 'url', `:${ri}`, ...tail(p.iperf));
    p.da.cli('create', 'url', `:${re}`, ...tail(p.echo));
    await measure(p, named(p.build, 'wormhole remote (TLS 1.3 PSK)'), '127.0.0.1', ri, re);
    const idle = await idleStreams(p, re, cfg.quick ? 2000 : 10_000);
    if (typeof idle === 'number')
      out.idleStreamBytes = [
        ...(out.idleStreamBytes ?? []),
        { path: named(p.build, 'wormhole'), bytes: idle },
      ];
    else out.rows[out.rows.length - 1].notes!.push(idle);
  }

  /** A `tunnel` segment to b and the tunnel alone, through the tunnel `engine` builds. */
  const tunnelRows = async (p: HostPair, engine: string): Promise<void> => {
    const name = named(p.build, `wormhole tunnel (${engine})`);
    const [ti, te] = [port(), port()];
    const tail = (to: number): string[] => ['tunnel', p.ipB, 'url', `:${port()}`, 'tail', 'url', `:${to}`];
    try {
      onBeforeStop(() => p.da.cli('tunnel-delete', p.ipB));
      p.da.cli('create', 'url', `:${ti}`, ...tail(p.iperf));
      p.da.cli('create', 'url', `:${te}`, ...tail(p.echo));
      await measure(p, name, '127.0.0.1', ti, te);
      // the tunnel alone, no proxy at either end: iperf3 and the echo server on b's tunnel
      // address, reached from a's (what the segments above add is the difference)
      const [made] = JSON.parse(p.da.cli('tunnel-list', '--json')) as { remoteIp: string }[];
      await measure(
        p,
        named(p.build, `wormhole tunnel alone (${engine}, no proxy)`),
        made.remoteIp,
        p.iperf,
        p.echo,
      );
    } catch (err) {
      out.rows.push({ path: name, notes: [`failed: ${(err as Error).message.split('\n')[0]}`] });
    }
  };

  const tunnelGone = missing({ 'wireguard-go': 'wireguard-go', wg: 'wireguard-tools' });
  for (const p of pairs) {
    if (tunnelGone)
      out.rows.push({ path: named(p.build, 'wormhole tunnel (wireguard-go)'), notes: [tunnelGone] });
    else await tunnelRows(p, 'wireguard-go');
  }
  // IPsec, this build only (the original's needs kernel ESP, which these machines lack): a
  // pair of hosts whose daemons run charon's userspace ESP
  const ipsecGone = missing({ '/usr/lib/ipsec/charon': 'strongswan-charon', bwrap: 'bubblewrap' });
  if (ipsecGone) out.rows.push({ path: 'wormhole tunnel (ipsec)', notes: [ipsecGone] });
  else await tunnelRows(await hostsFor(first.build, ['--tunnel-engine', 'ipsec']), 'ipsec');

  const sshGone = missing({
    ssh: 'openssh-client',
    '/usr/sbin/sshd': 'openssh-server',
    'ssh-keygen': 'openssh-client',
  });
  if (sshGone) out.rows.push({ path: 'ssh -L forward', notes: [sshGone] });
  else {
    const [si, se] = await sshForward(first.a, first.b, first.ipB, [first.iperf, first.echo]);
    await measure(first, 'ssh -L forward', '127.0.0.1', si, se);
  }
  return out;
}

/**
 * sshd on b (a config and keys made for the run) and `ssh -N -L` from a forwarding a port on
 * a's loopback to each of `to` on b's loopback. Returns the forwarded ports on a.
 */
async function sshForward(a: string, b: string, ipB: string, to: number[]): Promise<number[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whssh-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host'));
  sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'user'));
  fs.copyFileSync(path.join(dir, 'user.pub'), path.join(dir, 'authorized_keys'));
  fs.writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port 2222`,
      `HostKey ${dir}/host`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin yes',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${dir}/sshd.pid`,
    ].join('\n') + '\n',
  );
  fs.mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation directory
  start('ip', ['netns', 'exec', b, '/usr/sbin/sshd', '-D', '-f', path.join(dir, 'sshd_config')]);
  await waitPort(ipB, 2222, a);
  const heads = to.map(() => port());
  start('ip', [
    'netns',
    'exec',
    a,
    'ssh',
    '-N',
    '-i',
    path.join(dir, 'user'),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    ...to.flatMap((p, k) => ['-L', `127.0.0.1:${heads[k]}:127.0.0.1:${p}`]),
    '-p',
    '2222',
    `root@${ipB}`,
  ]);
  return heads;
}

/**
 * A measurement run from inside a namespace: bench/probe.js with `args` there (the latency
 * ping-pong, or `conns ...` for the connection rate), its JSON answer.
 */
function probeIn<T>(ns: string, args: (string | number)[]): Promise<T> {
  const probe = path.join(__dirname, '..', 'probe.js');
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, probe, ...args.map(String)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as T)
        : reject(new Error(`probe in ${ns}: ${err.trim() || `exit ${code}`}`)),
    );
  });
}
