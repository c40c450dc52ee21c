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
import { type HandlerTable, ApiServer } from '../../src/daemon/server';

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
