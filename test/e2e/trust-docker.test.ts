/**
 * Issue 18's holes that need a container engine, each reproduced, then closed (named for its
 * number in the issue), with real daemons and a real dockerd: a delete during a create (6),
 * a bind's source swapped for a symlink between two starts of a container (4).
 * The others are in trust.test.ts and trust-data.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { ECHO_IMAGE, containers, run } from '../helpers/docker';
import { suiteCleanup } from '../helpers/netns';
import { type TestRegistry, startEchoRegistry } from '../helpers/registry';
import { exchange } from '../helpers/services';
import { until } from '../helpers/wait';

/**
 * The ids of the segments `list` shows that a create made (not those made from containers'
 * `wormhole.NAME` labels: the test images carry one, `wormhole.test.recipe`).
 */
async function ids(d: TestDaemon): Promise<string[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: string; label?: string }[]).filter((s) => !s.label).map((s) => s.id);
}

/** The containers of the daemon (its owner label). */
function owned(d: TestDaemon): Promise<string[]> {
  const owner = fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim();
  return containers(`label=wormhole.owner=${owner}`);
}

describe('hole 6: a delete during a create comes back', () => {
  const suite = suiteCleanup(after);
  const repo = `wh-test/slow-${randomBytes(3).toString('hex')}`;
  let registry: TestRegistry;

  before(async () => {
    // an image that is not here, served in small pieces: its pull is the create's long step
    registry = await startEchoRegistry(repo);
    suite.after(async () => {
      await run('docker', ['rmi', '-f', `${registry.host}/${repo}:v1`]).catch(() => undefined);
      await registry.close();
    });
  });

  it('aborts the build: the segment is gone, stays gone after a restart, nothing left running', async () => {
    const image = `${registry.host}/${repo}:v1`;
    const d = await startDaemon(suite);
    // the issue's: create id z ... trigger docker-run IMAGE & sleep 1; delete z
    const creating = d.cli('create', 'id', 'z', 'url', ':0', 'trigger', 'docker-run', image, 'url', ':9001');
    await until(
      'the pull under way',
      async () => d.log(),
      (log) => log.includes('image not here: pulling it'),
    );
    const del = await d.cli('delete', 'z');
    assert.equal(del.code, 0, `delete during the create's steps: ${del.stderr}`);
    const created = await creating;
    assert.equal(created.code, 1, created.stdout);
    assert.match(created.stderr, /segment z was deleted while it was being created/);
    assert.deepEqual(await ids(d), []);
    // a new create with the id works once the first is undone
    const again = await d.cli('create', 'id', 'z', 'url', ':0', 'tail', 'url', ':9');
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await d.cli('delete', 'z')).code, 0);
    // the record is gone too: the next start does not build it again
    await d.stop();
    const restarted = await startDaemon(suite, { dir: d.dir });
    assert.deepEqual(await ids(restarted), []);
    assert.deepEqual(await owned(restarted), [], 'no container of it runs');
  });
});

/** A container's state as docker inspect says it ("running", "exited"), or "gone". */
function status(id: string): Promise<string> {
  return run('docker', ['inspect', '--format', '{{.State.Status}}', id]).then(
    (s) => s.trim(),
    () => 'gone',
  );
}

describe('hole 4: --allow-bind escaped by a symlink swap', () => {
  const suite = suiteCleanup(after);

  it("checks a container's binds again before an idle restart: a source swapped for a link out is refused", async () => {
    // allowed/d is bound into the segment's container; secret/ is outside every allowed directory
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-bind4-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const [allowed, secret] = [path.join(dir, 'allowed'), path.join(dir, 'secret')];
    fs.mkdirSync(path.join(allowed, 'd'), { recursive: true, mode: 0o755 });
    fs.mkdirSync(secret);
    fs.writeFileSync(path.join(secret, 'mark'), 'SECRET');
    const d = await startDaemon(suite, { args: ['--allow-bind', allowed, '--dial-timeout', '10'] });
    const run4 = `-v ${allowed}/d:/d --stop-timeout 1 ${ECHO_IMAGE} echo-server 9001`;
    const seg = await d.create('url', ':0', 'idle', '1s', 'trigger', 'docker-run', run4, 'url', ':9001');
    assert.equal(await exchange(seg.port, 'one'), 'one');
    const [cid] = await owned(d);
    await until(
      'the container stopped by idle',
      () => status(cid),
      (s) => s === 'exited',
    );
    // whoever may write under the allowed directory swaps the bound directory for a link out
    fs.renameSync(path.join(allowed, 'd'), path.join(allowed, 'd.old'));
    fs.symlinkSync(secret, path.join(allowed, 'd'));
    const got = await exchange(seg.port, 'two').catch(() => '');
    assert.equal(got, '', 'the container did not start again with the swapped bind');
    assert.equal(await status(cid), 'exited');
    await until(
      'the refusal logged',
      async () => d.log(),
      (log) => log.includes(`(${secret}) is outside the --allow-bind directories`),
    );
  });

  it('refuses a bind source inside the writable bind of another container of the daemon', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-bind4b-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'shared', 'inner'), { recursive: true });
    const d = await startDaemon(suite, { args: ['--allow-bind', dir] });
    const writer = await d.create(
      'url',
      ':0',
      'tail',
      'docker-run',
      `-v ${dir}/shared:/w ${ECHO_IMAGE} echo-server 9001`,
      'url',
      ':9001',
    );
    const r = await d.cli(
      'create',
      'url',
      ':0',
      'tail',
      'docker-run',
      `-v ${dir}/shared/inner:/r:ro ${ECHO_IMAGE} echo-server 9001`,
      'url',
      ':9001',
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`lies inside ${dir}/shared, which another container mounts writable`));
    assert.deepEqual(await ids(d), [writer.id]);
  });
});
