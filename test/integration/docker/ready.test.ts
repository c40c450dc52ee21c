/**
 * `ready health|banner|exec` (SPEC.md, "Smarter activation") against a real dockerd, with a
 * service that listens at once but is ready only 3 s later (test/fixtures/images/ready: until
 * then each connection is accepted and closed without a byte; then it answers "ready"): with
 * each mode, 5 clients that connect at once all get "ready", none an empty answer; `list`
 * says the tail is waiting for ready meanwhile, and why. A container without a HEALTHCHECK
 * fails the gate at once (clients refused, list says why); a service never ready within the
 * dial timeout gives the clients what a dial timeout gives; a plan's dial-timeout holds them
 * longer; the container restarted is checked again. The bad inputs are refused at create.
 *
 * No timing is asserted: everything is polled with a deadline far above what it needs.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, listed, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, READY_IMAGE, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { freePort, parseCreate } from '../../helpers/services';
import { eventually } from '../../helpers/wait';

/** The service: ready 3 s after it starts; stopped within a second (sh as PID 1 ignores SIGTERM). */
const READY_RUN = `--stop-timeout 1 ${READY_IMAGE} slow-ready 9001 3`;

/** A segment as list --json shows it. */
const segment = listed;

/** Connect, and read everything until the other side closes (or resets: '' then, with why). */
function answer(port: number, ms = 60_000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ port, host: '127.0.0.1' });
    c.setTimeout(ms, () => c.destroy(new Error('no answer')));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString().trim()));
    c.on('error', (err) => resolve(`error: ${err.message}`));
  });
}

/**
 * `create url :HEAD [BEFORE...] trigger docker-run RUN url :9001 READY...` on `d`, which must
 * succeed: the new segment's id.
 */
async function readyTrigger(
  d: TestDaemon,
  head: number,
  before: string[],
  run: string,
  ready: string[],
): Promise<string> {
  const c = await d.cli(
    'create',
    'url',
    `:${head}`,
    ...before,
    'trigger',
    'docker-run',
    run,
    'url',
    ':9001',
    ...ready,
  );
  assert.equal(c.code, 0, c.stderr);
  return parseCreate(c.stdout).id;
}

/** The list line of a segment. */
async function listLine(d: TestDaemon, id: string): Promise<string> {
  return (await d.cli('list')).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
}

describe('ready: clients wait until the tail is ready', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite, { args: ['--dial-timeout', '30'] });
  });

  const modes: [string, string[], RegExp][] = [
    ['health', ['ready', 'health'], /health: (starting|checking)/],
    ['banner', ['ready', 'banner'], /banner: (no bytes yet|checking)/],
    ['exec', ['ready', 'exec', 'test -f /tmp/ready'], /exec: (exit 1|checking)/],
  ];
  for (const [mode, words, why] of modes) {
    it(`${mode}: 5 clients at once all get the ready answer; list shows waiting for ready meanwhile`, async () => {
      const head = await freePort();
      const id = await readyTrigger(d, head, [], READY_RUN, words);
      const answers = Promise.all(Array.from({ length: 5 }, () => answer(head)));
      const waiting = await eventually('list shows the tail waiting for ready', async () => {
        const s = await segment(d, id);
        return s.state === 'not-ready' && s.ready?.state === 'waiting' ? s : undefined;
      });
      assert.equal(waiting.ready?.mode, mode);
      assert.match(waiting.ready?.why ?? '', why);
      assert.match(await listLine(d, id), / not-ready .*waiting for ready \(/);
      assert.deepEqual(await answers, ['ready', 'ready', 'ready', 'ready', 'ready']);
      const s = await segment(d, id);
      assert.equal(s.state, 'ready');
      assert.deepEqual(s.ready, { mode, state: 'ready' });
      assert.match(d.log(), new RegExp(`"segment":"${id}".*"mode":"${mode}".*tail ready`));
      assert.equal((await d.cli('delete', id)).code, 0);
    });
  }

  it('health on a container without a HEALTHCHECK: clients refused at once, list says why', async () => {
    const head = await freePort();
    const noCheck = `--stop-timeout 1 ${ECHO_IMAGE} echo-server 9001`;
    const id = await readyTrigger(d, head, [], noCheck, ['ready', 'health']);
    // (the first connection runs the trigger; it is refused, not held for 30 s)
    assert.match(await answer(head), /^(|error: .*)$/);
    const s = await eventually('the gate failed', async () => {
      const x = await segment(d, id);
      return x.ready?.state === 'failed' ? x : undefined;
    });
    assert.match(s.ready?.why ?? '', /health: container \S+ has no HEALTHCHECK/);
    assert.match(await listLine(d, id), /never ready \(health: container \S+ has no HEALTHCHECK/);
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('a tail never ready within the dial timeout: clients closed as at a dial timeout; dial-timeout in the plan holds them longer', async () => {
    const head = await freePort();
    // ready only after 6 s: past a 2 s dial timeout, within a 60 s one
    const slow = `--stop-timeout 1 ${READY_IMAGE} slow-ready 9001 6`;
    const short = await readyTrigger(d, head, ['dial-timeout', '2s'], slow, ['ready', 'banner']);
    assert.equal(await answer(head), '', 'closed without a byte');
    assert.match(d.log(), /the tail was not ready within 2 s \(banner: /);
    assert.equal((await d.cli('delete', short)).code, 0);

    const head2 = await freePort();
    const long = await readyTrigger(d, head2, ['dial-timeout', '60s'], slow, [
      'ready',
      'exec',
      'test -f /tmp/ready',
    ]);
    assert.deepEqual(await Promise.all([answer(head2), answer(head2)]), ['ready', 'ready']);
    assert.equal((await d.cli('delete', long)).code, 0);
  });

  it('checks again when the tail container restarts (docker restart): waiting for ready, then ready', async () => {
    const head = await freePort();
    const name = `wh-ready-${head}`;
    await run('docker', ['run', '-d', '--name', name, '--stop-timeout', '1', READY_IMAGE]);
    suite.after(() => run('docker', ['rm', '-f', name]).catch(() => undefined));
    const tail = ['tail', 'docker-ns', name, 'url', ':9001'];
    const { id } = await d.create('url', `:${head}`, ...tail, 'ready', 'exec', 'test -f /tmp/ready');
    assert.equal(await answer(head), 'ready');
    await run('docker', ['restart', name]);
    // (once the segment has heard of the restart: before, a connection could still go to the
    // old namespace, which is the following's business, not ready's)
    const s = await eventually('list shows the restarted tail waiting for ready', async () => {
      const x = await segment(d, id);
      return x.state === 'not-ready' ? x : undefined;
    });
    assert.match(s.ready?.why ?? '', /exec: /);
    const answers = Promise.all(Array.from({ length: 5 }, () => answer(head)));
    assert.deepEqual(await answers, ['ready', 'ready', 'ready', 'ready', 'ready']);
    assert.equal((await segment(d, id)).state, 'ready');
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('checks again after idle paused and the next connection thawed the container', async () => {
    const head = await freePort();
    const pause = ['idle', '2s', 'idle-action', 'pause'];
    const id = await readyTrigger(d, head, pause, READY_RUN, ['ready', 'exec', 'test -f /tmp/ready']);
    assert.equal(await answer(head), 'ready');
    const idle = await eventually('idle paused it', async () => {
      const s = await segment(d, id);
      return s.state === 'idle' ? s : undefined;
    });
    assert.equal(idle.ready?.state, 'waiting', 'not ready while paused');
    assert.match(idle.ready?.why ?? '', /idle/);
    assert.deepEqual(
      await Promise.all(Array.from({ length: 5 }, () => answer(head))),
      Array(5).fill('ready'),
    );
    const s = await segment(d, id);
    assert.deepEqual([s.state, s.ready?.state, s.trigger?.runs], ['ready', 'ready', 2]);
    assert.equal(
      d.log().match(new RegExp(`"segment":"${id}".*tail ready`, 'g'))?.length,
      2,
      'checked at each run',
    );
    assert.equal((await d.cli('delete', id)).code, 0);
  });

  it('refuses bad input at create in one line, making nothing', async () => {
    const bad: [string[], RegExp][] = [
      [['url', ':1', 'tail', 'url', ':2', 'ready', 'health'], /ready health asks the tail's container/],
      [['url', ':1', 'tail', 'url', ':2', 'ready', 'exec', 'true'], /ready exec asks the tail's container/],
      [
        ['url', ':1', 'trigger', 'docker-run', READY_RUN, 'ready', 'soon'],
        /ready "soon": expected health, banner, exec/,
      ],
      [['url', ':1', 'trigger', 'docker-run', READY_RUN, 'ready', 'exec'], /ready exec needs a command/],
    ];
    for (const [words, msg] of bad) {
      const r = await d.cli('create', ...words);
      assert.notEqual(r.code, 0, words.join(' '));
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.equal((await d.cli('list', '--json')).stdout.trim(), '[]', 'nothing made');
  });
});
