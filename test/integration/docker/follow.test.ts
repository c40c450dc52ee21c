/**
 * Segments follow their containers (SPEC.md, "Segments that last"): against a real dockerd,
 * a tail or a head in a container named by docker-ns, or started by docker-run, keeps working
 * after `docker restart` (a new namespace); while the container is stopped `list` says so and
 * a connection is given up within the dial timeout instead of hanging or being dialed into the
 * dead namespace; `docker start` brings the traffic back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { listed, ROOT, type TestDaemon, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, removeContainers, run } from '../../helpers/docker';
import { type Cleanup, suiteCleanup } from '../../helpers/netns';
import { freePort, parseCreate, startService, udpExchange } from '../../helpers/services';
import { eventually, sleep } from '../../helpers/wait';

const RUN = randomBytes(4).toString('hex');
/** Every container this file starts with the docker CLI carries this label. */
const MINE = `wh-test-run=${RUN}`;
/** The daemon's dial timeout here (seconds): short, so that a refused connection comes soon. */
const DIAL_TIMEOUT = 2;

/** An echo exchange, bounded: a connection that hangs is a failure, not a stuck test. */
function exchangeWithin(port: number, data: string, host = '127.0.0.1', ms = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ port, host, allowHalfOpen: true }, () => c.end(data));
    c.setTimeout(ms, () => c.destroy(new Error(`no answer and no close within ${ms / 1000} s`)));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', reject);
  });
}

/** What happened to one connection: its answer, or how it was ended. */
async function outcome(port: number, data: string, host?: string): Promise<string> {
  return exchangeWithin(port, data, host).then(
    (answer) => `answer:${answer}`,
    (err: NodeJS.ErrnoException) => `error:${err.code ?? err.message}`,
  );
}

/** `docker run -d` of the echo image with this file's label and a name; its id. */
async function echoContainer(name: string): Promise<string> {
  return (await run('docker', ['run', '-d', '--label', MINE, '--name', name, ECHO_IMAGE])).trim();
}

async function ipOf(container: string): Promise<string> {
  return (await run('docker', ['inspect', '--format', '{{.NetworkSettings.IPAddress}}', container])).trim();
}

/** A segment as list --json shows it. */
const segment = listed;

/** The line `list` prints for a segment. */
async function listLine(d: TestDaemon, id: string): Promise<string> {
  const r = await d.cli('list');
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
}

/**
 * The fixture UDP echo run inside a container's network namespace (the echo image has no
 * UDP echo of its own); dies with the test, or when `stop` is called.
 */
async function udpEchoIn(t: Cleanup, container: string, port: number): Promise<() => void> {
  const pid = (await run('docker', ['inspect', '--format', '{{.State.Pid}}', container])).trim();
  const server = path.join(ROOT, 'test/fixtures/server.js');
  const child = spawn(
    'nsenter',
    [`--net=/proc/${pid}/ns/net`, process.execPath, server, 'udp-echo', '127.0.0.1', String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const stop = (): void => void child.kill('SIGKILL');
  t.after(stop);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`udp-echo in ${container} exited with ${code}`)));
  });
  return stop;
}

/** How many log lines of the daemon match. */
function count(d: TestDaemon, re: RegExp): number {
  return d
    .log()
    .split('\n')
    .filter((l) => re.test(l)).length;
}

describe('segments follow their containers', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    suite.after(() => removeContainers(`label=${MINE}`));
    d = await startDaemon(suite, { args: ['--dial-timeout', String(DIAL_TIMEOUT)] });
  });

  it('a tail in a container named by docker-ns dials into its new namespace after docker restart', async () => {
    const name = `wh-follow-tail-${RUN}`;
    const first = await echoContainer(name);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.equal(await eventually('the first answer', async () => exchangeWithin(head, 'before')), 'before');
    assert.equal((await segment(d, id)).state, 'ready');

    for (let round = 1; round <= 2; round++) {
      const pidBefore = (await run('docker', ['inspect', '--format', '{{.State.Pid}}', name])).trim();
      await run('docker', ['restart', '-t', '0', name]);
      const pidAfter = (await run('docker', ['inspect', '--format', '{{.State.Pid}}', name])).trim();
      assert.notEqual(pidAfter, pidBefore, 'the container runs in a new process (a new namespace)');
      // the daemon heard of the stop and of the start
      await eventually('the daemon follows the restart', async () =>
        count(d, /container started again: tail dials into its new namespace/) >= round ? true : undefined,
      );
      assert.ok(count(d, /container stopped: segment paused/) >= round, 'the stop was heard of');
      assert.equal(
        await eventually(`traffic after restart ${round}`, async () => {
          const r = await outcome(head, `after ${round}`);
          return r.startsWith('answer:after') ? r : undefined;
        }),
        `answer:after ${round}`,
      );
      const info = await segment(d, id);
      assert.equal(info.state, 'ready');
      assert.equal(info.down, undefined);
    }
    // still the same container, by the same name; nothing was dialed into a dead namespace
    assert.equal((await run('docker', ['inspect', '--format', '{{.Id}}', name])).trim(), first);
    assert.equal(count(d, /NS_NOT_FOUND|does not exist/), 0, d.log());
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('a head in a container is bound again in its new namespace after docker restart', async () => {
    const name = `wh-follow-head-${RUN}`;
    await echoContainer(name);
    const echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
    // the head listens on every address inside the container; the tail is the host's echo
    const c = await d.cli('create', 'url', '0.0.0.0:7000', 'docker-ns', name, 'tail', 'url', `:${echo}`);
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    // (the host's echo answers "bye" after the client's FIN)
    assert.equal(await exchangeWithin(7000, 'in', await ipOf(name)), 'inbye');
    assert.equal((await segment(d, id)).head.container, name);

    await run('docker', ['restart', '-t', '0', name]);
    await eventually('the head is bound again', async () =>
      count(d, /container started again: head bound again in its new namespace/) >= 1 ? true : undefined,
    );
    assert.equal(
      await eventually('traffic to the head after the restart', async () => {
        const r = await outcome(7000, 'again', await ipOf(name));
        return r === 'answer:againbye' ? r : undefined;
      }),
      'answer:againbye',
    );
    const info = await segment(d, id);
    assert.equal(info.state, 'ready');
    assert.ok(info.connections >= 2, 'the counters survived the move');
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it("a chain through a container: the child's head and the parent's tail both follow it", async () => {
    const name = `wh-follow-chain-${RUN}`;
    await echoContainer(name);
    const echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
    // host :head -> (container) 127.0.0.1:7002 -> host echo
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `:${head}`,
      'tail',
      'docker-ns',
      name,
      'url',
      ':7002',
      'chain',
      'tail',
      'url',
      `:${echo}`,
    );
    assert.equal(c.code, 0, c.stderr);
    const parent = parseCreate(c.stdout).id;
    const r = await d.cli('list', '--json');
    const child = (JSON.parse(r.stdout) as SegmentInfo[]).find((x) => x.parent === parent)?.id;
    assert.ok(child, r.stdout);
    assert.equal((await segment(d, child)).head.container, name, "the child's head is in the container");
    assert.equal(await exchangeWithin(head, 'x'), 'xbye');
    await run('docker', ['restart', '-t', '0', name]);
    assert.equal(
      await eventually('traffic through the chain after the restart', async () => {
        const r = await outcome(head, 'y');
        return r === 'answer:ybye' ? r : undefined;
      }),
      'answer:ybye',
    );
    assert.equal((await segment(d, parent)).state, 'ready');
    assert.equal((await segment(d, child)).state, 'ready');
    assert.equal((await d.cli('delete', parent)).code, 0);
  });

  it('while the tail container is stopped: list says so, a connection is dropped, never hangs; docker start brings it back', async () => {
    const name = `wh-follow-stop-${RUN}`;
    await echoContainer(name);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.equal(await eventually('the first answer', async () => exchangeWithin(head, 'up')), 'up');

    await run('docker', ['stop', '-t', '0', name]);
    const down = await eventually('list shows the stopped container', async () => {
      const info = await segment(d, id);
      return info.state === 'container-down' ? info : undefined;
    });
    assert.deepEqual(down.down, [{ end: 'tail', container: name }]);
    assert.match(await listLine(d, id), new RegExp(` container-down .* down=tail:${name}`));

    // refused within the dial timeout: the client sees its connection closed with no answer
    const r = await outcome(head, 'nobody home');
    assert.ok(r === 'answer:' || r === 'error:ECONNRESET', `the connection was ended, not answered: ${r}`);
    await eventually('the reason in the log', async () =>
      count(d, /container wh-follow-stop-\w+ is not running \(waited 2 s for it\)/) >= 1 ? true : undefined,
    );

    // a connection made while it is down, and the container started meanwhile: it goes through
    const waiting = outcome(head, 'patient');
    await sleep(200);
    await run('docker', ['start', name]);
    const w = await waiting;
    assert.ok(
      ['answer:patient', 'answer:', 'error:ECONNRESET'].includes(w),
      `a waiting connection is answered or closed: ${w}`,
    );
    assert.equal(
      await eventually('traffic after docker start', async () => {
        const a = await outcome(head, 'back');
        return a === 'answer:back' ? a : undefined;
      }),
      'answer:back',
    );
    assert.equal((await segment(d, id)).state, 'ready');
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('a container started by docker-run is followed too, and one that was removed stays down', async () => {
    const head = await freePort();
    const c = await d.cli(
      'create',
      'url',
      `:${head}`,
      'tail',
      'docker-run',
      `-l ${MINE} ${ECHO_IMAGE} echo-server 9001`,
      'url',
      ':9001',
    );
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const [container] = (await segment(d, id)).containers;
    assert.ok(container, 'the segment lists its container');
    assert.equal(await eventually('the first answer', async () => exchangeWithin(head, 'one')), 'one');
    await run('docker', ['restart', '-t', '0', container]);
    assert.equal(
      await eventually('traffic after restart', async () => {
        const a = await outcome(head, 'two');
        return a === 'answer:two' ? a : undefined;
      }),
      'answer:two',
    );
    // removed behind the daemon's back: down for good, connections dropped, the daemon goes on
    await run('docker', ['rm', '-f', container]);
    const info = await eventually('list shows the removed container', async () => {
      const s = await segment(d, id);
      return s.state === 'container-down' ? s : undefined;
    });
    assert.equal(info.down?.[0].end, 'tail');
    assert.equal(info.down?.[0].container, container);
    const r = await outcome(head, 'gone');
    assert.ok(r === 'answer:' || r === 'error:ECONNRESET', r);
    assert.equal((await d.cli('delete', id)).code, 0, 'delete works on a segment whose container is gone');
    assert.equal((await d.cli('ping')).code, 0);
  });

  it('UDP: a head and a tail in a container follow it across docker restart', async () => {
    const name = `wh-follow-udp-${RUN}`;
    await echoContainer(name);
    // a tail in the container (its echo runs in the container's namespace) ...
    let stopEcho = await udpEchoIn(suite, name, 9002);
    const head = await freePort();
    const t = await d.cli('create', 'url', `udp://:${head}`, 'tail', 'docker-ns', name, 'url', ':9002');
    assert.equal(t.code, 0, t.stderr);
    // ... and a head in it, on every address there, whose tail is the host's UDP echo
    const echo = await freePort();
    await startService(suite, null, 'udp-echo', '127.0.0.1', echo);
    const h = await d.cli(
      'create',
      'url',
      'udp://0.0.0.0:7001',
      'docker-ns',
      name,
      'tail',
      'url',
      `:${echo}`,
    );
    assert.equal(h.code, 0, h.stderr);
    assert.equal(await udpExchange(head, 'tail before'), 'tail before');
    assert.equal(await udpExchange(7001, 'head before', await ipOf(name)), 'head before');

    await run('docker', ['restart', '-t', '0', name]);
    stopEcho(); // it held the old namespace
    stopEcho = await udpEchoIn(suite, name, 9002);
    assert.equal(
      await eventually('datagrams through the tail after the restart', async () =>
        (await udpExchange(head, 'tail after', '127.0.0.1', 1000)) === 'tail after' ? 'ok' : undefined,
      ),
      'ok',
    );
    assert.equal(
      await eventually('datagrams to the head after the restart', async () =>
        (await udpExchange(7001, 'head after', await ipOf(name), 1000)) === 'head after' ? 'ok' : undefined,
      ),
      'ok',
    );
    for (const c of [t, h]) {
      const info = await segment(d, parseCreate(c.stdout).id);
      assert.equal(info.state, 'ready');
      assert.equal((await d.cli('delete', info.id)).code, 0);
    }
    stopEcho();
  });

  it('a tail named by name follows a new container made under that name', async () => {
    const name = `wh-follow-name-${RUN}`;
    const first = await echoContainer(name);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    assert.equal(await eventually('the first answer', async () => exchangeWithin(head, 'old')), 'old');
    await run('docker', ['rm', '-f', first]);
    await eventually('list shows it down', async () =>
      (await segment(d, id)).state === 'container-down' ? true : undefined,
    );
    const second = await echoContainer(name);
    assert.notEqual(second, first);
    assert.equal(
      await eventually('traffic to the new container', async () => {
        const a = await outcome(head, 'new');
        return a === 'answer:new' ? a : undefined;
      }),
      'answer:new',
    );
    assert.equal((await segment(d, id)).state, 'ready');
    assert.equal((await d.cli('delete', id)).code, 0);
  });
});
