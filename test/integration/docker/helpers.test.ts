/**
 * The test fixture that starts dockerd (test/helpers/docker.ts): in private mount and network
 * namespaces, where no engine answers and the machine's own dockerd (if any) is out of reach,
 * two test processes need an engine at once: one dockerd is started, it outlives the process
 * that started it while the other still uses it, and the last one out stops it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.resolve(__dirname, '../../../..');
const USER = path.join(ROOT, 'test/fixtures/dockerd-user.js');

describe('ensureDockerd and stopDockerdIfStarted', () => {
  it('start one dockerd for two users and stop it when the last one is done', async (t) => {
    // private /run (the engine's socket and the helper's shared state) and /var/lib/docker,
    // a private network (dockerd's bridge and iptables rules), then two helper users
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run',
      'mount -t tmpfs tmpfs /var/lib/docker',
      'ip link set lo up',
      `exec "${process.execPath}" -e "$0"`,
    ].join('\n');
    const driver = `
      const { fork, execFileSync } = require('node:child_process');
      const answers = () => { try { execFileSync('docker', ['version'], { stdio: 'pipe' }); return true; } catch { return false; } };
      const a = fork(${JSON.stringify(USER)});
      const b = fork(${JSON.stringify(USER)});
      const msg = (c) => new Promise((r) => c.once('message', r));
      (async () => {
        const out = { before: answers() };
        out.a = await msg(a);
        out.b = await msg(b);
        a.send('stop');
        out.aStopped = await msg(a);
        b.send('stop');
        out.bStopped = await msg(b);
        out.after = answers();
        console.log(JSON.stringify(out));
      })();
    `;
    const child = spawn(
      'unshare',
      ['--mount', '--net', '--propagation', 'private', 'sh', '-c', script, driver],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
    assert.equal(out.before, false, 'no engine in the private namespaces at first');
    const starters = [out.a.started, out.b.started].filter((p) => p !== null);
    assert.equal(starters.length, 1, `one of the two started dockerd: ${stdout}`);
    assert.ok(out.a.answers && out.b.answers, `both found it answering: ${stdout}`);
    assert.equal(out.aStopped.answers, true, 'still running while the other uses it');
    assert.equal(out.bStopped.answers, false, 'stopped by the last one');
    assert.equal(out.after, false);
    assert.match(stderr, /started dockerd \(pid \d+/);
    assert.match(stderr, /stopped dockerd \(pid \d+\)/);
  });
});
