/**
 * Issue 18's holes, each reproduced, then closed (named for its number in the issue): what a
 * unit can show without a daemon. The end-to-end ones are in test/e2e/trust.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { connect } from '../../src/client';
import { WormholeError } from '../../src/common/errors';
import { resolveDirs } from '../../src/common/hostpath';
import { parseDaemonOptions } from '../../src/daemon/options';
import { type HandlerTable, ApiServer } from '../../src/daemon/server';
import type { Endpoint } from '../../src/segment/endpoint';
import { confineUnixTail } from '../../src/segment/hostunix';

const silent = pino({ level: 'silent' });

describe('hole 10: a reply over the frame limit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('becomes an error reply naming the method and the limit, and the connection goes on', async () => {
    // 2,000 segments whose rows make a reply of about 1.5 MiB, over the 1 MiB frame
    const rows = Array.from({ length: 2000 }, (_, i) => ({
      id: `seg-${i}`,
      url: `tcp://127.0.0.1:${i}`,
      pad: 'x'.repeat(800),
    }));
    const handlers = {
      list: async () => ({ segments: rows }),
      ping: async () => ({}),
    } as unknown as HandlerTable;
    const server = new ApiServer(handlers, () => undefined, Buffer.from('k'.repeat(32)), silent, {
      maxConnections: 8,
      idleMs: 30_000,
    });
    const sock = path.join(dir, 'api.sock');
    await server.listen({ kind: 'unix', path: sock });
    after(() => server.close());
    const conn = await connect({ kind: 'unix', path: sock }, null);
    after(() => conn.close());
    // (a reply that never came would end in NO_REPLY, not in the code asserted)
    await assert.rejects(conn.call('list', {}, 10_000), (err: unknown) => {
      assert.ok(err instanceof WormholeError);
      assert.equal(err.code, 'REPLY_TOO_LARGE');
      assert.match(
        err.message,
        /^the list reply is too large: \d+ bytes, over the 1048576-byte limit of a frame: /,
      );
      return true;
    });
    // the same connection still answers
    assert.deepEqual(await conn.call('ping', {}, 10_000), {});
  });
});

describe('hole 1: which unix tails are host sockets (--allow-unix)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'ok', 'sub'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'ok'), path.join(dir, 'via'));
  const allowed = resolveDirs('--allow-unix', [path.join(dir, 'via')]);
  const unix = (p: string, ns: string | null = null): Endpoint => ({
    proto: 'unix',
    ns,
    host: '',
    port: 0,
    path: p,
  });

  it('reads the flag (repeatable, absolute) and resolves its directories at start', () => {
    const o = parseDaemonOptions(['--allow-unix', '/run/a', '--allow-unix', '/srv/b'], {});
    assert.deepEqual(o.allowUnix, ['/run/a', '/srv/b']);
    assert.deepEqual(parseDaemonOptions([], {}).allowUnix, []);
    assert.throws(
      () => parseDaemonOptions(['--allow-unix', 'run'], {}),
      /--allow-unix "run" is not an absolute path/,
    );
    assert.throws(
      () => resolveDirs('--allow-unix', ['/no/such']),
      /--allow-unix \/no\/such cannot be used \(ENOENT\)/,
    );
    assert.deepEqual(allowed, [path.join(dir, 'ok')]);
  });

  it('confines an allowed path to its directory: dialed there as the root of the lookup', () => {
    const ep = confineUnixTail(unix(path.join(dir, 'via', 'sub', 'app.sock')), allowed);
    assert.deepEqual(ep.confined, { root: path.join(dir, 'ok'), path: '/sub/app.sock' });
    assert.equal(ep.path, path.join(dir, 'via', 'sub', 'app.sock'), 'shown as the user wrote it');
  });

  it('treats the root of a host process (/proc/PID/ns/net) as the host, and leaves the rest alone', () => {
    assert.throws(
      () => confineUnixTail(unix('/var/run/docker.sock', `/proc/${process.pid}/ns/net`), allowed),
      /outside the --allow-unix/,
    );
    assert.throws(
      () => confineUnixTail(unix('/var/run/docker.sock'), []),
      /allowed only under wormholed --allow-unix DIR/,
    );
    const abstract = unix('@name');
    assert.equal(confineUnixTail(abstract, []), abstract);
    const tcp: Endpoint = { proto: 'tcp', ns: null, host: '127.0.0.1', port: 80 };
    assert.equal(confineUnixTail(tcp, []), tcp);
  });
});
