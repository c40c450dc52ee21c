/**
 * The keys file (src/trust/keys.ts): its lines as sshd's authorized_keys (comments, quoted
 * values, comma-separated options), each bad line refused with the file, its number and what
 * is wrong; the ring that finds a key by the identity a client presents.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { openTransport } from '../../../src/client';
import { PSK_CIPHERS, PSK_IDENTITY, pskIdentity, readKey } from '../../../src/common/key';
import { WormholeError } from '../../../src/common/errors';
import { KeyRing, loadKeysFile } from '../../../src/trust/keys';
import { writeKey } from '../../helpers/daemon';

describe('keys file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-keys-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const keyFile = (name: string): string => {
    const f = path.join(dir, `${name}.key`);
    if (!fs.existsSync(f)) writeKey(f);
    return f;
  };
  const admin = readKey(keyFile('admin'));
  const file = path.join(dir, 'keys');
  /** Load these lines; the error's message when they are refused. */
  const load = (...lines: string[]): ReturnType<typeof loadKeysFile> | string => {
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    fs.chmodSync(file, 0o600);
    try {
      return loadKeysFile(file, admin);
    } catch (err) {
      assert.ok(err instanceof WormholeError, String(err));
      assert.equal(err.code, 'KEYS_INVALID');
      return err.message;
    }
  };

  it('reads names, key files, options, comments and quotes', () => {
    keyFile('ci');
    keyFile('dash');
    const keys = load(
      '# who may do what',
      '',
      `ci ${keyFile('ci')} permit-listen=127.0.0.1:8000-8999,permit-open="*:5432",permit-image="local/*" # a comment`,
      '  dash dash.key read-only',
      `"peer-b" ${keyFile('b')} peer,permit-open=127.0.0.1:5432`,
      `plain ${keyFile('plain')}`,
    );
    assert.ok(Array.isArray(keys), String(keys));
    assert.deepEqual(
      keys.map((k) => k.name),
      ['ci', 'dash', 'peer-b', 'plain'],
    );
    const [ci, dash, b, plain] = keys;
    assert.deepEqual(
      ci.rights.listen?.map((r) => r.text),
      ['127.0.0.1:8000-8999'],
    );
    assert.deepEqual(
      ci.rights.open?.map((r) => r.text),
      ['*:5432'],
    );
    assert.deepEqual(ci.rights.image, ['local/*']);
    assert.equal(ci.rights.readOnly, false);
    assert.equal(dash.rights.readOnly, true, 'a relative key file is under the keys file');
    assert.deepEqual(dash.psk, readKey(keyFile('dash')));
    assert.equal(b.rights.peer, true);
    assert.deepEqual(
      [plain.rights.listen, plain.rights.open, plain.rights.image, plain.rights.peer],
      [null, null, null, false],
    );
  });

  it('refuses a bad line naming the file, the line and what is wrong', () => {
    const ok = `ok ${keyFile('ok')}`;
    const cases: [string, RegExp][] = [
      ['lonely', /line 2: expected NAME KEYFILE \[OPTIONS\]/],
      [`x ${keyFile('x')} frobnicate`, /line 2: unknown option "frobnicate"/],
      [`x ${keyFile('x')} read-only permit-open=*:80`, /line 2: "permit-open=\*:80" after the options/],
      [`x ${keyFile('x')} permit-listen=127.0.0.1`, /line 2: "127.0.0.1" is not HOST:PORT/],
      [`x ${keyFile('x')} permit-open=`, /line 2: permit-open= is empty/],
      [`x ${keyFile('x')} read-only=yes`, /line 2: read-only takes no value/],
      [`x ${keyFile('x')} permit-image`, /line 2: permit-image needs =VALUE/],
      [`x ${path.join(dir, 'none.key')}`, /line 2: key file .*none.key does not exist/],
      [`admin ${keyFile('x')}`, /line 2: the name admin is -K's key/],
      [`b@d ${keyFile('x')}`, /line 2: "b@d" is not a key name/],
      [`x ${keyFile('admin')}`, /line 2: x's key is -K's \(admin's\)/],
      [`ok ${keyFile('x')}`, /line 2: the name ok is given twice/],
      [`y ${keyFile('ok')}`, /line 2: y's key is given twice \(also ok\)/],
      [`x "${keyFile('x')}`, /line 2: a quote is not closed/],
    ];
    for (const [line, want] of cases) {
      const got = load(ok, line);
      assert.equal(typeof got, 'string', `${line} was refused`);
      assert.match(got as string, new RegExp(`^keys file ${file}: `));
      assert.match(got as string, want);
    }
    // a key file others can read, as -K's
    const open = path.join(dir, 'open.key');
    writeKey(open);
    fs.chmodSync(open, 0o644);
    assert.match(load(`x ${open}`) as string, /line 1: key file .*open.key can be read by others: chmod 600/);
    // a keys file others may change
    fs.chmodSync(file, 0o666);
    assert.throws(() => loadKeysFile(file, admin), /others may change it: chmod go-w/);
    assert.throws(() => loadKeysFile(path.join(dir, 'nokeys'), admin), /cannot be read \(ENOENT\)/);
  });

  it("finds a key by its identity; -K's also by the identity of clients before --keys", () => {
    const keys = load(`ci ${keyFile('ci')}`) as ReturnType<typeof loadKeysFile>;
    const ring = new KeyRing(admin, keys);
    assert.equal(ring.find(pskIdentity(readKey(keyFile('ci'))))?.name, 'ci');
    assert.equal(ring.find(pskIdentity(admin))?.name, 'admin');
    assert.equal(ring.find(PSK_IDENTITY)?.name, 'admin');
    assert.equal(ring.find(pskIdentity(readKey(keyFile('dash')))), undefined);
    assert.notEqual(pskIdentity(admin), admin.toString('hex'), 'the identity is not the key');
    ring.setOthers([]);
    assert.equal(ring.find(pskIdentity(readKey(keyFile('ci')))), undefined, 'a removed key is not found');
  });
});

describe('a client and a daemon of before --keys', () => {
  it('gets in with the shared key, presenting the only identity that daemon knows', async () => {
    const psk = Buffer.alloc(32, 9);
    const seen: string[] = [];
    // what wormholed did before --keys: the key for the identity 'wormhole', none otherwise
    const server = tls.createServer(
      {
        minVersion: 'TLSv1.3',
        ciphers: PSK_CIPHERS,
        pskCallback: (_s, identity) => (seen.push(identity), identity === PSK_IDENTITY ? psk : null),
      },
      (s) => s.end(),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const stream = await openTransport({ kind: 'tcp', host: '127.0.0.1', port }, psk);
    stream.destroy();
    assert.deepEqual(seen, [pskIdentity(psk), PSK_IDENTITY], 'its own identity first, then the old one');
    // a wrong key is refused both times
    await assert.rejects(openTransport({ kind: 'tcp', host: '127.0.0.1', port }, Buffer.alloc(32, 1)), {
      code: 'AUTH_FAILED',
    });
  });
});
