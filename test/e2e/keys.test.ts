/**
 * Keys with rights (SPEC "Trust: who may do what"), with a real daemon and the CLI over TCP
 * holding only its key file: each option allowed and refused, read-only, the FORBIDDEN line
 * and exit code with nothing changed, the owner in list --json (and after a restart), the
 * log naming the key, SIGHUP adding and removing keys, a bad keys file at start and at
 * SIGHUP. A peer's key is tested with two hosts in test/integration/peer/keys.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { type Connection, connect } from '../../src/client';
import { parseDaemonAddress } from '../../src/common/address';
import { PSK_CIPHERS, PSK_IDENTITY, readKey } from '../../src/common/key';
import { type TestDaemon, WORMHOLED, runCmd, startDaemon, writeKey } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { until } from '../helpers/wait';

/** The segments `list --json` shows (as admin, on the unix socket): id and owner. */
async function owners(d: TestDaemon): Promise<Record<string, string | undefined>> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return Object.fromEntries(
    (JSON.parse(r.stdout) as { id: string; owner?: string }[]).map((s) => [s.id, s.owner]),
  );
}

/** A refusal as the user sees it: exit 1, one line, naming the key and what it may not do. */
function assertForbidden(r: { code: number | null; stderr: string }, line: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr.trim(), line);
}

describe('keys with rights', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let keysFile: string;
  const key = (name: string): string => path.join(d.dir, `${name}.key`);
  /** The keys file, mode 600, its key files made on first use. */
  const writeKeys = (...lines: string[]): void => {
    for (const l of lines) {
      const file = l.split(' ')[1];
      if (!fs.existsSync(file)) writeKey(file);
    }
    fs.writeFileSync(keysFile, `# name key options\n${lines.join('\n')}\n`);
    fs.chmodSync(keysFile, 0o600);
  };

  before(async () => {
    d = await startDaemon(suite);
    keysFile = path.join(d.dir, 'keys');
    writeKeys(
      `ci ${key('ci')} permit-listen=127.0.0.1:8000-8999,permit-open=127.0.0.1:5432,permit-image="local/*"`,
      `dash ${key('dash')} read-only`,
      `px ${key('px')} peer`,
      `py ${key('py')} peer`,
    );
    await d.stop();
    d = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':')[2]),
      args: ['--keys', keysFile],
    });
  });

  it('lets a key do what its options allow, and names it the owner', async () => {
    const r = await d.cliTcp(key('ci'), 'create', 'id', 'ci-web', 'url', ':8080', 'tail', 'url', ':5432');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await owners(d))['ci-web'], 'ci');
    // -K's key, over TCP too, is admin
    const a = await d.cliTcp(
      d.keyFile,
      'create',
      'id',
      'admin-web',
      'url',
      '0.0.0.0:0',
      'tail',
      'url',
      ':22',
    );
    assert.equal(a.code, 0, a.stderr);
    assert.equal((await owners(d))['admin-web'], 'admin');
    // the log names the key of each request that changes something
    assert.match(d.log(), /"key":"ci","method":"create"/);
    assert.match(d.log(), /"key":"admin","method":"create"/);
  });

  it('refuses what a key may not do: FORBIDDEN, one line, exit 1, nothing changed', async () => {
    const before = await owners(d);
    const cases: [string[], RegExp][] = [
      [
        ['url', '0.0.0.0:80', 'tail', 'url', ':5432'],
        /^wormhole: key "ci" may not listen on 0\.0\.0\.0:80 \(permit-listen=127\.0\.0\.1:8000-8999\)$/,
      ],
      [
        ['url', ':8081', 'tail', 'url', ':22'],
        /key "ci" may not open 127\.0\.0\.1:22 \(permit-open=127\.0\.0\.1:5432\)/,
      ],
      [
        ['url', ':8082', 'tail', 'url', ':5432', 'also', 'url', '10.9.9.9:5432'],
        /may not open 10\.9\.9\.9:5432/,
      ],
      [
        ['url', ':8083', 'tail', 'url', 'unix:///var/run/docker.sock'],
        /may not open unix:\/var\/run\/docker\.sock/,
      ],
      [
        ['url', ':8084', 'trigger', 'docker-run', 'postgres', 'url', ':5432'],
        /may not run the image postgres \(permit-image=local\/\*\)/,
      ],
    ];
    for (const [words, line] of cases) assertForbidden(await d.cliTcp(key('ci'), 'create', ...words), line);
    const j = await d.cliTcp(key('ci'), 'create', '--json', 'url', ':8085', 'tail', 'url', ':22');
    assert.equal(j.code, 1);
    assert.match(j.stdout + j.stderr, /"code":\s*"FORBIDDEN"/);
    assert.deepEqual(await owners(d), before, 'nothing was made');
    assert.match(d.log(), /request refused: FORBIDDEN/);
  });

  it('gives a read-only key what changes nothing', async () => {
    const l = await d.cliTcp(key('dash'), 'list', '--json');
    assert.equal(l.code, 0, l.stderr);
    assert.ok((JSON.parse(l.stdout) as unknown[]).length >= 2);
    assert.equal((await d.cliTcp(key('dash'), 'ping')).code, 0);
    assertForbidden(
      await d.cliTcp(key('dash'), 'create', 'url', ':8090', 'tail', 'url', ':5432'),
      /key "dash" is read-only: it may not create/,
    );
    assertForbidden(
      await d.cliTcp(key('dash'), 'delete', 'ci-web'),
      /key "dash" is read-only: it may not delete/,
    );
    assert.ok('ci-web' in (await owners(d)));
  });

  it("lets a key delete what it made, not another key's segments", async () => {
    assertForbidden(
      await d.cliTcp(key('ci'), 'delete', 'admin-web'),
      /key "ci" may not delete segment admin-web: key "admin" made it/,
    );
    const r = await d.cliTcp(key('ci'), 'create', 'id', 'ci-tmp', 'url', ':8091', 'tail', 'url', ':5432');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await d.cliTcp(key('ci'), 'delete', 'ci-tmp')).code, 0);
    assert.ok(!('ci-tmp' in (await owners(d))));
    assert.ok('admin-web' in (await owners(d)));
  });

  it('refuses a key it does not know, and the identity of old clients with any key but -K', async () => {
    const stranger = path.join(d.dir, 'stranger.key');
    writeKey(stranger);
    const r = await d.cliTcp(stranger, 'ping');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused the connection/);
    // what a CLI of before --keys sends ('wormhole'): -K's key passes, ci's does not
    const [host, port] = d.tcp.slice('tcp://'.length).split(':');
    const handshake = (file: string): Promise<boolean> =>
      new Promise((resolve) => {
        const s = tls.connect({
          host,
          port: Number(port),
          minVersion: 'TLSv1.3',
          ciphers: PSK_CIPHERS,
          pskCallback: () => ({ psk: readKey(file), identity: PSK_IDENTITY }),
          checkServerIdentity: () => undefined,
        });
        s.once('secureConnect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    assert.equal(await handshake(d.keyFile), true);
    assert.equal(await handshake(key('ci')), false);
  });

  it('lets a peer attach only to what its key made, and have back only its own child', async (t) => {
    const addr = parseDaemonAddress(d.tcp);
    const as = async (name: string): Promise<Connection> => {
      const conn = await connect(addr, readKey(key(name)));
      t.after(() => conn.close());
      return conn;
    };
    const ask = {
      actions: [
        { verb: 'tail' as const, args: [] },
        { verb: 'url' as const, args: [':5432'] },
      ],
      head: { proto: 'tcp' as const, port: 0 },
      key: 'host-x/segment-1',
    };
    const px = await as('px');
    const child = await px.call('peer-create', ask);
    assert.equal((await owners(d))[child.id], 'px');
    await assert.rejects((await as('px')).attach('admin-web'), {
      code: 'FORBIDDEN',
      message: 'key "px" may not attach to segment admin-web: key "admin" made it',
    });
    // another peer asking under the same identity gets no child of px's, and changes nothing
    await assert.rejects(
      (await as('py')).call('peer-create', {
        ...ask,
        actions: [
          { verb: 'tail', args: [] },
          { verb: 'url', args: [':5433'] },
        ],
      }),
      {
        code: 'ID_EXISTS',
      },
    );
    assert.equal((await owners(d))[child.id], 'px');
    // a key without peer may not attach at all
    await assert.rejects((await as('ci')).attach(child.id), {
      code: 'FORBIDDEN',
      message: /key "ci" may not act as a peer \(attach\)/,
    });
  });

  it('SIGHUP reads the keys file again: a removed key is refused, its segments stay', async () => {
    writeKeys(`late ${key('late')} read-only`, `dash ${key('dash')} read-only`);
    d.proc.kill('SIGHUP');
    await until(
      'the keys were reloaded',
      async () => d.log(),
      (l) => /"keys":\["late","dash"\]/.test(l),
    );
    assert.equal((await d.cliTcp(key('late'), 'ping')).code, 0);
    const gone = await d.cliTcp(key('ci'), 'ping');
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /refused the connection/);
    assert.equal((await owners(d))['ci-web'], 'ci', "the removed key's segment stays");

    // a bad file keeps the keys in use, and says why in one line
    fs.writeFileSync(keysFile, `late ${key('late')} read-only\nci ${key('ci')} frobnicate\n`);
    d.proc.kill('SIGHUP');
    await until(
      'the bad file was logged',
      async () => d.log(),
      (l) => /keys not reloaded/.test(l),
    );
    assert.match(d.log(), /line 2: unknown option \\"frobnicate\\".*keys not reloaded: the keys in use stay/);
    assert.equal((await d.cliTcp(key('late'), 'ping')).code, 0);
    assert.equal((await d.cliTcp(key('dash'), 'ping')).code, 0, 'the keys in use stay, dash with them');
    assert.equal((await d.cliTcp(key('ci'), 'ping')).code, 1);
  });

  it('keeps the owner across a restart', async () => {
    writeKeys(`dash ${key('dash')} read-only`);
    await d.stop();
    d = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':')[2]),
      args: ['--keys', keysFile],
    });
    const o = await owners(d);
    assert.equal(o['ci-web'], 'ci');
    assert.equal(o['admin-web'], 'admin');
  });

  it('refuses to start with a bad keys file: one line naming the file, the line, what is wrong', async () => {
    const bad = path.join(d.dir, 'bad-keys');
    fs.writeFileSync(bad, `# ok\ndash ${key('dash')} read-only\nci ${key('ci')} permit-listen=127.0.0.1\n`, {
      mode: 0o600,
    });
    const sock = path.join(d.dir, 'bad.sock');
    const args = [
      '-H',
      `unix://${sock}`,
      '-K',
      d.keyFile,
      '--keys',
      bad,
      '--state-dir',
      path.join(d.dir, 'bad-state'),
    ];
    const r = await runCmd(process.execPath, [WORMHOLED, ...args]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `wormholed: keys file ${bad}: line 3: "127.0.0.1" is not HOST:PORT, HOST:LOW-HIGH or unix:PATH (* for any host or port)\n`,
    );
    assert.ok(!fs.existsSync(sock), 'it did not listen');
  });
});
