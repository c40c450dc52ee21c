/**
 * Cold start: the first byte through a socket-activated container (docker-run behind a
 * trigger), against `docker run` plus polling the service in the container's namespace; and
 * the same after idle stopped the container (`idle`, scale to zero: the next connection
 * starts the same container again), against `docker start` plus polling; and after idle
 * paused it (`idle-action pause`: the next connection thaws it), this build only. And `ready`
 * (this build only): the first ready answer from a service that listens at once, without
 * `ready` and with each of its modes, in the same turns (readyScene below).
 * Needs a Docker engine (started as the test runner starts it) and the test echo image
 * (built by the test helpers in a full run; a quick run skips the scene when it is missing).
 * With `--beside`, the build beside's daemon is timed after this build's, in the same turns.
 */
import * as net from 'node:net';
import { connectTcp } from '../../src/netns';
import { ECHO_IMAGE, READY_IMAGE, ensureDockerd, ensureTestImages, run } from '../../test/helpers/docker';
import type { Config } from '../config';
import { type Build, type Daemon, daemon, missing, named, onCleanup, port, sh } from '../env';

export interface ColdStart {
  wormholeMs: number[];
  byHandMs: number[];
  /** The container stopped by idle: the next connection to its first byte back. */
  afterIdleMs: number[];
  /** `docker start` of a stopped container, then polled until it answers. */
  byHandStartMs: number[];
  /** The container paused by idle (`idle-action pause`): the next connection to its first byte back. */
  afterPauseMs: number[];
  /**
   * `trigger docker-run` of the test image wormhole-test/ready, ready at once (`slow-ready 9001
   * 0`; its HEALTHCHECK every second): connect to its first "ready" answer, a connection closed
   * without a byte tried again (what a client must do without `ready`): without `ready`
   * (`none`) and with each mode.
   */
  readyMs?: Record<ReadyHow, number[]>;
  /** wormholeMs and afterIdleMs of the build beside (`--beside`), measured in the same turns. */
  beside?: { path: string; wormholeMs: number[]; afterIdleMs: number[] };
}

/** The cold-start samples, or the one-line reason the scene was skipped. */
export async function coldStart(cfg: Config, builds: Build[]): Promise<ColdStart | string> {
  const gone = missing({ dockerd: 'docker.io', docker: 'docker.io' });
  if (gone) return gone;
  try {
    await ensureDockerd();
    // stopDockerdIfStarted() runs in run.ts after every process of ours has stopped
  } catch (err) {
    return `no Docker engine: ${(err as Error).message.split('\n')[0]}`;
  }
  const have = await run('docker', ['image', 'inspect', ECHO_IMAGE, READY_IMAGE]).then(
    () => true,
    () => false,
  );
  if (!have && cfg.quick)
    return `image ${ECHO_IMAGE} or ${READY_IMAGE} is not built (npm run images builds it, as do npm test and a full bench)`;
  if (!have) {
    console.error(`# building the test images (about a minute the first time)`);
    try {
      await ensureTestImages();
    } catch (err) {
      return `the test images could not be built: ${(err as Error).message.split('\n')[0]}`;
    }
  }

  const whs = builds.map((b) => ({ b, d: daemon(b), trigger: [] as number[], afterIdle: [] as number[] }));
  const out: ColdStart = {
    wormholeMs: [],
    byHandMs: [],
    afterIdleMs: [],
    byHandStartMs: [],
    afterPauseMs: [],
    readyMs: { none: [], health: [], banner: [], exec: [] },
  };
  for (let i = 0; i < (cfg.quick ? 1 : 3); i++) {
    for (const w of whs) w.trigger.push(await throughTrigger(w.d));

    // by hand: docker run, then try the service inside the container until it answers
    const t0 = process.hrtime.bigint();
    const cid = sh('docker', 'run', '-d', ECHO_IMAGE, 'echo-server', '9001').trim();
    onCleanup(() => sh('docker', 'rm', '-f', cid)); // if the wait below fails
    await untilAnswers(sh('docker', 'inspect', '-f', '{{.State.Pid}}', cid).trim());
    out.byHandMs.push(Number(process.hrtime.bigint() - t0) / 1e6);

    // by hand after a stop: docker start, then the same polling
    sh('docker', 'stop', '-t', '1', cid);
    const t1 = process.hrtime.bigint();
    sh('docker', 'start', cid);
    await untilAnswers(sh('docker', 'inspect', '-f', '{{.State.Pid}}', cid).trim());
    out.byHandStartMs.push(Number(process.hrtime.bigint() - t1) / 1e6);
    sh('docker', 'rm', '-f', cid);

    for (const w of whs) w.afterIdle.push(await afterIdle(w.d));
    out.afterPauseMs.push(await afterIdle(whs[0].d, 'pause'));
    // each turn in another order (none, health, banner, exec; then shifted by one)
    for (let k = 0; k < READY_HOWS.length; k++) {
      const how = READY_HOWS[(i + k) % READY_HOWS.length];
      out.readyMs?.[how].push(await throughReady(whs[0].d, how));
    }
  }
  [out.wormholeMs, out.afterIdleMs] = [whs[0].trigger, whs[0].afterIdle];
  const other = whs[1];
  if (other)
    out.beside = {
      path: named(other.b, 'wormhole'),
      wormholeMs: other.trigger,
      afterIdleMs: other.afterIdle,
    };
  return out;
}

/** A segment with a docker-run trigger: connect to first byte back (ms), the segment deleted after. */
async function throughTrigger(wh: Daemon): Promise<number> {
  const p = port();
  const id = wh
    .cli('create', 'url', `:${p}`, 'trigger', 'docker-run', `${ECHO_IMAGE} echo-server 9001`, 'url', ':9001')
    .split(' ')[0];
  const ms = await timedFirstByte(p);
  wh.cli('delete', id);
  return ms;
}

/** `ready`'s modes, and none (today's: dialed as soon as the port accepts). */
const READY_HOWS = ['none', 'health', 'banner', 'exec'] as const;
export type ReadyHow = (typeof READY_HOWS)[number];

/** A trigger running the ready image with `ready HOW`: connect to the first "ready" answer (ms). */
async function throughReady(wh: Daemon, how: ReadyHow): Promise<number> {
  const p = port();
  const words = {
    none: [],
    health: ['ready', 'health'],
    banner: ['ready', 'banner'],
    exec: ['ready', 'exec', 'test -f /tmp/ready'],
  }[how];
  const image = `--stop-timeout 1 ${READY_IMAGE} slow-ready 9001 0`;
  const id = wh
    .cli('create', 'url', `:${p}`, 'trigger', 'docker-run', image, 'url', ':9001', ...words)
    .split(' ')[0];
  const started = process.hrtime.bigint();
  const deadline = Date.now() + 30_000;
  // (a connection closed without a byte: the service was not ready; a client tries again)
  while (
    !(await firstByte(async () => net.connect({ host: '127.0.0.1', port: p }), 30_000).then(
      () => true,
      () => false,
    ))
  )
    if (Date.now() > deadline) throw new Error(`no ready answer within 30 s (${how})`);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  wh.cli('delete', id);
  return ms;
}

/**
 * wormhole after idle: a first connection runs the container, idle stops (or pauses) it (1 s
 * unused), and the next connection, timed, starts (or thaws) it again: connect to first byte
 * back (ms).
 */
async function afterIdle(wh: Daemon, action: 'stop' | 'pause' = 'stop'): Promise<number> {
  const q = port();
  const idleId = wh
    .cli(
      'create',
      'url',
      `:${q}`,
      'idle',
      '1s',
      ...(action === 'pause' ? ['idle-action', 'pause'] : []),
      'trigger',
      'docker-run',
      `--stop-timeout 1 ${ECHO_IMAGE} echo-server 9001`,
      'url',
      ':9001',
    )
    .split(' ')[0];
  await firstByte(async () => net.connect({ host: '127.0.0.1', port: q }), 30_000);
  await releasedByIdle(wh, idleId, action === 'pause' ? 'paused' : 'exited');
  const ms = await timedFirstByte(q);
  wh.cli('delete', idleId);
  return ms;
}

/** Connect to 127.0.0.1:p, send a byte: ms until one comes back (30 s at most). */
async function timedFirstByte(p: number): Promise<number> {
  const started = process.hrtime.bigint();
  await firstByte(async () => net.connect({ host: '127.0.0.1', port: p }), 30_000);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Poll the service in a container's namespace until it answers (30 s at most). */
async function untilAnswers(pid: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (
    !(await firstByte(() => connectTcp(`/proc/${pid}/ns/net`, '127.0.0.1', 9001), 1000).then(
      () => true,
      () => false,
    ))
  ) {
    if (Date.now() > deadline) throw new Error(`the echo container did not answer within 30 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Wait until `list` shows the segment idle and its container `status` (30 s at most). */
async function releasedByIdle(
  wh: { cli(...a: string[]): string },
  id: string,
  status: string,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const seg = (
      JSON.parse(wh.cli('list', '--json')) as { id: string; state: string; containers: string[] }[]
    ).find((s) => s.id === id);
    const cid = seg?.containers[0];
    if (
      seg?.state === 'idle' &&
      cid &&
      sh('docker', 'inspect', '-f', '{{.State.Status}}', cid).trim() === status
    )
      return;
    if (Date.now() > deadline) throw new Error(`segment ${id} did not idle within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Connect, send a byte, resolve when one comes back; reject on error or after `ms`. */
function firstByte(connect: () => Promise<net.Socket>, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let s: net.Socket | undefined;
    const timer = setTimeout(() => {
      s?.destroy();
      reject(new Error('no answer'));
    }, ms);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    connect().then((sock) => {
      s = sock;
      s.write('x'); // queued until connected
      s.once('data', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve();
      });
      s.once('error', fail);
      // (closed without a byte: no answer, at once rather than at `ms`; after one, a no-op)
      s.once('close', () => fail(new Error('closed without a byte')));
    }, fail);
  });
}
