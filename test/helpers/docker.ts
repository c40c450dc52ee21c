/**
 * Docker for tests: a real dockerd (started when none answers, and stopped again by the last
 * test run that needed it, if a test run started it), and the test images, built locally
 * because no registry is reachable. The recipes are under test/fixtures/images/:
 *
 * - wormhole-test/echo: the host's busybox-static (all applets, so `nc -ll -p 9001 -e cat`
 *   works) and echo-server (echo.c; the default command, `echo-server 9001`);
 * - wormhole-test/mariadb (also tagged wormhole/mysql): Debian's mariadb-server, listening on
 *   127.0.0.1:3306 only, root from 127.0.0.1 without a password, database `wormhole` whose
 *   table `t` holds DB_VALUE;
 * - wormhole-test/app (also tagged wormhole/wordpress): HTTP on :80 answering with the value
 *   it reads from the database at 127.0.0.1:3306 (a 502 with the reason when it cannot).
 *
 * The last two are built on one Debian root (`debootstrap --variant=minbase bookworm` from the
 * mirror the host's apt uses), kept as a tarball in the cache directory. Every image carries a
 * label with the hash of its recipe and is rebuilt only when that changes.
 *
 * Environment: WORMHOLE_TEST_CACHE (cache directory, default /var/cache/wormhole-test),
 * WORMHOLE_TEST_MIRROR (Debian mirror), WORMHOLE_TEST_REBUILD=1 (build everything again,
 * cache included), WORMHOLE_TEST_DOCKERD_ARGS (flags for a dockerd the helper starts, e.g.
 * `--iptables=false` where iptables cannot be used).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { alive } from '../../src/daemon/state';
import { sleep } from './wait';

const ROOT = path.resolve(__dirname, '../../..');
const IMAGES_DIR = path.join(ROOT, 'test/fixtures/images');
const RECIPE_LABEL = 'wormhole.test.recipe';
const CACHE_DIR = process.env.WORMHOLE_TEST_CACHE || '/var/cache/wormhole-test';
const REBUILD = process.env.WORMHOLE_TEST_REBUILD === '1';
/** Shared by every test process on this machine (tmpfs: gone at reboot). */
const RUN_DIR = '/run/wormhole-test';
const DOCKERD = '/usr/sbin/dockerd';
const DOCKERD_LOG = path.join(os.tmpdir(), 'wormhole-test-dockerd.log');
const BUSYBOX = '/bin/busybox';
const SUITE = 'bookworm';
const DEBOOTSTRAP = ['--variant=minbase', '--include=mariadb-server,mariadb-client,busybox'];
/** Bump to rebuild the Debian root when the way it is made changes. */
const ROOTFS_VERSION = 'rootfs-v2';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export const ECHO_IMAGE = 'wormhole-test/echo';
export const DB_IMAGE = 'wormhole-test/mariadb';
export const APP_IMAGE = 'wormhole-test/app';
/** A service that listens at once but is ready 3 s later, with a HEALTHCHECK (fixtures/images/ready). */
export const READY_IMAGE = 'wormhole-test/ready';
const BASE_IMAGE = 'wormhole-test/base';
/** The value the database image holds. */
export const DB_VALUE = 'hello from mariadb';
/** The mysql / mariadb client's arguments that read it through 127.0.0.1:3306, as root. */
export const DB_QUERY = ['-u', 'root', '-h', '127.0.0.1', '-N', '-B', '-e', 'SELECT v FROM wormhole.t'];

/** Run a command (argv, no shell); resolve with its stdout, reject with its stderr. */
export function run(
  file: string,
  args: string[],
  input?: string,
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      file,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 0, env: options.env ?? process.env },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const out = `${stderr}${stderr && stdout ? '\n' : ''}${stdout}`
          .trim()
          .split('\n')
          .slice(-20)
          .join('\n');
        reject(new Error(`${file} ${args.join(' ')}: ${out || err.message}`));
      },
    );
    p.stdin?.end(input ?? '');
  });
}

function say(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

/**
 * Run `fn` holding a lock shared by every process on this machine (a directory holding the
 * holder's pid; a dead holder's lock is taken over).
 */
async function withLock<T>(name: string, fn: () => Promise<T>, waitMs = 20 * 60_000): Promise<T> {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  const dir = path.join(RUN_DIR, `${name}.lock`);
  const owner = path.join(dir, 'pid');
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(owner, String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try {
      holder = Number(fs.readFileSync(owner, 'utf8'));
    } catch {
      // just made, pid not written yet (or just released)
    }
    const age = Date.now() - (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (
      (Number.isInteger(holder) && holder > 0 && !alive(holder)) ||
      (Number.isNaN(holder) && age > 10_000)
    ) {
      // taken over only if still the same dead holder's (another waiter may have been first)
      let still = NaN;
      try {
        still = Number(fs.readFileSync(owner, 'utf8'));
      } catch {
        // gone
      }
      if (Object.is(still, holder)) fs.rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${dir} is held by process ${holder}`);
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// dockerd

const USERS_DIR = path.join(RUN_DIR, 'dockerd-users');
const STARTED_PID = path.join(RUN_DIR, 'dockerd.pid');

async function engineAnswers(): Promise<boolean> {
  return run('docker', ['version', '--format', '{{.Server.Version}}'], '', { timeoutMs: 10_000 }).then(
    () => true,
    () => false,
  );
}

/** The live processes that said they use the engine (dead ones forgotten). */
function liveUsers(): number[] {
  fs.mkdirSync(USERS_DIR, { recursive: true });
  const users: number[] = [];
  for (const f of fs.readdirSync(USERS_DIR)) {
    const pid = Number(f);
    if (Number.isInteger(pid) && alive(pid)) users.push(pid);
    else fs.rmSync(path.join(USERS_DIR, f), { force: true });
  }
  return users;
}

/** The dockerd a test run started, if it still runs. */
function startedDockerd(): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(STARTED_PID, 'utf8'));
  } catch {
    return undefined;
  }
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    // gone
  }
  if (cmd === DOCKERD) return pid;
  fs.rmSync(STARTED_PID, { force: true });
  return undefined;
}

/**
 * Make sure a Docker engine answers: if none does, start /usr/sbin/dockerd as a child (its log
 * in DOCKERD_LOG) and wait until it answers. This process counts as a user of the engine until
 * it calls stopDockerdIfStarted() (or exits). Returns the pid of the dockerd this call started.
 */
export async function ensureDockerd(): Promise<number | undefined> {
  return withLock(
    'dockerd',
    async () => {
      liveUsers();
      fs.writeFileSync(path.join(USERS_DIR, String(process.pid)), '');
      if (await engineAnswers()) return undefined;
      const log = fs.openSync(DOCKERD_LOG, 'w');
      const extra = (process.env.WORMHOLE_TEST_DOCKERD_ARGS ?? '').split(/\s+/).filter(Boolean);
      const child = spawn(DOCKERD, extra, { stdio: ['ignore', log, log], detached: true });
      fs.closeSync(log);
      child.unref();
      let exited: string | undefined;
      child.once('exit', (code, signal) => (exited = `exited (${signal ?? code})`));
      child.once('error', (err) => (exited = err.message));
      if (child.pid !== undefined) fs.writeFileSync(STARTED_PID, String(child.pid));
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !exited) {
        await sleep(250);
        if (await engineAnswers()) {
          say(`started dockerd (pid ${child.pid}, log ${DOCKERD_LOG})`);
          return child.pid;
        }
      }
      const tail = fs.readFileSync(DOCKERD_LOG, 'utf8').trim().split('\n').slice(-5).join('\n');
      throw new Error(`dockerd ${exited ?? 'did not answer within 60 s'}; see ${DOCKERD_LOG}:\n${tail}`);
    },
    120_000,
  );
}

/**
 * This process no longer needs the engine. When no other process does, stop the dockerd that
 * a test run started (one that was running already is left alone).
 */
export async function stopDockerdIfStarted(): Promise<void> {
  await withLock(
    'dockerd',
    async () => {
      fs.rmSync(path.join(USERS_DIR, String(process.pid)), { force: true });
      if (liveUsers().length > 0) return;
      const pid = startedDockerd();
      if (pid === undefined) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 200 && alive(pid); i++) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      fs.rmSync(STARTED_PID, { force: true });
      say(`stopped dockerd (pid ${pid})`);
    },
    120_000,
  );
}

// ---------------------------------------------------------------------------------------
// images

function hash(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** The hash of every file in a fixture directory (names and contents). */
function dirHash(dir: string): string {
  const parts: (string | Buffer)[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const stat = fs.statSync(path.join(dir, f));
    parts.push(f, String(stat.mode & 0o777), fs.readFileSync(path.join(dir, f)));
  }
  return hash(...parts);
}

async function imageRecipe(image: string): Promise<string | undefined> {
  return run('docker', [
    'image',
    'inspect',
    '--format',
    `{{ index .Config.Labels "${RECIPE_LABEL}" }}`,
    image,
  ]).then(
    (out) => out.trim(),
    () => undefined,
  );
}

async function upToDate(image: string, recipe: string): Promise<boolean> {
  return !REBUILD && (await imageRecipe(image)) === recipe;
}

/** `docker build` of a context directory, with the legacy builder (no registry, no BuildKit). */
async function dockerBuild(context: string, tags: string[], recipe: string, buildArgs: string[] = []) {
  const args = ['build', '--label', `${RECIPE_LABEL}=${recipe}`, ...tags.flatMap((t) => ['-t', t])];
  for (const a of buildArgs) args.push('--build-arg', a);
  if (REBUILD) args.push('--no-cache');
  await run('docker', [...args, context], '', { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
}

/**
 * The echo image's build context (echo-server compiled, busybox, the Dockerfile) in a new
 * temporary directory, for `docker build` or `podman build`; the caller removes it.
 */
export async function echoContext(): Promise<string> {
  const dir = path.join(IMAGES_DIR, 'echo');
  const context = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-echo-'));
  await run('gcc', ['-static', '-O2', '-o', path.join(context, 'echo-server'), path.join(dir, 'echo.c')]);
  fs.copyFileSync(BUSYBOX, path.join(context, 'busybox'));
  fs.chmodSync(path.join(context, 'busybox'), 0o755);
  fs.copyFileSync(path.join(dir, 'Dockerfile'), path.join(context, 'Dockerfile'));
  return context;
}

async function buildEcho(): Promise<void> {
  const busybox = fs.readFileSync(BUSYBOX);
  const recipe = hash('echo-v3', busybox, dirHash(path.join(IMAGES_DIR, 'echo')));
  const readyDir = path.join(IMAGES_DIR, 'ready');
  const readyRecipe = hash(recipe, dirHash(readyDir));
  if (!(await upToDate(ECHO_IMAGE, recipe))) {
    say(`building ${ECHO_IMAGE}`);
    const context = await echoContext();
    try {
      await dockerBuild(context, [ECHO_IMAGE], recipe);
    } finally {
      fs.rmSync(context, { recursive: true, force: true });
    }
  }
  // (on the echo image: its busybox runs the scripts)
  if (await upToDate(READY_IMAGE, readyRecipe)) return;
  say(`building ${READY_IMAGE}`);
  await dockerBuild(readyDir, [READY_IMAGE], readyRecipe, [`BASE=${ECHO_IMAGE}`]);
}

/**
 * The Debian mirror the host's apt uses for bookworm main (one-line and deb822 sources), or
 * deb.debian.org.
 */
export function debianMirror(): string {
  if (process.env.WORMHOLE_TEST_MIRROR) return process.env.WORMHOLE_TEST_MIRROR;
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(path.join('/etc/apt/sources.list.d', f));
    }
  } catch {
    // no directory
  }
  const usable = (uri: string, suites: string[], components: string[]) =>
    /^https?:\/\//.test(uri) && suites.includes(SUITE) && components.includes('main');
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const fields = new Map<string, string>();
        for (const line of stanza.split('\n')) {
          const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (m) fields.set(m[1].toLowerCase(), m[2].trim());
        }
        const list = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
        if (!list('types').includes('deb') || fields.get('enabled') === 'no') continue;
        const uri = list('uris').find((u) => usable(u, list('suites'), list('components')));
        if (uri) return uri.replace(/\/$/, '');
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.replace(/#.*/, ''));
        if (m && usable(m[1], [m[2]], m[3].split(/\s+/))) return m[1].replace(/\/$/, '');
      }
    }
  }
  return DEFAULT_MIRROR;
}

/** Unmount whatever is still mounted under `dir` (a chroot's /proc, say), deepest first. */
export function unmountUnder(dir: string): Promise<unknown> {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  return mounts.reduce<Promise<unknown>>(
    (p, m) => p.then(() => run('umount', ['-l', m]).catch(() => undefined)),
    Promise.resolve(),
  );
}

/** The Debian root as a tarball in the cache directory, made by debootstrap if not there. */
async function debianRootfs(recipe: string): Promise<string> {
  const tarball = path.join(CACHE_DIR, `debian-${SUITE}-${recipe}.tar`);
  if (!REBUILD && fs.existsSync(tarball)) return tarball;
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const mirror = debianMirror();
  say(`debootstrap ${SUITE} from ${mirror} (about a minute)`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-debian-'));
  fs.chmodSync(root, 0o755); // it becomes the image's "/": the mysql user must get through
  const partial = `${tarball}.${process.pid}.partial`;
  try {
    await run('debootstrap', [...DEBOOTSTRAP, SUITE, root, mirror]);
    await unmountUnder(root);
    for (const junk of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale']) {
      fs.rmSync(path.join(root, junk), { recursive: true, force: true });
    }
    for (const dir of ['var/cache/apt', 'var/lib/apt/lists', 'tmp']) {
      for (const f of fs.readdirSync(path.join(root, dir))) {
        fs.rmSync(path.join(root, dir, f), { recursive: true, force: true });
      }
    }
    await run('tar', ['-C', root, '--numeric-owner', '-cf', partial, '.']);
    fs.renameSync(partial, tarball);
  } finally {
    await unmountUnder(root);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(partial, { force: true });
  }
  // earlier recipes' tarballs
  for (const f of fs.readdirSync(CACHE_DIR)) {
    if (/^debian-.*\.tar$/.test(f) && path.join(CACHE_DIR, f) !== tarball) {
      fs.rmSync(path.join(CACHE_DIR, f), { force: true });
    }
  }
  return tarball;
}

async function buildDebianImages(): Promise<void> {
  const rootRecipe = hash(ROOTFS_VERSION, SUITE, DEBOOTSTRAP.join(' '));
  const base = `${BASE_IMAGE}:${rootRecipe}`;
  const dbDir = path.join(IMAGES_DIR, 'mariadb');
  const appDir = path.join(IMAGES_DIR, 'app');
  const dbRecipe = hash(rootRecipe, dirHash(dbDir));
  const appRecipe = hash(rootRecipe, dirHash(appDir));
  if ((await upToDate(DB_IMAGE, dbRecipe)) && (await upToDate(APP_IMAGE, appRecipe))) return;
  if (!(await upToDate(base, rootRecipe))) {
    const tarball = await debianRootfs(rootRecipe);
    say(`importing ${base}`);
    await run('docker', [
      'import',
      '--change',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change',
      `LABEL ${RECIPE_LABEL}=${rootRecipe}`,
      tarball,
      base,
    ]);
  }
  if (!(await upToDate(DB_IMAGE, dbRecipe))) {
    say(`building ${DB_IMAGE}`);
    await dockerBuild(dbDir, [DB_IMAGE, 'wormhole/mysql'], dbRecipe, [`BASE=${base}`]);
  }
  if (!(await upToDate(APP_IMAGE, appRecipe))) {
    say(`building ${APP_IMAGE}`);
    await dockerBuild(appDir, [APP_IMAGE, 'wormhole/wordpress'], appRecipe, [`BASE=${base}`]);
  }
  // earlier recipes' base images (kept while a container uses them)
  const bases = await run('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', BASE_IMAGE]);
  for (const old of bases.split('\n').filter((b) => b && b !== base)) {
    await run('docker', ['rmi', old]).catch(() => undefined);
  }
}

/**
 * Build the test images that are missing or whose recipe changed (one process at a time; the
 * others wait and then find them built).
 */
export async function ensureTestImages(): Promise<void> {
  await withLock('images', async () => {
    const started = Date.now();
    await buildEcho();
    await buildDebianImages();
    // untagged leftovers of earlier builds
    await run('docker', ['image', 'prune', '-f', '--filter', `label=${RECIPE_LABEL}`]).catch(() => undefined);
    const s = (Date.now() - started) / 1000;
    if (s > 5) say(`test images built in ${s.toFixed(0)} s`);
  });
}

// ---------------------------------------------------------------------------------------
// containers

/** Containers matching a filter (`label=...`), removed. */
export async function removeContainers(filter: string): Promise<void> {
  const ids = (await run('docker', ['ps', '-aq', '--filter', filter])).split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['rm', '-f', ...ids]);
}

/** Ids of the containers matching a filter. */
export async function containers(filter: string): Promise<string[]> {
  return (await run('docker', ['ps', '-aq', '--no-trunc', '--filter', filter])).split('\n').filter(Boolean);
}

/** The pid of a running container's first process. */
export async function containerPid(id: string): Promise<number> {
  return Number((await run('docker', ['inspect', '--format', '{{.State.Pid}}', id])).trim());
}
