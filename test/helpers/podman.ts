/**
 * Rootful Podman for tests: `podman system service` started by the test itself, as the Docker
 * tests start dockerd, but one per suite and everything of it under the suite's temporary
 * directory (storage, run state, events, networks, the API socket), so that it shares nothing
 * with the host's Podman or with another test. The echo image is built into it with `podman
 * build` from the same recipe as Docker's (no registry).
 *
 * This machine's quirks (cgroup v1 hybrid, a hard limit of 20,000 open files) are what the
 * README tells users to put in their containers.conf: `runc` rather than `crun`, and
 * `default_ulimits` below the hard limits (else runc fails with "error setting rlimits").
 * Containers the tests run with the podman CLI get a network namespace of their own with
 * loopback only (`netns = "none"`), which is all wormhole needs to reach their 127.0.0.1. Those
 * made through the Docker-compatible API (docker-run's) get Podman's default bridge, as a
 * user's would: CNI makes its interface `cni-podman0` and its iptables chains on the host (and
 * notes addresses under /var/lib/cni), as dockerd makes docker0. The interface is removed
 * again when the suite ends if it was not there before; the chains stay, as dockerd's do.
 * Podman also keeps its cache of blob digests in /var/lib/containers/cache whatever --root
 * says.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { ECHO_IMAGE, echoContext, run, unmountUnder } from './docker';
import type { Cleanup } from './netns';
import { sleep } from './wait';

const PODMAN = '/usr/bin/podman';

/** The bridge Podman's default network makes on the host (CNI). */
const BRIDGE = 'cni-podman0';

/** A running Podman API service. */
export interface TestPodman {
  /** `unix://PATH` of its API socket: the daemon's DOCKER_HOST. */
  host: string;
  /** Its containers.conf (CONTAINERS_CONF). */
  conf: string;
  /** The podman CLI against this service (argv, no shell): its stdout. */
  podman(...args: string[]): Promise<string>;
}

/** The containers.conf the tests pass with CONTAINERS_CONF, every path under `dir`. */
export function containersConf(dir: string): string {
  return [
    '[containers]',
    // below this machine's hard limits (20,000 open files): runc cannot raise a limit
    'default_ulimits = ["nofile=10000:10000", "nproc=10000:10000"]',
    'netns = "none"',
    '[engine]',
    // crun fails on this cgroup v1 hybrid host; runc (Docker's) works
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    // no journald here
    'events_logger = "file"',
    `events_logfile_path = "${dir}/events.log"`,
    `tmp_dir = "${dir}/tmp"`,
    `static_dir = "${dir}/storage/libpod"`,
    `volume_path = "${dir}/storage/volumes"`,
    '[network]',
    `network_config_dir = "${dir}/networks"`,
    '',
  ].join('\n');
}

/** Whether something answers the Engine API's ping on a unix socket. */
function pings(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** What startPodman sets up besides the service. */
export interface PodmanOpts {
  /** Build the echo image into it (default true). */
  echo?: boolean;
  /** A registry (`127.0.0.1:PORT`) it may pull from over plain HTTP (registries.conf). */
  insecureRegistry?: string;
}

/**
 * Start `podman system service` under a new temporary directory, wait until it answers and
 * build the echo image into it; everything is stopped, unmounted and removed when `t` ends.
 */
export async function startPodman(t: Cleanup, opts: PodmanOpts = {}): Promise<TestPodman> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whp-'));
  const conf = path.join(dir, 'containers.conf');
  fs.writeFileSync(conf, containersConf(dir));
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf };
  if (opts.insecureRegistry !== undefined) {
    // (Docker trusts 127.0.0.1 over HTTP by itself; Podman is told)
    const registries = path.join(dir, 'registries.conf');
    fs.writeFileSync(registries, `[[registry]]\nlocation = "${opts.insecureRegistry}"\ninsecure = true\n`);
    env.CONTAINERS_REGISTRIES_CONF = registries;
  }
  const socket = path.join(dir, 'podman.sock');
  const host = `unix://${socket}`;
  const log = fs.openSync(path.join(dir, 'service.log'), 'w');
  const service = spawn(
    PODMAN,
    [
      '--root',
      path.join(dir, 'storage'),
      '--runroot',
      path.join(dir, 'run'),
      'system',
      'service',
      '--time',
      '0',
      host,
    ],
    { stdio: ['ignore', log, log], env },
  );
  fs.closeSync(log);
  let exited: string | undefined;
  service.once('exit', (code, signal) => (exited = `exited (${signal ?? code})`));
  service.once('error', (err) => (exited = err.message));
  const podman = (...args: string[]): Promise<string> =>
    run(PODMAN, ['--remote', '--url', host, ...args], '', { timeoutMs: 120_000 });
  const bridgeBefore = fs.existsSync(`/sys/class/net/${BRIDGE}`);
  t.after(async () => {
    if (!exited) {
      await podman('rm', '-af', '-t', '0').catch(() => undefined);
      service.kill('SIGTERM');
      for (let i = 0; i < 100 && !exited; i++) await sleep(100);
      if (!exited) service.kill('SIGKILL');
    }
    if (!bridgeBefore) await run('ip', ['link', 'del', BRIDGE]).catch(() => undefined);
    // (the storage driver mounts layers, and its own directory, under the storage root)
    await unmountUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 60_000;
  while (!(await pings(socket))) {
    if (exited || Date.now() > deadline) {
      const tail = fs.readFileSync(path.join(dir, 'service.log'), 'utf8').trim().split('\n').slice(-5);
      throw new Error(`podman system service ${exited ?? 'did not answer within 60 s'}:\n${tail.join('\n')}`);
    }
    await sleep(200);
  }
  if (opts.echo === false) return { host, conf, podman };
  const context = await echoContext();
  try {
    // (no network for its RUN step: Podman's default bridge would be set up on the host)
    await podman('build', '--network', 'none', '-t', ECHO_IMAGE, context);
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  return { host, conf, podman };
}
