/**
 * docker-ns and docker-run against a real dockerd: socket-activated containers, cleanup on
 * delete, stop and crash, and bad input.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { callOnce } from '../../../src/client';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, containers, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { exchange, freePort, parseCreate } from '../../helpers/services';

const ECHO_RUN = `${ECHO_IMAGE} echo-server 9001`;

function owner(d: TestDaemon): string {
  return `label=wormhole.owner=${fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim()}`;
}

describe('docker-run and docker-ns', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite);
  });

  it('starts one container for 50 simultaneous first connections and answers them all', async () => {
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'trigger', 'docker-run', ECHO_RUN, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(await containers(owner(d)), [], 'nothing runs before the first connection');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => exchange(head, `n${i}`)));
    assert.deepEqual(
      answers,
      Array.from({ length: 50 }, (_, i) => `n${i}`),
    );
    const running = await containers(owner(d));
    assert.equal(running.length, 1, 'one container');
    assert.equal((await d.cli('delete', parseCreate(c.stdout).id)).code, 0);
    assert.deepEqual(await containers(owner(d)), [], 'delete removed the container');
  });

  it('puts a head in a running container found by name, short id or full id', async () => {
    const name = `wh-echo-${process.pid}`;
    const id = (await run('docker', ['run', '-d', '--name', name, ECHO_IMAGE])).trim();
    suite.after(() => run('docker', ['rm', '-f', id]).catch(() => undefined));
    for (const ref of [name, id.slice(0, 12), id]) {
      const head = await freePort();
      const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-ns', ref, 'url', ':9001');
      assert.equal(c.code, 0, c.stderr);
      assert.equal(await exchange(head, ref), ref);
      await d.cli('delete', parseCreate(c.stdout).id);
    }
    // docker-ns followed by an action word: the host's own namespace
    const c = await d.cli('create', 'url', ':5999', 'docker-ns', 'tail', 'docker-ns', name, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(await exchange(5999, 'host'), 'host');
  });

  it('refuses bad input in one line, running nothing and changing nothing', async () => {
    // (the ids: the text's LAST column moves with the clock)
    const ids = async (): Promise<string[]> =>
      (JSON.parse((await d.cli('list', '--json')).stdout) as { id: string }[]).map((x) => x.id);
    const before = await ids();
    const marker = `/tmp/wh-pwned-${process.pid}`;
    const cases: [string[], RegExp][] = [
      [['docker-ns', 'no-such-container', 'url', ':9001'], /container no-such-container does not exist/],
      [['docker-run', `--privileged ${ECHO_IMAGE}`], /option --privileged is not supported/],
      [
        ['docker-run', 'wormhole-test/no-such-image'],
        /image wormhole-test\/no-such-image is not here and cannot be pulled/,
      ],
      [['docker-run', `${ECHO_IMAGE};touch ${marker}`], /not a valid image name/],
      [['docker-run', `${ECHO_IMAGE} $(touch ${marker})`], /executable file not found|no such file/i],
    ];
    for (const [tail, msg] of cases) {
      const r = await d.cli('create', 'url', `:${await freePort()}`, 'tail', ...tail);
      assert.equal(r.code, 1, `${tail.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    // the CLI refuses an empty container name; a client that skips the CLI's check gets the
    // daemon's refusal, and the daemon goes on
    const empty = await d.cli('create', 'url', ':5998', 'tail', 'docker-ns', '');
    assert.equal(empty.code, 2);
    await assert.rejects(
      callOnce({ kind: 'unix', path: d.socket }, null, 'create', {
        actions: [
          { verb: 'url', args: [':5998'] },
          { verb: 'tail', args: [] },
          { verb: 'docker-ns', args: [''] },
        ],
      }),
      /is not a container id or name/,
    );
    assert.equal((await d.cli('ping')).code, 0);
    assert.ok(!fs.existsSync(marker), 'nothing ran on the host');
    assert.deepEqual(await ids(), before, 'no segment was left');
    assert.deepEqual(await containers(owner(d)), [], 'no container was left');
    // a trigger's image is pulled at create time, so a missing one fails create, not the first connection
    const t = await d.cli(
      'create',
      'url',
      `:${await freePort()}`,
      'trigger',
      'docker-run',
      'wormhole-test/missing',
    );
    assert.equal(t.code, 1);
    assert.match(t.stderr, /cannot be pulled/);
  });
});

describe('containers outlive nothing', () => {
  const suite = suiteCleanup(after);

  it('removes its containers when the daemon stops', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    assert.equal(
      (await d.cli('create', 'url', `:${head}`, 'tail', 'docker-run', ECHO_RUN, 'url', ':9001')).code,
      0,
    );
    assert.equal((await containers(owner(d))).length, 1);
    assert.equal((await d.stop()).code, 0);
    assert.deepEqual(await containers(owner(d)), []);
  });

  it('after SIGKILL, removes the orphan and runs the segment again: one container, not two', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    assert.equal(
      (await d.cli('create', 'url', `:${head}`, 'tail', 'docker-run', ECHO_RUN, 'url', ':9001')).code,
      0,
    );
    await d.stop('SIGKILL');
    const orphans = await containers(owner(d));
    assert.equal(orphans.length, 1, 'the orphan is there');
    const again = await startDaemon(suite, { dir: d.dir });
    const now = await containers(owner(again));
    assert.equal(now.length, 1, 'one container for the one segment');
    assert.notEqual(now[0], orphans[0], 'the orphan was removed, the segment ran its own');
    assert.match(again.log(), /removed containers left by an earlier run/);
    assert.equal(await exchange(head, 'hi'), 'hi');
  });

  it('a takeover adopts the running containers instead of running them again', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    const trig = await freePort();
    assert.equal(
      (await d.cli('create', 'url', `:${head}`, 'tail', 'docker-run', ECHO_RUN, 'url', ':9001')).code,
      0,
    );
    assert.equal(
      (await d.cli('create', 'url', `:${trig}`, 'trigger', 'docker-run', ECHO_RUN, 'url', ':9001')).code,
      0,
    );
    assert.equal(await exchange(trig, 'run'), 'run', 'the trigger ran its container');
    const before = (await containers(owner(d))).sort();
    assert.equal(before.length, 2);
    const next = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':').pop()),
      takeover: true,
    });
    assert.equal(await d.exited(), 0);
    assert.deepEqual((await containers(owner(next))).sort(), before, 'the same containers, none stopped');
    assert.equal(await exchange(head, 'hi'), 'hi');
    // the trigger is armed again and finds its predecessor's container
    assert.equal(await exchange(trig, 'again'), 'again');
    assert.deepEqual((await containers(owner(next))).sort(), before, 'still the same two');
    assert.match(next.log(), /container adopted/);
    assert.equal((await next.stop()).code, 0);
    assert.deepEqual(await containers(owner(next)), [], 'stopping the new daemon removes them');
  });

  it('says the engine is not running when a segment needs it, not at start', async () => {
    const d = await startDaemon(suite, { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    const r = await d.cli('create', 'url', `:${await freePort()}`, 'tail', 'docker-ns', 'anything');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Docker engine is not running at unix:\/\/\/nonexistent\/docker.sock/);
  });
});
