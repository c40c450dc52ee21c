/**
 * The seed's examples 1-3, as written, on a test host (a network namespace whose daemon runs
 * with the default key path, as `sudo ./wormholed` would): the real MariaDB server in a
 * container, the host's real mariadb client, and an application container.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, runCmd, startDaemon } from '../../helpers/daemon';
import { DB_QUERY, DB_VALUE, containers, run } from '../../helpers/docker';
import { suiteCleanup, withNetns } from '../../helpers/netns';
import { parseCreate, seed } from '../../helpers/services';

const HTTP_GET = 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n';

describe("the seed's Docker examples", () => {
  const suite = suiteCleanup(after);
  let host: string;
  let d: TestDaemon;
  let ownerFilter: string;

  /** `docker run -d IMAGE`, removed after the suite. */
  async function dockerRun(image: string): Promise<string> {
    const id = (await run('docker', ['run', '-d', image])).trim();
    suite.after(() => run('docker', ['rm', '-f', id]).catch(() => undefined));
    return id;
  }

  /** A command on the test host, as a user there would type it. */
  const onHost = (...argv: string[]) =>
    runCmd('ip', ['netns', 'exec', host, ...argv], {
      timeoutMs: 60_000,
      input: argv[0] === 'socat' ? HTTP_GET : '',
    });

  before(async () => {
    host = withNetns(suite, 'whs');
    d = await startDaemon(suite, { netns: host, seedStyle: {} });
    ownerFilter = `label=wormhole.owner=${fs.readFileSync(path.join(d.dir, 'state', 'owner-id'), 'utf8').trim()}`;
  });

  it('1: proxies to the mysql in a local container; the mariadb client queries it', async () => {
    const mysql = await dockerRun('wormhole/mysql');
    const c = await d.asWritten('create', 'url', ':3306', 'docker-ns', 'tail', 'docker-ns', mysql);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(parseCreate(c.stdout).url, 'tcp://127.0.0.1:3306');
    const q = await onHost('mysql', ...DB_QUERY);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), DB_VALUE);
    await d.asWritten('delete', parseCreate(c.stdout).id);
  });

  it("2: connects a wp container's own localhost:3306 to a mysql container", async () => {
    const app = await dockerRun('wormhole/wordpress');
    const mysql = await dockerRun('wormhole/mysql');
    const c = await d.asWritten('create', 'url', ':3306', 'docker-ns', app, 'tail', 'docker-ns', mysql);
    assert.equal(c.code, 0, c.stderr);
    // from inside the application container, on its own loopback
    const q = await runCmd('docker', ['exec', app, 'mariadb', ...DB_QUERY]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), DB_VALUE);
    // and the application itself answers with the database's value
    const pid = (await run('docker', ['inspect', '-f', '{{.State.Pid}}', app])).trim();
    const page = await runCmd(
      'nsenter',
      [`--net=/proc/${pid}/ns/net`, 'socat', '-t', '20', '-', 'TCP:127.0.0.1:80'],
      { input: HTTP_GET },
    );
    assert.match(page.stdout, /^HTTP\/1.0 200 OK/);
    assert.match(page.stdout, new RegExp(DB_VALUE));
    await d.asWritten('delete', parseCreate(c.stdout).id);
  });

  it('3: a local port that starts wp and mysql on the first connection', async () => {
    const c = await d.asWritten(
      'create',
      ...seed(
        'url :80 trigger docker-run wormhole/wordpress child url :3306 trigger docker-run wormhole/mysql',
      ),
    );
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(await containers(ownerFilter), [], 'no container runs before the first request');
    const first = await onHost('socat', '-t', '30', '-', 'TCP:127.0.0.1:80');
    assert.match(first.stdout, /^HTTP\/1.0 200 OK/, first.stdout + first.stderr);
    assert.match(first.stdout, new RegExp(DB_VALUE));
    assert.equal((await containers(ownerFilter)).length, 2, 'wordpress and mysql');
    assert.equal((await d.asWritten('delete', parseCreate(c.stdout).id)).code, 0);
    assert.deepEqual(await containers(ownerFilter), [], 'delete removed both containers');
  });
});
