/**
 * The Docker adapter (src/docker) against a real dockerd and the locally built test images:
 * namespaces of running containers, docker-run's containers and their labels, removal of a
 * daemon's own containers, pulls that cannot succeed, an engine that is not there, and the
 * test images themselves (the MariaDB image answering the host's mariadb client inside its
 * namespace; the application image reading from it).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { WormholeError } from '../../../src/common/errors';
import type { Logger } from '../../../src/common/log';
import { Docker, OWNER_LABEL, SEGMENT_LABEL, parseRunArgs, resolveAllowedDirs } from '../../../src/docker';
import { connectTcp } from '../../../src/netns';
import { type TestRegistry, startEchoRegistry } from '../../helpers/registry';
import {
  APP_IMAGE,
  DB_IMAGE,
  DB_QUERY,
  DB_VALUE,
  ECHO_IMAGE,
  containerPid,
  containers,
  ensureDockerd,
  ensureTestImages,
  removeContainers,
  run,
  stopDockerdIfStarted,
} from '../../helpers/docker';

const RUN = randomBytes(4).toString('hex');
/** Every container this file starts with the docker CLI carries this label. */
const MINE = `wormhole.test.run=${RUN}`;

/** A logger whose lines the test can read. */
function capture(): { log: Logger; lines: { msg: string; [k: string]: unknown }[] } {
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

/** `docker run -d ...` with this file's label; its id. */
async function dockerRun(...args: string[]): Promise<string> {
  return (await run('docker', ['run', '-d', '--label', MINE, ...args])).trim();
}

/** Connect inside a namespace file, send `data`, half-close, read until the other side closes. */
async function exchangeIn(nsPath: string, port: number, data: string): Promise<string> {
  const s = await connectTcp(nsPath, '127.0.0.1', port);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.setTimeout(20_000, () => s.destroy(new Error('no answer in 20 s')));
    s.end(data);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
}

/** exchangeIn, retried while the service in a new container comes up. */
async function exchangeWhenUp(nsPath: string, port: number, data: string, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await exchangeIn(nsPath, port, data);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Assert that a promise rejects with a WormholeError of `code` whose message matches. */
async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<WormholeError> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}, got success`),
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof WormholeError, `a WormholeError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  assert.ok(!caught.message.includes('\n'), `one line: ${caught.message}`);
  return caught;
}

/** A Docker adapter built with DOCKER_HOST set to `host` (then restored). */
function dockerAt(host: string, log: Logger, callTimeoutMs?: number): Docker {
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = host;
  try {
    return new Docker(log, `unreachable-${RUN}`, { callTimeoutMs });
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  }
}

describe('the Docker adapter', () => {
  const owner = `test-${RUN}`;
  const { log, lines } = capture();
  let docker: Docker;
  /** The directory binds are allowed under: one of the test's own (root's, 0700), as --allow-bind wants. */
  let allowed: string;

  before(async () => {
    await ensureDockerd();
    await ensureTestImages();
    // (not the temporary directory itself: others may write to it, and --allow-bind refuses that)
    allowed = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-allowed-'));
    docker = new Docker(log, owner, { allowBind: resolveAllowedDirs([allowed]) });
  });

  after(async () => {
    await docker.removeOwned().catch(() => undefined);
    await removeContainers(`label=${MINE}`);
    await removeContainers(`label=${OWNER_LABEL}=${owner}`);
    await stopDockerdIfStarted();
    fs.rmSync(allowed, { recursive: true, force: true });
  });

  describe('namespaceOf', () => {
    let id: string;
    let name: string;
    before(async () => {
      name = `wh-adapter-${RUN}`;
      id = await dockerRun('--name', name, ECHO_IMAGE);
    });

    it('finds a running container by full id, short id and name: its /proc/PID/ns/net', async () => {
      const pid = await containerPid(id);
      for (const ref of [id, id.slice(0, 12), id.slice(0, 10), name, `/${name}`]) {
        assert.equal(await docker.namespaceOf(ref), `/proc/${pid}/ns/net`, ref);
      }
      // and it is the container's own network: its echo server answers there
      assert.equal(await exchangeWhenUp(await docker.namespaceOf(name), 9001, 'ping'), 'ping');
    });

    it('says a container that does not exist does not, naming it', async () => {
      await rejectsWith(
        docker.namespaceOf(`wh-no-such-${RUN}`),
        'CONTAINER_NOT_FOUND',
        new RegExp(`container wh-no-such-${RUN} does not exist`),
      );
      await rejectsWith(
        docker.namespaceOf('0123456789ab'),
        'CONTAINER_NOT_FOUND',
        /0123456789ab does not exist/,
      );
    });

    it('refuses what cannot be a container reference without asking the engine', async () => {
      for (const ref of ['', '../../images/json', 'a b', '$(reboot)', 'x;y', '-rf', 'a/b', 'x'.repeat(256)]) {
        await rejectsWith(docker.namespaceOf(ref), 'CONTAINER_NOT_FOUND', /is not a container id or name/);
      }
    });

    it('says a container that is not running is not: created, exited, paused', async () => {
      const created = (
        await run('docker', ['create', '--label', MINE, '--name', `wh-created-${RUN}`, ECHO_IMAGE])
      ).trim();
      await rejectsWith(
        docker.namespaceOf(`wh-created-${RUN}`),
        'CONTAINER_NOT_RUNNING',
        new RegExp(`container wh-created-${RUN} is not running \\(created\\)`),
      );
      const exited = await dockerRun(ECHO_IMAGE, 'true');
      await run('docker', ['wait', exited]);
      await rejectsWith(docker.namespaceOf(exited), 'CONTAINER_NOT_RUNNING', /is not running \(exited\)/);
      const paused = await dockerRun(ECHO_IMAGE);
      await run('docker', ['pause', paused]);
      await rejectsWith(docker.namespaceOf(paused), 'CONTAINER_NOT_RUNNING', /is paused/);
      await run('docker', ['rm', '-f', created, exited, paused]);
    });
  });

  describe('run and remove', () => {
    it("starts a container with the user's options and its owner and segment labels", async (t) => {
      const dir = fs.mkdtempSync(path.join(allowed, 'wh-bind-'));
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      fs.writeFileSync(path.join(dir, 'f'), 'from the host');
      const name = `wh-run-${RUN}`;
      const spec = parseRunArgs([
        `-e GREETING=hi --name ${name} -v ${dir}:/data:ro -l team=db ${ECHO_IMAGE} nc -ll -p 9001 -e cat`,
      ]);
      const { id, nsPath } = await docker.run(spec, 'seg-1');
      try {
        assert.match(id, /^[0-9a-f]{64}$/);
        assert.equal(nsPath, `/proc/${await containerPid(id)}/ns/net`);
        const info = JSON.parse(await run('docker', ['inspect', id]))[0];
        assert.equal(info.Name, `/${name}`);
        assert.deepEqual(info.Config.Cmd, ['nc', '-ll', '-p', '9001', '-e', 'cat']);
        assert.ok(info.Config.Env.includes('GREETING=hi'));
        assert.deepEqual(info.HostConfig.Binds, [`${dir}:/data:ro`]);
        assert.equal(info.Config.Labels[OWNER_LABEL], owner);
        assert.equal(info.Config.Labels[SEGMENT_LABEL], 'seg-1');
        assert.equal(info.Config.Labels.team, 'db');
        assert.equal((await run('docker', ['exec', id, 'cat', '/data/f'])).trim(), 'from the host');
        // busybox nc answers in the container's namespace, as `docker-run "IMAGE nc -ll ..."` means
        assert.equal(await exchangeWhenUp(nsPath, 9001, 'hello'), 'hello');
        assert.equal(await exchangeWhenUp(nsPath, 9001, 'again'), 'again');
        assert.equal(await docker.namespaceOf(id), nsPath);
      } finally {
        await docker.remove(id);
      }
      assert.deepEqual(await containers(`id=${id}`), [], 'removed');
      assert.ok(lines.some((l) => l.msg === 'container started' && l.container === id));
      assert.ok(lines.some((l) => l.msg === 'container removed' && l.container === id));
    });

    it("takes docker-run's words as they are, and runs the image's own command when none is given", async () => {
      const { id, nsPath } = await docker.run([ECHO_IMAGE], 'seg-2');
      assert.equal(await exchangeWhenUp(nsPath, 9001, 'default command'), 'default command');
      await docker.remove(id);
    });

    it('passes shell metacharacters to the container as literal arguments; nothing runs on the host', async () => {
      const marker = path.join(os.tmpdir(), `wh-pwned-${RUN}`);
      const words = [
        `${ECHO_IMAGE} echo-server 9001 ;touch ${marker} $(touch${'${IFS}'}${marker}) \`id\` | &&`,
      ];
      const { id } = await docker.run(parseRunArgs(words), 'seg-3');
      const info = JSON.parse(await run('docker', ['inspect', id]))[0];
      assert.equal(info.Path, 'echo-server');
      assert.deepEqual(info.Args, ['9001', `;touch`, marker, `$(touch\${IFS}${marker})`, '`id`', '|', '&&']);
      assert.ok(!fs.existsSync(marker), 'nothing ran on the host');
      await docker.remove(id);
    });

    it('removes a container that cannot start and says why', async () => {
      const before = await containers(`label=${OWNER_LABEL}=${owner}`);
      await rejectsWith(
        docker.run([`${ECHO_IMAGE} /no/such/program`], 'seg-4'),
        'DOCKER_FAILED',
        /start a container from wormhole-test\/echo: .*(no such file|not found)/i,
      );
      assert.deepEqual(await containers(`label=${OWNER_LABEL}=${owner}`), before, 'nothing left');
    });

    it('removes a container whose command stops at once and says how it ended', async () => {
      const before = await containers(`label=${OWNER_LABEL}=${owner}`);
      // (the command exits within a millisecond, but the engine may still call it running when
      // asked: then docker-run succeeds, which is right too; a few tries see it stopped)
      let seen: WormholeError | undefined;
      for (let i = 0; i < 5 && !seen; i++) {
        const r = await docker.run([`${ECHO_IMAGE} cat /no/such/file`], 'seg-exit').then(
          (ok) => docker.remove(ok.id),
          (err: unknown) => (seen = err as WormholeError),
        );
        assert.equal(r === undefined || r instanceof WormholeError, true);
      }
      assert.ok(seen instanceof WormholeError, 'the stop was seen');
      assert.equal(seen.code, 'CONTAINER_EXITED');
      assert.match(
        seen.message,
        /^the container from wormhole-test\/echo stopped at once with exit code 1: cat: can't open '\/no\/such\/file'/,
      );
      assert.deepEqual(await containers(`label=${OWNER_LABEL}=${owner}`), before, 'nothing left');
    });

    it('says when a container name is taken', async () => {
      const name = `wh-taken-${RUN}`;
      await dockerRun('--name', name, ECHO_IMAGE);
      await rejectsWith(
        docker.run([`--name ${name} ${ECHO_IMAGE}`], 'seg-5'),
        'DOCKER_FAILED',
        /already in use/,
      );
    });

    it('removes idempotently: an id that is gone, twice, is fine', async () => {
      const { id } = await docker.run([ECHO_IMAGE], 'seg-6');
      await docker.remove(id);
      await docker.remove(id);
      await docker.remove('0123456789abcdef');
      // what cannot be a container is not one (and never reaches the engine's paths)
      for (const bad of ['', '//x', '../../images/json', 'a b']) await docker.remove(bad);
      assert.deepEqual(await containers(`id=${id}`), []);
    });
  });

  describe('removeOwned', () => {
    it("removes every container with this daemon's owner label and no other", async () => {
      const other = new Docker(log, `other-${RUN}`);
      const a = await docker.run([ECHO_IMAGE], 'seg-a');
      const b = await docker.run([`${ECHO_IMAGE} sleep 600`], 'seg-b');
      const theirs = await other.run([ECHO_IMAGE], 'seg-c');
      // an orphan of a crashed run: a stopped container with our label
      const orphan = (
        await run('docker', ['create', '--label', `${OWNER_LABEL}=${owner}`, '--label', MINE, ECHO_IMAGE])
      ).trim();
      const unlabelled = await dockerRun(ECHO_IMAGE);
      try {
        assert.equal(await docker.removeOwned(), 3);
        for (const id of [a.id, b.id, orphan]) assert.deepEqual(await containers(`id=${id}`), [], id);
        assert.equal((await containers(`id=${theirs.id}`)).length, 1, "another daemon's container stays");
        assert.equal((await containers(`id=${unlabelled}`)).length, 1, 'an unlabelled container stays');
        assert.equal(await docker.removeOwned(), 0);
      } finally {
        assert.equal(await other.removeOwned(), 1);
        await run('docker', ['rm', '-f', unlabelled]);
      }
    });
  });

  describe('images', () => {
    it('refuses an image name that is not one, without asking the engine', async () => {
      await rejectsWith(
        docker.ensureImage('../../containers/json'),
        'IMAGE_UNAVAILABLE',
        /not a valid image name/,
      );
      await rejectsWith(docker.ensureImage('a b'), 'IMAGE_UNAVAILABLE', /not a valid image name/);
    });

    it('uses an image that is here without pulling', async () => {
      const from = lines.length;
      await docker.ensureImage(ECHO_IMAGE);
      await docker.ensureImage(`${ECHO_IMAGE}:latest`);
      assert.ok(!lines.slice(from).some((l) => /pull/.test(l.msg)));
    });

    it('says why an image that is not here cannot be had (IMAGE_UNAVAILABLE), pulling it once', async () => {
      const from = lines.length;
      const image = `wormhole-test/no-such-image-${RUN}:v1`;
      const both = await Promise.allSettled([docker.ensureImage(image), docker.ensureImage(image)]);
      for (const r of both) {
        assert.equal(r.status, 'rejected');
        const err = (r as PromiseRejectedResult).reason as WormholeError;
        assert.equal(err.code, 'IMAGE_UNAVAILABLE');
        assert.match(err.message, new RegExp(`^image ${image} is not here and cannot be pulled: \\S`));
        assert.ok(!err.message.includes('\n'));
      }
      const pulls = lines.slice(from).filter((l) => l.msg === 'image not here: pulling it');
      assert.equal(pulls.length, 1, 'one pull for two callers');
      assert.equal(pulls[0].image, image);
      // docker-run of it: the same error, and no container
      const before = await containers(`label=${OWNER_LABEL}=${owner}`);
      await rejectsWith(docker.run([image], 'seg-x'), 'IMAGE_UNAVAILABLE', /cannot be pulled/);
      await rejectsWith(docker.prepare([image]), 'IMAGE_UNAVAILABLE', /cannot be pulled/);
      assert.deepEqual(await containers(`label=${OWNER_LABEL}=${owner}`), before);
    });
  });

  describe('pulls', () => {
    let registry: TestRegistry | undefined;
    const repo = `wh-test/pulled-${RUN}`;
    before(async () => {
      registry = await startEchoRegistry(repo);
    });
    after(async () => {
      if (!registry) return;
      await run('docker', ['rmi', '-f', `${registry.host}/${repo}:v1`]).catch(() => undefined);
      await registry.close();
    });

    it('pulls an image that is not here, once for two callers, logging its progress', async () => {
      assert.ok(registry);
      const image = `${registry.host}/${repo}:v1`;
      const from = lines.length;
      await Promise.all([docker.ensureImage(image), docker.prepare([`${image} nc -l`])]);
      const logged = lines.slice(from).filter((l) => l.image === image);
      assert.equal(logged.filter((l) => l.msg === 'image not here: pulling it').length, 1, 'one pull');
      const progress = logged.filter((l) => l.msg === 'pull progress');
      assert.ok(
        progress.some((l) => /Download|Pull complete/.test(String(l.status))),
        JSON.stringify(progress),
      );
      assert.equal(logged.filter((l) => l.msg === 'image pulled').length, 1);
      assert.ok(
        registry.requests.some((r) => /^GET \/v2\/.*\/blobs\/sha256:/.test(r)),
        'the engine fetched blobs',
      );
      // it is here now: no second pull, and it runs
      const asked = registry.requests.length;
      const { id, nsPath } = await docker.run([image], 'seg-pulled');
      assert.equal(registry.requests.length, asked, 'not pulled again');
      assert.equal(await exchangeWhenUp(nsPath, 9001, 'pulled'), 'pulled');
      await docker.remove(id);
    });

    it('says why a registry that does not have the image cannot give it', async () => {
      assert.ok(registry);
      await rejectsWith(
        docker.ensureImage(`${registry.host}/${repo}:no-such-tag`),
        'IMAGE_UNAVAILABLE',
        new RegExp(
          `^image ${registry.host}/${repo}:no-such-tag is not here and cannot be pulled: .*(manifest unknown|not found)`,
        ),
      );
    });
  });

  describe('the test images', () => {
    it('mariadb: the host mariadb client in its namespace reads the value; 127.0.0.1 only', async () => {
      const db = await docker.run([DB_IMAGE], 'seg-db');
      try {
        const deadline = Date.now() + 60_000;
        let answer = '';
        for (;;) {
          try {
            answer = await run('nsenter', [`--net=${db.nsPath}`, 'mariadb', ...DB_QUERY]);
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        assert.equal(answer.trim(), DB_VALUE);
        // the seed's `mysql -u root -h 127.0.0.1` works too, without a password
        const seed = await run('nsenter', [
          `--net=${db.nsPath}`,
          'mysql',
          '-u',
          'root',
          '-h',
          '127.0.0.1',
          '-e',
          'select 42',
        ]);
        assert.match(seed, /42/);
        // nothing listens on the container's bridge address
        const ip = (
          await run('docker', ['inspect', '--format', '{{.NetworkSettings.IPAddress}}', db.id])
        ).trim();
        assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
        const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
          const s = net.connect({ host: ip, port: 3306 });
          s.on('connect', () => {
            s.destroy();
            resolve(Object.assign(new Error('connected'), { code: 'CONNECTED' }));
          });
          s.on('error', resolve);
        });
        assert.equal(err.code, 'ECONNREFUSED', `${ip}:3306 must refuse`);
      } finally {
        await docker.remove(db.id);
      }
    });

    it('app: serves HTTP on :80 with the value read from 127.0.0.1:3306, or a 502 at once', async () => {
      const GET = 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n';
      // alone, there is no database: a clear error, without waiting
      const alone = await docker.run([APP_IMAGE], 'seg-app');
      try {
        const started = Date.now();
        const page = await exchangeWhenUp(alone.nsPath, 80, GET);
        assert.match(page, /^HTTP\/1.0 502 Bad Gateway\r\n/);
        assert.match(page, /\r\n\r\ndatabase unreachable: .*127\.0\.0\.1/);
        assert.ok(Date.now() - started < 10_000, 'answered at once');
      } finally {
        await docker.remove(alone.id);
      }
      // sharing the database container's network: the database's value
      const db = await docker.run([DB_IMAGE], 'seg-db2');
      try {
        const app = await dockerRun('--network', `container:${db.id}`, APP_IMAGE);
        assert.ok(app);
        const deadline = Date.now() + 60_000;
        let page = '';
        while (!page.includes(DB_VALUE) && Date.now() < deadline) {
          page = await exchangeWhenUp(db.nsPath, 80, GET).catch((e: Error) => e.message);
          if (!page.includes(DB_VALUE)) await new Promise((r) => setTimeout(r, 250));
        }
        assert.match(page, /^HTTP\/1.0 200 OK\r\n/);
        assert.match(page, /Content-Length: 19\r\n/);
        assert.ok(page.endsWith(`\r\n\r\n${DB_VALUE}\n`), page);
        await run('docker', ['rm', '-f', app]);
      } finally {
        await docker.remove(db.id);
      }
    });
  });
});

describe('the Docker adapter without an engine', () => {
  const { log } = capture();

  it('asks nothing of the engine until a call needs it', async () => {
    const sock = path.join(os.tmpdir(), `wh-fake-docker-${RUN}.sock`);
    const accepted: net.Socket[] = [];
    let closed = 0;
    const server = net.createServer((s) => {
      // accepts, reads, never answers
      accepted.push(s);
      s.resume();
      s.on('close', () => closed++);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const docker = dockerAt(`unix://${sock}`, log, 500);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(accepted.length, 0, 'constructing connects to nothing');
      await rejectsWith(
        docker.namespaceOf('anything'),
        'DOCKER_UNAVAILABLE',
        new RegExp(`the Docker engine at unix://${sock} did not answer within 0.5 s`),
      );
      assert.equal(accepted.length, 1);
      await rejectsWith(docker.removeOwned(), 'DOCKER_UNAVAILABLE', /did not answer/);
      await rejectsWith(docker.ensureImage(ECHO_IMAGE), 'DOCKER_UNAVAILABLE', /did not answer/);
      // the abandoned calls hold no connection open
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(
        accepted.every((s) => s.readableEnded || s.destroyed || s.closed),
        'calls were aborted',
      );
    } finally {
      for (const s of accepted) s.destroy();
      server.close();
    }
  });

  it('says the engine is not running, and where, when its socket is not there', async () => {
    const docker = dockerAt('unix:///nonexistent/docker.sock', log);
    const notRunning =
      /^the Docker engine is not running at unix:\/\/\/nonexistent\/docker.sock \(ENOENT\): start dockerd$/;
    await rejectsWith(docker.namespaceOf('anything'), 'DOCKER_UNAVAILABLE', notRunning);
    await rejectsWith(docker.ensureImage(ECHO_IMAGE), 'DOCKER_UNAVAILABLE', notRunning);
    await rejectsWith(docker.run([ECHO_IMAGE], 'seg'), 'DOCKER_UNAVAILABLE', notRunning);
    await rejectsWith(docker.remove('abc'), 'DOCKER_UNAVAILABLE', notRunning);
    await rejectsWith(docker.removeOwned(), 'DOCKER_UNAVAILABLE', notRunning);
    // docker-run's words are checked before the engine is asked
    await rejectsWith(
      docker.run(['--privileged img'], 'seg'),
      'USAGE',
      /option --privileged is not supported/,
    );
  });

  it('says so for a TCP address where nothing listens, and for a DOCKER_HOST it cannot use', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    await rejectsWith(
      dockerAt(`tcp://127.0.0.1:${port}`, log).namespaceOf('x1'),
      'DOCKER_UNAVAILABLE',
      new RegExp(`not running at tcp://127.0.0.1:${port} \\(ECONNREFUSED\\)`),
    );
    await rejectsWith(
      dockerAt('tcp://[not-a-host', log).namespaceOf('x1'),
      'DOCKER_UNAVAILABLE',
      /cannot use the Docker engine at tcp:\/\/\[not-a-host: /,
    );
  });
});
