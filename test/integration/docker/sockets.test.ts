/**
 * Unix sockets inside containers, against a real dockerd (issue 12): a path belongs to the
 * filesystem of the end's container. The real MariaDB reached through its own unix socket, a
 * unix head inside an application container reaching a TCP service on the host, and symlinks
 * planted in a container that must never lead a head or a tail out to the host.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, runCmd, startDaemon } from '../../helpers/daemon';
import { DB_QUERY, DB_VALUE, ECHO_IMAGE, run } from '../../helpers/docker';
import { suiteCleanup } from '../../helpers/netns';
import { exchange, freePort, parseCreate, startService, unixExchange } from '../../helpers/services';

/** The query DB_QUERY asks, as the mariadb client takes it through a unix socket instead of TCP. */
const SOCKET_QUERY = DB_QUERY.filter((a, i, all) => a !== '-h' && all[i - 1] !== '-h');

describe('unix sockets in containers', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  /** `docker run -d ARGS`, removed after the suite. */
  async function dockerRun(...args: string[]): Promise<string> {
    const id = (await run('docker', ['run', '-d', ...args])).trim();
    suite.after(() => run('docker', ['rm', '-f', id]).catch(() => undefined));
    return id;
  }

  async function create(...args: string[]): Promise<{ id: string; url: string; port: number }> {
    const r = await d.cli('create', ...args);
    assert.equal(r.code, 0, r.stderr);
    return parseCreate(r.stdout);
  }

  /** The query through host port `port`, tried until MariaDB has started (up to 60 s). */
  async function query(port: number): Promise<string> {
    let last = '';
    for (let i = 0; i < 120; i++) {
      const q = await runCmd('mysql', ['-P', String(port), ...DB_QUERY]);
      if (q.code === 0) return q.stdout.trim();
      last = q.stderr;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`no answer from MariaDB: ${last}`);
  }

  before(async () => {
    // a short dial timeout: the tests that must not connect fail fast
    d = await startDaemon(suite, { args: ['--dial-timeout', '2'] });
  });

  it("reaches MariaDB through its unix socket inside its container (tcp -> the container's unix)", async () => {
    const mysql = await dockerRun('wormhole/mysql');
    const port = await freePort();
    const seg = await create(
      'url',
      `:${port}`,
      'tail',
      'url',
      'unix:///run/mysqld/mysqld.sock',
      'docker-ns',
      mysql,
    );
    assert.equal(await query(port), DB_VALUE);
    const [info] = (
      JSON.parse((await d.cli('list', '--json')).stdout) as {
        id: string;
        tail: { proto: string; path: string; container: string };
      }[]
    ).filter((s) => s.id === seg.id);
    assert.deepEqual(
      [info.tail.proto, info.tail.path, info.tail.container],
      ['unix', '/run/mysqld/mysqld.sock', mysql],
    );
    assert.equal((await d.cli('delete', seg.id)).code, 0);
  });

  it('puts a unix head inside an app container that reaches a TCP service on the host', async () => {
    const mysql = await dockerRun('wormhole/mysql');
    const app = await dockerRun('wormhole/wordpress');
    // the host's TCP service: MariaDB's port on the host (a segment into its container)
    const port = await freePort();
    await create('url', `:${port}`, 'tail', 'docker-ns', mysql, 'url', ':3306');
    await query(port);
    const head = await create('url', 'unix:///tmp/mysqld.sock', 'docker-ns', app, 'tail', 'url', `:${port}`);
    assert.match(head.url, /^unix:\/\/docker:[0-9a-f]{12}@\/tmp\/mysqld.sock$/);
    // the socket file is in the container, mode 0660, and nowhere on the host
    const ls = await runCmd('docker', ['exec', app, 'stat', '-c', '%A %U', '/tmp/mysqld.sock']);
    assert.equal(ls.stdout.trim(), 'srw-rw---- root');
    assert.ok(!fs.existsSync('/tmp/mysqld.sock'));
    // the container's own mariadb client, through the socket
    const q = await runCmd('docker', ['exec', app, 'mariadb', '--socket=/tmp/mysqld.sock', ...SOCKET_QUERY]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), DB_VALUE);
    assert.equal((await d.cli('delete', head.id)).code, 0);
    const gone = await runCmd('docker', ['exec', app, 'ls', '/tmp/mysqld.sock']);
    assert.notEqual(gone.code, 0, 'the socket file went with the segment');
  });

  it('never follows a symlink in a container out to the host, for a head or a tail', async (t) => {
    const c = await dockerRun(ECHO_IMAGE);
    const tag = randomBytes(4).toString('hex');
    // a socket on the host that a container must not reach, and a host path it must not write
    const secret = `/tmp/wh-host-${tag}.sock`;
    await startService(t, null, 'unix-hello', secret, 'HOST');
    t.after(() => fs.rmSync(secret, { force: true }));
    const hostFile = `/etc/wh-escape-${tag}.sock`;
    t.after(() => fs.rmSync(hostFile, { force: true }));
    const plant = async (...argv: string[]): Promise<void> => {
      const r = await runCmd('docker', ['exec', c, ...argv]);
      assert.equal(r.code, 0, r.stderr);
    };
    await plant('ln', '-s', '/etc', '/etclink'); // a directory link to "/etc"
    await plant('ln', '-s', secret, '/evil.sock'); // an absolute link to the host's socket
    await plant('ln', '-s', `/proc/self/root${secret}`, '/magic.sock'); // through /proc
    await plant('ln', '-s', `../../../..${secret}`, '/up.sock'); // up and out
    const port = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', port);

    // a head through a directory link: made in the container's /etc, not the host's
    const name = path.basename(hostFile);
    const head = await create('url', `unix:///etclink/${name}`, 'docker-ns', c, 'tail', 'url', `:${port}`);
    assert.ok(!fs.existsSync(hostFile), 'nothing was made in the host /etc');
    const inside = await runCmd('docker', ['exec', c, 'ls', '-l', `/etc/${name}`]);
    assert.match(inside.stdout, /^s/, 'the socket is in the container /etc');
    await d.cli('delete', head.id);

    // a head over a link is refused, and makes nothing where the link points
    const r = await d.cli('create', 'url', 'unix:///evil.sock', 'docker-ns', c, 'tail', 'url', `:${port}`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is a symbolic link, not a socket/);
    assert.equal(await unixExchange(secret, ''), 'HOST', 'the host socket is untouched');

    // tails through each link, and through "..": none reaches the host's socket
    for (const target of ['/evil.sock', '/magic.sock', '/up.sock', `/../../..${secret}`]) {
      const p = await freePort();
      await create('url', `:${p}`, 'tail', 'url', `unix://${target}`, 'docker-ns', c);
      const got = await exchange(p, 'x').catch(() => '');
      assert.notEqual(got, 'HOST', `${target} led out of the container`);
      assert.equal(got, '', `${target}: the connection is closed, unanswered`);
    }
  });
});
