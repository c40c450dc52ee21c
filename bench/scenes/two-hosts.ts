/**
 * Two test hosts (namespaces a and b joined by a veth pair, a wormhole daemon on each): the
 * plain link, a `remote` segment (TLS 1.3 PSK between the daemons), a `tunnel` segment
 * (WireGuard) and an `ssh -L` forward, all measured from a to servers on b; and the control
 * path's round trip, `wormhole ping HOST` from a's daemon to b's.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withHostPair } from '../../test/helpers/netns';
import type { Config } from '../config';
import {
  daemon,
  echoServer,
  iperfServer,
  missing,
  onBeforeStop,
  onCleanup,
  port,
  sh,
  sleep,
  start,
  waitPort,
} from '../env';
import { throughput } from '../measure';
import type { Row } from '../report';

export interface TwoHosts {
  rows: Row[];
  /** Median of `wormhole ping B` from a's daemon, in ms (the CLI's own figure). */
  peerPingMs?: number;
  peerPingNote?: string;
}

export async function twoHosts(cfg: Config): Promise<TwoHosts> {
  const { a, b, ipB } = withHostPair({ after: (fn) => onCleanup(() => void fn()) });
  const key = randomBytes(16).toString('hex');
  const da = daemon(key, a);
  daemon(key, b);
  await waitPort(ipB, 9999, a);

  // servers on b, on every address (the link, loopback, the tunnel's)
  const [iperf, echo] = [port(), port()];
  iperfServer(iperf, b);
  echoServer('0.0.0.0', echo, b);
  await waitPort(ipB, iperf, a);
  await waitPort(ipB, echo, a);

  const out: TwoHosts = { rows: [] };
  const measure = async (name: string, host: string, i: number, e: number): Promise<void> => {
    const row: Row = { path: name, notes: [] };
    out.rows.push(row);
    try {
      await waitPort(host, e, a);
      await sleep(200);
      row.gbps = await throughput(host, i, cfg.seconds, ['ip', 'netns', 'exec', a]);
      const lat = await latencyIn(a, host, e, cfg.quick ? 500 : 2000);
      [row.p50us, row.p99us] = [lat.p50, lat.p99];
    } catch (err) {
      row.notes!.push(`failed: ${(err as Error).message.split('\n')[0]}`);
    }
    console.error(`# two hosts / ${name}: ${row.gbps?.toFixed(2)} Gbit/s, p50 ${row.p50us?.toFixed(0)} µs`);
  };

  // the control path first, while nothing else loads the link: one warm-up, then 5
  try {
    const pings: number[] = [];
    for (let k = 0; k < 6; k++) pings.push(Number(da.cli('ping', ipB)));
    pings.shift();
    pings.sort((x, y) => x - y);
    out.peerPingMs = pings[Math.floor(pings.length / 2)];
    console.error(`# two hosts / peer ping: ${out.peerPingMs} ms (median of ${pings.join(', ')})`);
  } catch (err) {
    out.peerPingNote = `failed: ${(err as Error).message.split('\n')[0]}`;
  }

  await measure('plain veth link (no proxy, no encryption)', ipB, iperf, echo);

  const [ri, re] = [port(), port()];
  da.cli('create', 'url', `:${ri}`, 'remote', ipB, 'url', `:${port()}`, 'tail', 'url', `:${iperf}`);
  da.cli('create', 'url', `:${re}`, 'remote', ipB, 'url', `:${port()}`, 'tail', 'url', `:${echo}`);
  await measure('wormhole remote (TLS 1.3 PSK)', '127.0.0.1', ri, re);

  const tunnelGone = missing({ 'wireguard-go': 'wireguard-go', wg: 'wireguard-tools' });
  if (tunnelGone) out.rows.push({ path: 'wormhole tunnel (wireguard-go)', notes: [tunnelGone] });
  else {
    const [ti, te] = [port(), port()];
    try {
      onBeforeStop(() => da.cli('tunnel-delete', ipB));
      da.cli('create', 'url', `:${ti}`, 'tunnel', ipB, 'url', `:${port()}`, 'tail', 'url', `:${iperf}`);
      da.cli('create', 'url', `:${te}`, 'tunnel', ipB, 'url', `:${port()}`, 'tail', 'url', `:${echo}`);
      await measure('wormhole tunnel (wireguard-go)', '127.0.0.1', ti, te);
    } catch (err) {
      out.rows.push({
        path: 'wormhole tunnel (wireguard-go)',
        notes: [`failed: ${(err as Error).message.split('\n')[0]}`],
      });
    }
  }

  const sshGone = missing({
    ssh: 'openssh-client',
    '/usr/sbin/sshd': 'openssh-server',
    'ssh-keygen': 'openssh-client',
  });
  if (sshGone) out.rows.push({ path: 'ssh -L forward', notes: [sshGone] });
  else {
    const [si, se] = await sshForward(a, b, ipB, [iperf, echo]);
    await measure('ssh -L forward', '127.0.0.1', si, se);
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

/** Latency measured from inside a namespace: bench/probe.js runs the ping-pong there. */
function latencyIn(
  ns: string,
  host: string,
  p: number,
  rounds: number,
): Promise<{ p50: number; p99: number }> {
  const probe = path.join(__dirname, '..', 'probe.js');
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, probe, host, String(p), String(rounds)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as { p50: number; p99: number })
        : reject(new Error(`latency in ${ns}: ${err.trim() || `exit ${code}`}`)),
    );
  });
}
