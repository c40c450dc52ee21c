/**
 * Docker for tests: a real dockerd (started when none answers, stopped again by whoever
 * started it) and the test images, built locally because no registry is reachable:
 *
 * - wormhole-test/echo: busybox-static and a small echo server (echo.c), `echo-server 9001`;
 * - wormhole-test/mariadb (also tagged wormhole/mysql): Debian's mariadb-server from a
 *   debootstrap root, listening on 127.0.0.1:3306 only, root from 127.0.0.1 without a
 *   password, database `wormhole` with table `t` holding 'hello from mariadb';
 * - wormhole-test/app (also tagged wormhole/wordpress): HTTP on :80 answering with the value
 *   it reads from the database at 127.0.0.1:3306 (test/fixtures/images/http.sh).
 *
 * Images carry a label with the hash of their recipe and are rebuilt only when it changes.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './daemon';

const IMAGES_DIR = path.join(ROOT, 'test/fixtures/images');
const RECIPE_LABEL = 'wormhole.test.recipe';
const MIRROR = 'http://deb.debian.org/debian';
const DEBOOTSTRAP = ['--variant=minbase', '--include=mariadb-server,mariadb-client,busybox', 'bookworm'];

export const ECHO_IMAGE = 'wormhole-test/echo';
export const DB_IMAGE = 'wormhole-test/mariadb';
export const APP_IMAGE = 'wormhole-test/app';
/** The value the database image holds. */
export const DB_VALUE = 'hello from mariadb';
/** The mysql / mariadb client's arguments that read it through 127.0.0.1:3306, as root. */
export const DB_QUERY = ['-u', 'root', '-h', '127.0.0.1', '-N', '-B', '-e', 'SELECT v FROM wormhole.t'];

/** Run a command; reject with its stderr. */
export function run(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
    p.stdin?.end(input ?? '');
  });
}

async function engineAnswers(): Promise<boolean> {
  return run('docker', ['version', '--format', '{{.Server.Version}}']).then(
    () => true,
    () => false,
  );
}

/** Start dockerd if no engine answers; returns its pid when this call started it. */
export async function ensureDockerd(): Promise<number | undefined> {
  if (await engineAnswers()) return undefined;
  const log = fs.openSync(path.join(os.tmpdir(), 'wormhole-test-dockerd.log'), 'a');
  const child = spawn('/usr/sbin/dockerd', [], { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  child.unref();
  for (let i = 0; i < 150; i++) {
    await new Promise((r) => setTimeout(r, 200));
    if (await engineAnswers()) return child.pid;
  }
  throw new Error('dockerd did not start: see /tmp/wormhole-test-dockerd.log');
}

/** Stop a dockerd that ensureDockerd started. */
export async function stopDockerd(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
}

function recipeHash(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
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

/** Import a directory as an image (tar streamed into docker import). */
function importDir(dir: string, image: string, changes: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const imp = spawn('docker', ['import', ...changes.flatMap((c) => ['--change', c]), '-', image], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    imp.stderr.on('data', (d: Buffer) => (err += d.toString()));
    tar.stdout.pipe(imp.stdin);
    imp.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker import ${image}: ${err}`))));
  });
}

async function buildEcho(): Promise<void> {
  const source = path.join(IMAGES_DIR, 'echo.c');
  const hash = recipeHash(
    'echo-v2',
    fs.readFileSync('/bin/busybox').length.toString(),
    fs.readFileSync(source, 'utf8'),
  );
  if ((await imageRecipe(ECHO_IMAGE)) === hash) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-echo-'));
  try {
    fs.mkdirSync(path.join(dir, 'bin'));
    await run('gcc', ['-static', '-O2', '-o', path.join(dir, 'bin/echo-server'), source]);
    fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
    fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
    for (const applet of ['sh', 'nc', 'cat', 'sleep', 'echo'])
      fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
    await importDir(dir, ECHO_IMAGE, [
      'ENV PATH=/bin',
      'CMD ["echo-server", "9001"]',
      `LABEL ${RECIPE_LABEL}=${hash}`,
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function buildDebianImages(): Promise<void> {
  const initSql = fs.readFileSync(path.join(IMAGES_DIR, 'init.sql'), 'utf8');
  const httpSh = fs.readFileSync(path.join(IMAGES_DIR, 'http.sh'), 'utf8');
  const hash = recipeHash('debian-v1', DEBOOTSTRAP.join(' '), initSql, httpSh);
  if ((await imageRecipe(DB_IMAGE)) === hash && (await imageRecipe(APP_IMAGE)) === hash) return;
  const base = `wormhole-test/base:${hash}`;
  if ((await imageRecipe(base)) !== hash) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-debian-'));
    fs.chmodSync(root, 0o755); // it becomes the image's "/": the mysql user must get through
    try {
      await run('debootstrap', [...DEBOOTSTRAP, root, MIRROR]);
      fs.writeFileSync(path.join(root, 'tmp/init.sql'), initSql);
      await run('chroot', [root, 'sh', '-c', '/usr/sbin/mariadbd --user=mysql --bootstrap < /tmp/init.sql']);
      await run('chroot', [root, 'install', '-d', '-o', 'mysql', '-g', 'mysql', '/run/mysqld']);
      fs.mkdirSync(path.join(root, 'app'));
      fs.writeFileSync(path.join(root, 'app/http.sh'), httpSh, { mode: 0o755 });
      for (const junk of [
        'usr/share/doc',
        'usr/share/man',
        'usr/share/locale',
        'var/cache/apt',
        'var/lib/apt/lists',
        'tmp/init.sql',
      ]) {
        fs.rmSync(path.join(root, junk), { recursive: true, force: true });
      }
      await importDir(root, base, [`LABEL ${RECIPE_LABEL}=${hash}`]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const dockerfile = (cmd: string[]): string =>
    `FROM ${base}\nLABEL ${RECIPE_LABEL}=${hash}\nCMD ${JSON.stringify(cmd)}\n`;
  await run(
    'docker',
    ['build', '-q', '-t', DB_IMAGE, '-t', 'wormhole/mysql', '-'],
    dockerfile(['/usr/sbin/mariadbd', '--user=mysql', '--bind-address=127.0.0.1', '--skip-name-resolve']),
  );
  await run(
    'docker',
    ['build', '-q', '-t', APP_IMAGE, '-t', 'wormhole/wordpress', '-'],
    dockerfile(['busybox', 'nc', '-ll', '-p', '80', '-e', '/app/http.sh']),
  );
}

/** Build the test images that are missing or whose recipe changed. */
export async function ensureTestImages(): Promise<void> {
  await buildEcho();
  await buildDebianImages();
}

/** Containers this test run may have started (by a label filter), removed. */
export async function removeContainers(filter: string): Promise<void> {
  const ids = (await run('docker', ['ps', '-aq', '--filter', filter])).split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['rm', '-f', ...ids]);
}

/** Ids of the containers matching a filter. */
export async function containers(filter: string): Promise<string[]> {
  return (await run('docker', ['ps', '-aq', '--no-trunc', '--filter', filter])).split('\n').filter(Boolean);
}
