/**
 * Several tails: round-robin spread, failover when a backend dies (no client error), health
 * checks keeping connections off a dead tail and back on it when it returns, least-conn,
 * source affinity, UDP sessions spread and kept on their tail, and tails found by a Docker
 * label as containers start and stop. Each backend answers with its own port (or name), so
 * the test sees which tail a connection reached.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SegmentInfo } from '../../src/api/protocol';
import { ROOT, type TestDaemon, startDaemon } from '../helpers/daemon';
import { forEachMover, moverOpts } from '../helpers/movers';
import { ECHO_IMAGE, ensureDockerd, ensureTestImages, run } from '../helpers/docker';
import { type Cleanup, suiteCleanup } from '../helpers/netns';
import { freePort, parseCreate } from '../helpers/services';
import { until } from '../helpers/wait';

const SERVER = path.join(ROOT, 'test/fixtures/server.js');

/** A backend answering its port (tcp-port / udp-port); kill() stops it (resolves once it is gone). */
async function backend(
  t: Cleanup,
  mode: 'tcp-port' | 'udp-port',
  port: number,
): Promise<{ kill(): Promise<void> }> {
  let child: ChildProcess | undefined;
  const start = (): Promise<void> =>
    new Promise((resolve, reject) => {
      child = spawn(process.execPath, [SERVER, mode, '127.0.0.1', String(port)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`${mode} exited with ${code}`)));
    });
  await start();
  t.after(() => child?.kill('SIGKILL'));
  return {
    kill: () =>
      new Promise<void>((resolve) => {
        child?.once('exit', () => resolve());
        child?.kill('SIGKILL');
      }),
  };
}

/** Connect, read what the backend says, close: which tail answered ('' if none). */
function whoAnswers(port: number, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    let text = '';
    c.on('data', (d: Buffer) => {
      text += d.toString();
      c.end();
    });
    c.on('end', () => resolve(text));
    c.on('error', reject);
  });
}

/** Hold a connection open once its backend has answered; its answer and the socket. */
function hold(port: number): Promise<{ who: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1' });
    c.once('data', (d: Buffer) => resolve({ who: d.toString(), socket: c }));
    c.on('error', reject);
  });
}

function count(answers: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) out[a] = (out[a] ?? 0) + 1;
  return out;
}

async function segment(d: TestDaemon, id: string): Promise<SegmentInfo> {
  const all = JSON.parse((await d.cli('list', '--json')).stdout) as SegmentInfo[];
  return all.find((s) => s.id === id)!;
}

forEachMover('several tails', (mover) => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon(suite, moverOpts(mover, { args: ['--dial-timeout', '2'] }));
  });

  it('spreads round-robin, and a dead backend costs no client an error', async (t) => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const backends = await Promise.all(ports.map((p) => backend(t, 'tcp-port', p)));
    const c = await d.cli(
      'create',
      'id',
      'rr',
      'url',
      ':0',
      'tail',
      'url',
      `:${ports[0]}`,
      'also',
      'url',
      `:${ports[1]}`,
      'also',
      'url',
      `:${ports[2]}`,
      'health',
      'off',
    );
    assert.equal(c.code, 0, c.stderr);
    const head = parseCreate(c.stdout).port;
    const first: string[] = [];
    for (let i = 0; i < 9; i++) first.push(await whoAnswers(head));
    assert.deepEqual(count(first), { [ports[0]]: 3, [ports[1]]: 3, [ports[2]]: 3 });

    await backends[1].kill();
    const after: string[] = [];
    for (let i = 0; i < 8; i++) after.push(await whoAnswers(head));
    assert.deepEqual(
      count(after),
      { [ports[0]]: 4, [ports[2]]: 4 },
      'every client answered, by the live two',
    );
    const s = await segment(d, 'rr');
    assert.ok((s.traffic?.dialFailures ?? 0) > 0, 'the failed dials are counted');
    assert.deepEqual(
      s.tails?.map((x) => x.url),
      ports.map((p) => `tcp://127.0.0.1:${p}`),
    );
    assert.equal(s.tails?.[1].health, 'down');

    // it comes back, and gets its share again
    await backend(t, 'tcp-port', ports[1]);
    const back: string[] = [];
    for (let i = 0; i < 9; i++) back.push(await whoAnswers(head));
    assert.ok(
      (count(back)[ports[1]] ?? 0) >= 2,
      `the returned backend is used again: ${JSON.stringify(count(back))}`,
    );
  });

  it('keeps new connections off a tail that fails its health check, until it passes', async (t) => {
    const ports = [await freePort(), await freePort()];
    const backends = await Promise.all(ports.map((p) => backend(t, 'tcp-port', p)));
    const c = await d.cli(
      'create',
      'id',
      'hc',
      'url',
      ':0',
      'tail',
      'url',
      `:${ports[0]}`,
      'also',
      'url',
      `:${ports[1]}`,
      'health',
      '0.3s',
    );
    const head = parseCreate(c.stdout).port;
    await backends[0].kill();
    await until(
      'the dead tail is found down',
      () => segment(d, 'hc'),
      (s) => s.tails?.[0].health === 'down',
    );
    const failedBefore = (await segment(d, 'hc')).traffic?.dialFailures ?? 0;
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(await whoAnswers(head));
    assert.deepEqual(count(answers), { [ports[1]]: 6 });
    assert.equal(
      (await segment(d, 'hc')).traffic?.dialFailures,
      failedBefore,
      'no dial went to the unhealthy tail',
    );
    assert.match((await d.cli('list')).stdout, /hc .*tail down/);
    await backend(t, 'tcp-port', ports[0]);
    await until(
      'the tail passes again',
      () => segment(d, 'hc'),
      (s) => s.tails?.[0].health === 'up',
    );
    const again: string[] = [];
    for (let i = 0; i < 4; i++) again.push(await whoAnswers(head));
    assert.deepEqual(count(again), { [ports[0]]: 2, [ports[1]]: 2 });
  });

  it('least-conn sends each new connection to the tail with the fewest open', async (t) => {
    const ports = [await freePort(), await freePort()];
    await Promise.all(ports.map((p) => backend(t, 'tcp-port', p)));
    const c = await d.cli(
      'create',
      'id',
      'lc',
      'url',
      ':0',
      'tail',
      'url',
      `:${ports[0]}`,
      'also',
      'url',
      `:${ports[1]}`,
      'balance',
      'least-conn',
    );
    const head = parseCreate(c.stdout).port;
    // three held on whichever tails they reach, then two short ones: they go to the emptier
    const held = [await hold(head), await hold(head), await hold(head)];
    t.after(() => held.forEach((h) => h.socket.destroy()));
    const heldOn = count(held.map((h) => h.who));
    const emptier = Number(heldOn[ports[0]] ?? 0) < Number(heldOn[ports[1]] ?? 0) ? ports[0] : ports[1];
    assert.deepEqual(Object.values(heldOn).sort(), [1, 2], 'held ones spread by open count');
    assert.equal(await whoAnswers(head), String(emptier));
    const s = await segment(d, 'lc');
    assert.deepEqual(s.tails?.map((x) => x.open).sort(), [1, 2]);
  });

  it('source keeps a client address on one tail', async (t) => {
    const ports = [await freePort(), await freePort(), await freePort()];
    await Promise.all(ports.map((p) => backend(t, 'tcp-port', p)));
    const c = await d.cli(
      'create',
      'id',
      'sa',
      'url',
      ':0',
      'tail',
      'url',
      `:${ports[0]}`,
      'also',
      'url',
      `:${ports[1]}`,
      'also',
      'url',
      `:${ports[2]}`,
      'balance',
      'source',
    );
    const head = parseCreate(c.stdout).port;
    for (const client of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const answers: string[] = [];
      for (let i = 0; i < 5; i++) answers.push(await whoAnswers(head, client));
      assert.equal(new Set(answers).size, 1, `${client} always reaches one tail: ${answers.join(' ')}`);
    }
  });

  it('spreads UDP sessions, and a session stays on its tail', async (t) => {
    const ports = [await freePort(), await freePort()];
    await Promise.all(ports.map((p) => backend(t, 'udp-port', p)));
    const c = await d.cli(
      'create',
      'id',
      'udp',
      'url',
      'udp://:0',
      'tail',
      'url',
      `:${ports[0]}`,
      'also',
      'url',
      `:${ports[1]}`,
    );
    const head = parseCreate(c.stdout).port;
    const sessions: string[] = [];
    for (let i = 0; i < 4; i++) {
      const s = dgram.createSocket('udp4');
      const answers: string[] = [];
      for (let k = 0; k < 3; k++) {
        const got = new Promise<string>((r) => s.once('message', (m) => r(m.toString())));
        s.send('x', head, '127.0.0.1');
        answers.push(await got);
      }
      s.close();
      assert.equal(new Set(answers).size, 1, 'one session, one tail');
      sessions.push(answers[0]);
    }
    assert.deepEqual(count(sessions), { [ports[0]]: 2, [ports[1]]: 2 });
  });
});

describe('tails by Docker label', () => {
  const suite = suiteCleanup(after);
  before(async () => {
    await ensureDockerd();
    await ensureTestImages();
  });

  it('follows the containers carrying the label as they start and stop', async () => {
    const d = await startDaemon(suite, { args: ['--dial-timeout', '3'] });
    const label = `wormhole-test-lb=${process.pid}`;
    const names = [`wh-lb-a-${process.pid}`, `wh-lb-b-${process.pid}`];
    suite.after(() => run('docker', ['rm', '-f', ...names]).catch(() => undefined));
    // each container answers with its own name
    const start = (name: string): Promise<string> =>
      run('docker', [
        'run',
        '-d',
        '--name',
        name,
        '--hostname',
        name,
        '--label',
        label,
        ECHO_IMAGE,
        'nc',
        '-ll',
        '-p',
        '9001',
        '-e',
        'hostname',
      ]);
    await start(names[0]);
    const c = await d.cli(
      'create',
      'id',
      'lbl',
      'url',
      ':0',
      'tail',
      'url',
      ':9001',
      'docker-label',
      label,
      'health',
      '0.5s',
    );
    assert.equal(c.code, 0, c.stderr);
    const head = parseCreate(c.stdout).port;
    const ask = async (): Promise<string> => (await whoAnswers(head)).trim();
    assert.equal(await until('the first container answers', ask, (a) => a === names[0]), names[0]);

    await start(names[1]);
    await until(
      'the second container is a tail',
      () => segment(d, 'lbl'),
      (s) => s.tails?.length === 2,
    );
    const both: string[] = [];
    for (let i = 0; i < 6; i++) both.push(await ask());
    assert.deepEqual(count(both), { [names[0]]: 3, [names[1]]: 3 });

    await run('docker', ['stop', '-t', '0', names[0]]);
    await until(
      'the stopped one leaves',
      () => segment(d, 'lbl'),
      (s) => s.tails?.length === 1,
    );
    const left: string[] = [];
    for (let i = 0; i < 4; i++) left.push(await ask());
    assert.deepEqual(count(left), { [names[1]]: 4 }, 'every client answered by the one left');
  });
});
