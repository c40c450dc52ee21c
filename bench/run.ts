/**
 * npm run bench [-- --quick]: wormhole beside its peers, in one run on this machine.
 *
 * 1. One machine: a direct connection, a wormhole TCP segment, socat and Docker's
 *    docker-proxy, each in front of the same iperf3 and echo servers on 127.0.0.1.
 * 2. Cold start: the first byte through a socket-activated container (docker-run behind a
 *    trigger), against `docker run` plus the service's own readiness measured by hand.
 * 3. Two hosts (namespaces joined by a veth pair): the plain link, a `remote` segment, a
 *    `tunnel` segment (WireGuard) and an `ssh -L` forward.
 * Prints markdown tables and writes dist/bench-results.json.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectTcp } from '../src/netns';
import { removeNetns } from '../test/helpers/netns';
import { childrenOf, connectionRate, idleMemory, latency, throughput } from './measure';

const ROOT = path.resolve(__dirname, '../..');
const quick = process.argv.includes('--quick');
const T = quick ? 2 : 10;
const CONNS = quick ? 300 : 2000;
const ROUNDS = quick ? 2000 : 10000;
const IDLE = quick ? 200 : 1000;

const procs: ChildProcess[] = [];
const cleanups: (() => void)[] = [];
/** Clean-ups that need the daemons still running. */
const beforeStop: (() => void)[] = [];

function start(file: string, args: string[], extraFd = false): ChildProcess {
  const stdio: ('ignore' | number)[] = ['ignore', 'ignore', 'ignore'];
  if (extraFd) stdio.push(fs.openSync('/dev/null', 'r')); // docker-proxy reports on fd 3
  const p = spawn(file, args, { stdio });
  procs.push(p);
  return p;
}

function sh(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8' });
}

async function waitPort(host: string, port: number, prefix: string[] = []): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = prefix.length
      ? (() => {
          try {
            sh(prefix[0], ...prefix.slice(1), 'socat', '-u', 'OPEN:/dev/null', `TCP:${host}:${port}`);
            return true;
          } catch {
            return false;
          }
        })()
      : await new Promise<boolean>((resolve) => {
          const s = net.connect({ host, port }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

// below the ephemeral range (32768+), which the connection runs fill with TIME_WAIT sockets
let nextPort = 12000 + Math.floor(Math.random() * 1500) * 10;
const port = (): number => nextPort++;

/** A wormholed with its own key and state (optionally inside a namespace). */
function daemon(
  key: string,
  netns?: string,
): { sock: string; pid: () => number; cli: (...a: string[]) => string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whbench-'));
  fs.writeFileSync(path.join(dir, 'key'), `${key}\n`, { mode: 0o600 });
  const sock = path.join(dir, 'api.sock');
  const args = [
    path.join(ROOT, 'bin/wormholed'),
    '-H',
    `unix://${sock}`,
    '-K',
    path.join(dir, 'key'),
    '--state-dir',
    path.join(dir, 'state'),
  ];
  if (netns) args.push('-H', 'tcp://0.0.0.0:9999');
  const p = netns
    ? start('ip', ['netns', 'exec', netns, process.execPath, ...args])
    : start(process.execPath, args);
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) execFileSync('sleep', ['0.1']);
  const cli = (...a: string[]): string =>
    sh(process.execPath, path.join(ROOT, 'bin/wormhole'), '-H', `unix://${sock}`, ...a).trim();
  return { sock, pid: () => p.pid!, cli };
}

interface Row {
  path: string;
  gbps: number;
  connsPerSec?: number;
  p50us: number;
  p99us: number;
  idleMiB?: number;
}

function table(rows: Row[], withConn: boolean): string {
  const head = withConn
    ? '| path | throughput (Gbit/s) | new connections/s | latency p50 (µs) | latency p99 (µs) | memory, 1,000 idle connections (MiB) |\n|---|---|---|---|---|---|'
    : '| path | throughput (Gbit/s) | latency p50 (µs) | latency p99 (µs) |\n|---|---|---|---|';
  const f = (n: number | undefined, d = 1): string => (n === undefined ? '–' : n.toFixed(d));
  return [
    head,
    ...rows.map((r) =>
      withConn
        ? `| ${r.path} | ${f(r.gbps, 2)} | ${f(r.connsPerSec, 0)} | ${f(r.p50us, 0)} | ${f(r.p99us, 0)} | ${f(r.idleMiB)} |`
        : `| ${r.path} | ${f(r.gbps, 2)} | ${f(r.p50us, 0)} | ${f(r.p99us, 0)} |`,
    ),
  ].join('\n');
}

async function oneMachine(): Promise<Row[]> {
  const iperfPort = port();
  const echoPort = port();
  start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
  start(process.execPath, [
    path.join(ROOT, 'test/fixtures/server.js'),
    'tcp-echo',
    '127.0.0.1',
    String(echoPort),
  ]);
  await waitPort('127.0.0.1', iperfPort);
  await waitPort('127.0.0.1', echoPort);

  const paths: { name: string; iperf: number; echo: number; pids: () => number[] }[] = [];
  paths.push({ name: 'direct', iperf: iperfPort, echo: echoPort, pids: () => [] });

  const wh = daemon(randomBytes(16).toString('hex'));
  const [wi, we] = [port(), port()];
  wh.cli('create', 'url', `:${wi}`, 'tail', 'url', `:${iperfPort}`);
  wh.cli('create', 'url', `:${we}`, 'tail', 'url', `:${echoPort}`);
  paths.push({ name: 'wormhole', iperf: wi, echo: we, pids: () => [wh.pid()] });

  // socat and docker-proxy: one process in front of each backend
  const socat = (listen: number, to: number): ChildProcess =>
    start('socat', [
      `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork,backlog=1024`,
      `TCP:127.0.0.1:${to}`,
    ]);
  const dockerProxy = (listen: number, to: number): ChildProcess =>
    start(
      'docker-proxy',
      [
        '-proto',
        'tcp',
        '-host-ip',
        '127.0.0.1',
        '-host-port',
        String(listen),
        '-container-ip',
        '127.0.0.1',
        '-container-port',
        String(to),
      ],
      true,
    );
  const [si, se, di, de] = [port(), port(), port(), port()];
  const socats = [socat(si, iperfPort), socat(se, echoPort)];
  paths.push({
    name: 'socat',
    iperf: si,
    echo: se,
    pids: () => socats.flatMap((p) => [p.pid!, ...childrenOf(p.pid!)]),
  });
  const dps = [dockerProxy(di, iperfPort), dockerProxy(de, echoPort)];
  paths.push({ name: 'docker-proxy', iperf: di, echo: de, pids: () => dps.map((p) => p.pid!) });

  const rows: Row[] = [];
  for (const p of paths) {
    // Probe only the echo side: a probe through a proxy to iperf3 can leave its server busy.
    await waitPort('127.0.0.1', p.echo);
    await new Promise((r) => setTimeout(r, 200));
    const gbps = await throughput('127.0.0.1', p.iperf, T);
    const connsPerSec = await connectionRate('127.0.0.1', p.echo, CONNS);
    const { p50, p99 } = await latency('127.0.0.1', p.echo, ROUNDS);
    const idleMiB = p.name === 'direct' ? undefined : await idleMemory('127.0.0.1', p.echo, IDLE, p.pids);
    rows.push({ path: p.name, gbps, connsPerSec, p50us: p50, p99us: p99, idleMiB });
    console.error(
      `# ${p.name}: ${gbps.toFixed(2)} Gbit/s, ${connsPerSec.toFixed(0)} conn/s, p50 ${p50.toFixed(0)} µs`,
    );
  }
  return rows;
}

/** First connection to first echoed byte, through a socket-activated container. */
async function coldStart(): Promise<{ wormholeMs: number[]; byHandMs: number[] }> {
  const wh = daemon(randomBytes(16).toString('hex'));
  const wormholeMs: number[] = [];
  const byHandMs: number[] = [];
  const image = 'wormhole-test/echo';
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    const p = port();
    const id = wh
      .cli('create', 'url', `:${p}`, 'trigger', 'docker-run', `${image} echo-server 9001`, 'url', ':9001')
      .split(' ')[0];
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: p }, () => s.write('x'));
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    wormholeMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    wh.cli('delete', id);

    // by hand: docker run, then try the service inside the container until it answers
    const t0 = process.hrtime.bigint();
    const cid = sh('docker', 'run', '-d', image, 'echo-server', '9001').trim();
    const pid = sh('docker', 'inspect', '-f', '{{.State.Pid}}', cid).trim();
    for (;;) {
      const s = await connectTcp(`/proc/${pid}/ns/net`, '127.0.0.1', 9001).catch(() => undefined);
      const ok =
        s !== undefined &&
        (await new Promise<boolean>((resolve) => {
          s.write('x');
          s.once('data', () => {
            s.destroy();
            resolve(true);
          });
          s.once('error', () => resolve(false));
        }));
      if (ok) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    byHandMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    sh('docker', 'rm', '-f', cid);
  }
  return { wormholeMs, byHandMs };
}

async function twoHosts(): Promise<Row[]> {
  const tag = randomBytes(2).toString('hex');
  const [a, b] = [`whba-${tag}`, `whbb-${tag}`];
  const [ipA, ipB] = ['10.77.250.1', '10.77.250.2'];
  for (const ns of [a, b]) {
    sh('ip', 'netns', 'add', ns);
    cleanups.push(() => removeNetns(ns));
    sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  sh('ip', 'link', 'add', `vba${tag}`, 'netns', a, 'type', 'veth', 'peer', 'name', `vbb${tag}`, 'netns', b);
  sh('ip', '-n', a, 'addr', 'add', `${ipA}/24`, 'dev', `vba${tag}`);
  sh('ip', '-n', b, 'addr', 'add', `${ipB}/24`, 'dev', `vbb${tag}`);
  sh('ip', '-n', a, 'link', 'set', `vba${tag}`, 'up');
  sh('ip', '-n', b, 'link', 'set', `vbb${tag}`, 'up');
  const inA = ['ip', 'netns', 'exec', a];
  const key = randomBytes(16).toString('hex');
  const da = daemon(key, a);
  daemon(key, b);
  await waitPort(ipB, 9999, inA);

  // servers on b: iperf3 and echo on all addresses (the link, loopback, the tunnel)
  const iperfPort = port();
  const echoPort = port();
  start('ip', ['netns', 'exec', b, 'iperf3', '-s', '-p', String(iperfPort)]);
  start('ip', [
    'netns',
    'exec',
    b,
    process.execPath,
    path.join(ROOT, 'test/fixtures/server.js'),
    'tcp-echo',
    '0.0.0.0',
    String(echoPort),
  ]);
  await waitPort(ipB, iperfPort, inA);

  const rows: Row[] = [];
  const measure = async (name: string, host: string, iperf: number, echo: number): Promise<void> => {
    await waitPort(host, echo, inA);
    await new Promise((r) => setTimeout(r, 200));
    const gbps = await throughput(host, iperf, T, inA);
    const lat = await latencyIn(a, host, echo, quick ? 500 : 2000);
    rows.push({ path: name, gbps, p50us: lat.p50, p99us: lat.p99 });
    console.error(`# ${name}: ${gbps.toFixed(2)} Gbit/s, p50 ${lat.p50.toFixed(0)} µs`);
  };

  await measure('plain veth link (no encryption)', ipB, iperfPort, echoPort);

  const [ri, re] = [port(), port()];
  da.cli('create', 'url', `:${ri}`, 'remote', ipB, 'url', `:${port()}`, 'tail', 'url', `:${iperfPort}`);
  da.cli('create', 'url', `:${re}`, 'remote', ipB, 'url', `:${port()}`, 'tail', 'url', `:${echoPort}`);
  await measure('wormhole remote (TLS 1.3 PSK)', '127.0.0.1', ri, re);

  const [ti, te] = [port(), port()];
  da.cli('create', 'url', `:${ti}`, 'tunnel', ipB, 'url', `:${port()}`, 'tail', 'url', `:${iperfPort}`);
  da.cli('create', 'url', `:${te}`, 'tunnel', ipB, 'url', `:${port()}`, 'tail', 'url', `:${echoPort}`);
  await measure('wormhole tunnel (wireguard-go)', '127.0.0.1', ti, te);
  beforeStop.push(() => da.cli('tunnel-delete', ipB));

  // ssh -L: sshd on b, a key pair made for the run
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whssh-'));
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
  fs.mkdirSync('/run/sshd', { recursive: true });
  start('ip', ['netns', 'exec', b, '/usr/sbin/sshd', '-D', '-f', path.join(dir, 'sshd_config')]);
  await waitPort(ipB, 2222, inA);
  const [si, se] = [port(), port()];
  start('ip', [
    ...inA.slice(1),
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
    '-L',
    `127.0.0.1:${si}:127.0.0.1:${iperfPort}`,
    '-L',
    `127.0.0.1:${se}:127.0.0.1:${echoPort}`,
    '-p',
    '2222',
    `root@${ipB}`,
  ]);
  await measure('ssh -L forward', '127.0.0.1', si, se);
  return rows;
}

/** Latency measured from inside a namespace: a helper process runs the ping-pong there. */
function latencyIn(
  netns: string,
  host: string,
  p: number,
  rounds: number,
): Promise<{ p50: number; p99: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, __filename, '--latency', host, String(p), String(rounds)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as { p50: number; p99: number })
        : reject(new Error(`latency in ${netns} failed`)),
    );
  });
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--latency');
  if (at >= 0) {
    const [host, p, rounds] = process.argv.slice(at + 1);
    process.stdout.write(JSON.stringify(await latency(host, Number(p), Number(rounds))));
    return;
  }
  const results: Record<string, unknown> = { date: new Date().toISOString(), quick };
  try {
    const local = await oneMachine();
    results.oneMachine = local;
    console.log(
      `\n### One machine (127.0.0.1, iperf3 ${T} s, ${CONNS} connections, ${ROUNDS} round trips, ${IDLE} idle)\n`,
    );
    console.log(table(local, true));
    const cold = await coldStart();
    results.coldStart = cold;
    const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    console.log('\n### Cold start of a socket-activated container (first byte back, median)\n');
    console.log('| how | ms |\n|---|---|');
    console.log(
      `| wormhole trigger docker-run (connect to first byte) | ${med(cold.wormholeMs).toFixed(0)} |`,
    );
    console.log(
      `| docker run -d, then the service polled until it answers | ${med(cold.byHandMs).toFixed(0)} |`,
    );
    const two = await twoHosts();
    results.twoHosts = two;
    console.log(`\n### Two hosts (namespaces joined by a veth pair, iperf3 ${T} s)\n`);
    console.log(table(two, false));
  } finally {
    for (const c of beforeStop) {
      try {
        c();
      } catch {
        // best effort
      }
    }
    for (const p of procs.reverse()) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch {
        // best effort
      }
    }
    fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'dist/bench-results.json'), JSON.stringify(results, null, 2));
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
