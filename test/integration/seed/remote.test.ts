/**
 * The seed's examples 4-8, as written, between two test hosts: `myserver` resolves (through
 * /etc/netns/A/hosts) to the second host, both daemons run with the default key path, and
 * the database is the real MariaDB server in a container (`docker -H myserver run` becomes a
 * plain `docker run`: both test hosts share this machine's Docker engine).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, runCmd, startDaemon } from '../../helpers/daemon';
import { DB_QUERY, DB_VALUE, run } from '../../helpers/docker';
import { suiteCleanup, withHostPair } from '../../helpers/netns';
import { parseCreate, seed } from '../../helpers/services';

describe("the seed's multi-host examples", () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let local: TestDaemon;
  let myserver: TestDaemon;

  const onLocal = (input: string, ...argv: string[]) =>
    runCmd('ip', ['netns', 'exec', hosts.a, ...argv], { timeoutMs: 60_000, input });
  const query = () => onLocal('', 'mysql', ...DB_QUERY);

  async function dockerRunMysql(): Promise<string> {
    const id = (await run('docker', ['run', '-d', 'wormhole/mysql'])).trim();
    suite.after(() => run('docker', ['rm', '-f', id]).catch(() => undefined));
    return id;
  }

  async function createAndQuery(...words: string[]): Promise<void> {
    const c = await local.asWritten('create', ...words);
    assert.equal(c.code, 0, c.stderr);
    const q = await query();
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), DB_VALUE);
    assert.equal((await local.asWritten('delete', parseCreate(c.stdout).id)).code, 0);
    assert.equal((await myserver.cli('list')).stdout, '', 'the remote child went with it');
  }

  before(async () => {
    hosts = withHostPair(suite);
    const key = randomBytes(16).toString('hex'); // the same key.secret on both machines
    myserver = await startDaemon(suite, { netns: hosts.b, key, seedStyle: {} });
    local = await startDaemon(suite, {
      netns: hosts.a,
      key,
      seedStyle: { hosts: [`${hosts.ipB} myserver`] },
    });
  });

  it('4: a local port to talk to a remote mysql', async () => {
    const mysql = await dockerRunMysql();
    await createAndQuery('url', ':3306', 'remote', 'myserver', 'tail', 'url', ':3306', 'docker-ns', mysql);
  });

  it('5: the same over a tunnel', async () => {
    const mysql = await dockerRunMysql();
    await createAndQuery('url', ':3306', 'tunnel', 'myserver', 'trigger', 'url', ':3306', 'docker-ns', mysql);
  });

  it('6: a local port that runs a remote mysql on connection', async () => {
    await createAndQuery(
      ...seed('url :3306 trigger tunnel myserver trigger url :3306 docker-run wormhole/mysql'),
    );
  });

  it('7: a local port that runs wp, followed by the above', async () => {
    const c = await local.asWritten(
      'create',
      ...seed(
        'url :80 trigger docker-run wormhole/wordpress child url :3306 tunnel myserver trigger url :3306 docker-run wormhole/mysql',
      ),
    );
    assert.equal(c.code, 0, c.stderr);
    const page = await onLocal('GET / HTTP/1.0\r\n\r\n', 'socat', '-t', '30', '-', 'TCP:127.0.0.1:80');
    assert.match(page.stdout, /^HTTP\/1.0 200 OK/, page.stdout + page.stderr);
    assert.match(page.stdout, new RegExp(DB_VALUE));
    assert.equal((await local.asWritten('delete', parseCreate(c.stdout).id)).code, 0);
    assert.equal((await myserver.cli('list')).stdout, '');
  });

  it('8: forget the proxy, make a tunnel; delete it', async () => {
    const t = await local.asWritten('tunnel-create', 'myserver');
    assert.equal(t.code, 0, t.stderr);
    const [localIp, remoteIp] = t.stdout.trim().split(' ');
    assert.match(localIp, /^100\.6[4-7]\.\d+\.\d+$/);
    assert.match(remoteIp, /^100\.6[4-7]\.\d+\.\d+$/);
    const onServer = JSON.parse((await myserver.cli('tunnel-list', '--json')).stdout) as {
      localIp: string;
      remoteIp: string;
    }[];
    assert.deepEqual([onServer[0].localIp, onServer[0].remoteIp], [remoteIp, localIp]);
    assert.equal((await local.asWritten('tunnel-delete', 'myserver')).code, 0);
    assert.equal((await local.asWritten('tunnel-list')).stdout, '');
    assert.equal((await myserver.cli('tunnel-list')).stdout, '');
  });
});
