/**
 * What a key holder can do to the host through docker-run, and what a daemon leaves behind
 * when it is stopped with stragglers on its API port: tried as an attacker would.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { ECHO_IMAGE, containers, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { exchange, freePort, parseCreate } from '../../helpers/services';

function owner(d: TestDaemon): string {
  return `label=wormhole.owner=${fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim()}`;
}

/** The containers of a segment, from list --json. */
async function containersOf(d: TestDaemon, id: string): Promise<string[]> {
  const list = JSON.parse((await d.cli('list', '--json')).stdout) as { id: string; containers: string[] }[];
  return list.find((s) => s.id === id)?.containers ?? [];
}

describe('docker-run cannot hand out the host', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let allowed: string;
  let guarded: TestDaemon;

  before(async () => {
    d = await startDaemon(suite);
    allowed = fs.mkdtempSync('/tmp/wh-allow-');
    suite.after(() => fs.rmSync(allowed, { recursive: true, force: true }));
    guarded = await startDaemon(suite, { args: ['--allow-bind', allowed] });
  });

  it('refuses the host root as a bind mount, at create and behind a trigger, and nothing is written', async () => {
    const marker = `/tmp/wh-pwned-${randomBytes(4).toString('hex')}`;
    const words = `-v /:/host ${ECHO_IMAGE} touch /host${marker}`;
    for (const mode of ['tail', 'trigger']) {
      const r = await d.cli(
        'create',
        'url',
        `:${await freePort()}`,
        mode,
        'docker-run',
        words,
        'url',
        ':9001',
      );
      assert.equal(r.code, 1, `${mode}: ${r.stderr}`);
      assert.match(r.stderr, /host paths are not mounted unless wormholed runs with --allow-bind DIR/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
    assert.deepEqual(await containers(owner(d)), [], 'no container was made');
    assert.equal(fs.existsSync(marker), false, 'nothing was written on the host');
    assert.equal((await d.cli('list')).stdout, '', 'no segment was left');
  });

  it('mounts a path under --allow-bind and a named volume, but not a symlink leading out', async () => {
    fs.mkdirSync(path.join(allowed, 'data'));
    fs.symlinkSync('/etc', path.join(allowed, 'escape'));
    const escape = await guarded.cli(
      'create',
      'url',
      `:${await freePort()}`,
      'tail',
      'docker-run',
      `-v ${allowed}/escape:/x ${ECHO_IMAGE}`,
      'url',
      ':9001',
    );
    assert.equal(escape.code, 1, escape.stderr);
    assert.match(escape.stderr, /\(\/etc\) is outside the --allow-bind directories/);
    const outside = await guarded.cli(
      'create',
      'url',
      ':1',
      'tail',
      'docker-run',
      `-v /root:/r ${ECHO_IMAGE}`,
    );
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /outside the --allow-bind directories/);

    const volume = `wh-vol-${randomBytes(4).toString('hex')}`;
    suite.after(() => run('docker', ['volume', 'rm', '-f', volume]).catch(() => undefined));
    const head = await freePort();
    const c = await guarded.cli(
      'create',
      'url',
      `:${head}`,
      'tail',
      'docker-run',
      `-v ${allowed}/data:/data -v ${volume}:/vol ${ECHO_IMAGE}`,
      'url',
      ':9001',
    );
    assert.equal(c.code, 0, c.stderr);
    assert.equal(await exchange(head, 'through'), 'through');
    const { id } = parseCreate(c.stdout);
    const [container] = await containersOf(guarded, id);
    await run('docker', ['exec', container, 'touch', '/data/made-inside', '/vol/too']);
    assert.ok(fs.existsSync(path.join(allowed, 'data', 'made-inside')), 'the allowed bind is mounted');
    assert.equal((await guarded.cli('delete', id)).code, 0);
  });
});

describe('stopping with stragglers on the API port', () => {
  const suite = suiteCleanup(after);

  it('cuts a silent client and a half-done TLS handshake, removes its containers and exits 0', async () => {
    const d = await startDaemon(suite);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'docker-run', ECHO_IMAGE, 'url', ':9001');
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await containers(owner(d))).length, 1);
    const port = Number(d.tcp.split(':').pop());
    const open = (opts: net.NetConnectOpts, bytes?: Buffer): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = net.connect(opts, () => {
          if (bytes) s.write(bytes);
          resolve(s);
        });
        s.on('error', () => undefined);
      });
    // A port scan's socket, a TLS record header promising a ClientHello that never comes,
    // and a silent unix client.
    const stragglers = [
      await open({ port, host: '127.0.0.1' }),
      await open({ port, host: '127.0.0.1' }, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])),
      await open({ path: d.socket }),
    ];
    suite.after(() => stragglers.forEach((s) => s.destroy()));
    const killer = setTimeout(() => d.proc.kill('SIGKILL'), 8000);
    const { code, ms } = await d.stop('SIGTERM');
    clearTimeout(killer);
    assert.equal(code, 0, 'exit 0, not killed');
    assert.ok(ms < 5000, `stopped in ${ms} ms`);
    assert.deepEqual(await containers(owner(d)), [], 'its container was removed');
    assert.doesNotMatch(d.log(), /shutdown took too long|not removed/);
    await assert.rejects(exchange(head, 'x'), /ECONNREFUSED/);
  });
});
