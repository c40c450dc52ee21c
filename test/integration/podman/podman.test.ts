/**
 * Podman (issue 20): everything said of Docker, against rootful Podman's Docker-compatible
 * API, a `podman system service` this suite starts under its own temporary directory
 * (test/helpers/podman.ts) and gives the daemon as DOCKER_HOST: docker-ns to a service on a
 * container's 127.0.0.1; docker-run behind a trigger with idle (stopped, not removed, and the
 * same container started again); a stopped container's segment noticed through Podman's
 * events (whose names differ from Docker's) and back when it starts; a `wormhole.NAME` label
 * made into a segment and the segment gone with its container.
 *
 * No timing is asserted: everything is polled with a deadline far above what it needs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { type TestPodman, startPodman } from '../../helpers/podman';
import { type TestRegistry, startEchoRegistry } from '../../helpers/registry';
import { freePort, parseCreate } from '../../helpers/services';
import { eventually } from '../../helpers/wait';

const RUN = randomBytes(4).toString('hex');

/** An echo exchange, bounded: send, half-close, read until the other side closes ('' if reset). */
function exchange(port: number, data: string, ms = 15_000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end(data));
    c.setTimeout(ms, () => c.destroy(new Error('timeout')));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', (err) => resolve(`error: ${err.message}`));
  });
}

async function segments(d: TestDaemon): Promise<SegmentInfo[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SegmentInfo[];
}

async function segment(d: TestDaemon, id: string): Promise<SegmentInfo> {
  const found = (await segments(d)).find((s) => s.id === id);
  assert.ok(found, `segment ${id} is listed`);
  return found;
}

describe('Podman', () => {
  const suite = suiteCleanup(after);
  let p: TestPodman;
  let d: TestDaemon;

  /** A container's state as podman inspect says it ("running", "exited"), or "gone". */
  const status = (id: string): Promise<string> =>
    p.podman('inspect', '--format', '{{.State.Status}}', id).then(
      (s) => s.trim(),
      () => 'gone',
    );

  /** The ids of this daemon's containers (its owner label), running or not. */
  const owned = async (): Promise<string[]> => {
    const owner = fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim();
    const out = await p.podman('ps', '-aq', '--no-trunc', '--filter', `label=wormhole.owner=${owner}`);
    return out.split('\n').filter(Boolean);
  };

  before(async () => {
    p = await startPodman(suite);
    d = await startDaemon(suite, {
      args: ['--labels', '--dial-timeout', '2'],
      env: { DOCKER_HOST: p.host },
    });
  });

  it("docker-ns reaches a service on a container's 127.0.0.1", async () => {
    const name = `whp-ns-${RUN}`;
    // (its namespace has loopback only: the echo server is on its 127.0.0.1 and nowhere else)
    await p.podman('run', '-d', '--name', name, ECHO_IMAGE, 'echo-server', '9001');
    // (read from the host: a `podman exec` would leave its conmon behind for minutes)
    const pid = (await p.podman('inspect', '--format', '{{.State.Pid}}', name)).trim();
    const addrs = await run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-o', 'addr']);
    assert.deepEqual(addrs.match(/inet \S+/g), ['inet 127.0.0.1/8']);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(
      await eventually('an answer', async () => ((await exchange(head, 'hi')) === 'hi' ? 'hi' : undefined)),
      'hi',
    );
    assert.equal((await d.cli('delete', parseCreate(c.stdout).id)).code, 0);
  });

  it('docker-run behind a trigger with idle: stopped when unused, the same container started again', async () => {
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `:${head}`,
      'idle',
      '2s',
      'trigger',
      'docker-run',
      `--stop-timeout 1 ${ECHO_IMAGE} echo-server 9001`,
      'url',
      ':9001',
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.deepEqual(await owned(), [], 'nothing runs before the first connection');
    assert.equal(await exchange(head, 'first'), 'first');
    const [cid] = await owned();
    assert.equal(await status(cid), 'running');

    await eventually('the segment idle', async () =>
      (await segment(d, id)).state === 'idle' ? true : undefined,
    );
    await eventually('the container stopped', async () =>
      (await status(cid)) === 'exited' ? true : undefined,
    );
    assert.deepEqual(await owned(), [cid], 'stopped, not removed');

    assert.equal(await exchange(head, 'again'), 'again');
    assert.equal(await status(cid), 'running', 'the same container started again');
    assert.deepEqual(await owned(), [cid]);
    assert.equal((await d.cli('delete', id)).code, 0);
    assert.deepEqual(await owned(), [], 'removed with its segment');
  });

  it("a stopped container's segment is noticed (Podman's events), and back when it starts", async () => {
    const name = `whp-stop-${RUN}`;
    await p.podman('run', '-d', '--name', name, ECHO_IMAGE, 'echo-server', '9001');
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.equal(
      await eventually('an answer', async () => ((await exchange(head, 'up')) === 'up' ? 'up' : undefined)),
      'up',
    );

    await p.podman('stop', '-t', '0', name);
    const down = await eventually('list shows the stopped container', async () => {
      const s = await segment(d, id);
      return s.state === 'container-down' ? s : undefined;
    });
    assert.deepEqual(down.down, [{ end: 'tail', container: name }]);

    await p.podman('start', name);
    assert.equal(
      await eventually('traffic after podman start', async () =>
        (await exchange(head, 'back')) === 'back' ? 'back' : undefined,
      ),
      'back',
    );
    assert.equal((await segment(d, id)).state, 'ready');
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('a wormhole.NAME label makes a segment, gone when the container is removed', async () => {
    const name = `whp-label-${RUN}`;
    const head = await freePort();
    await p.podman(
      'run',
      '-d',
      '--name',
      name,
      '--label',
      `wormhole.echo=url :${head} tail docker-ns self url :9001`,
      ECHO_IMAGE,
      'echo-server',
      '9001',
    );
    const id = `${name}.echo`;
    const made = await eventually(`segment ${id} ready`, async () => {
      const s = (await segments(d)).find((x) => x.id === id);
      return s?.state === 'ready' ? s : undefined;
    });
    assert.equal(made.label, name);
    assert.equal(
      await eventually('an answer', async () =>
        (await exchange(head, 'lbl')) === 'lbl' ? 'lbl' : undefined,
      ),
      'lbl',
    );
    const refused = await d.cli('delete', id);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(name));

    // Podman says "remove" where Docker says "destroy": the segment goes all the same
    await p.podman('rm', '-f', '-t', '0', name);
    await eventually(`segment ${id} gone`, async () =>
      (await segments(d)).some((x) => x.id === id) ? undefined : true,
    );
    assert.equal((await d.cli('ping')).code, 0);
  });
});

describe('Podman pulls', () => {
  const suite = suiteCleanup(after);
  let p: TestPodman;
  let d: TestDaemon;
  let registry: TestRegistry;
  const repo = `wh-test/pulled-${RUN}`;

  before(async () => {
    registry = await startEchoRegistry(repo);
    suite.after(() => registry.close());
    p = await startPodman(suite, { echo: false, insecureRegistry: registry.host });
    d = await startDaemon(suite, { env: { DOCKER_HOST: p.host } });
  });

  it('a create pulls an image that is not here, showing its layers, and runs it', async () => {
    const image = `${registry.host}/${repo}:v1`;
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'trigger', 'docker-run', image, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^\S+ tcp:\/\/127\.0\.0\.1:\d+\n$/, 'stdout is the answer alone');
    // Podman 4.3 tells each blob's start and end (no byte counts): a line for each
    const lines = c.stderr.trim().split('\n');
    assert.ok(
      lines.every((l) => l.startsWith(`pulling ${image}: `)),
      c.stderr,
    );
    const layer = new RegExp(`^pulling ${image.replace(/[.]/g, '\\.')}: (\\w+) Pulling fs layer$`).exec(
      lines[0],
    )?.[1];
    assert.ok(layer, c.stderr);
    assert.ok(lines.includes(`pulling ${image}: ${layer} Download complete`), c.stderr);
    assert.ok(
      registry.requests.some((r) => /^GET \/v2\/.*\/blobs\/sha256:/.test(r)),
      'Podman fetched the blobs',
    );
    assert.equal(await exchange(head, 'pulled'), 'pulled');
    assert.equal((await d.cli('delete', parseCreate(c.stdout).id)).code, 0);
  });
});
