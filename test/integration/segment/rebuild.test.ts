/**
 * A segment built again (a restart restores it, a takeover builds it on the sockets handed
 * over) points its tail before its head accepts: a client that connects while the tail is
 * still being set (here a child on a peer, asked for again over the network) waits for it
 * instead of being dropped with "segment has no tail".
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { suiteCleanup, withHostPair } from '../../helpers/netns';
import { startClients, startService } from '../../helpers/services';
import { sleep } from '../../helpers/wait';

/** How often a new client connects: often enough to land between a head's listen and its tail. */
const EVERY_MS = 5;

describe('a remote segment built again', () => {
  const suite = suiteCleanup(after);
  const key = randomBytes(20).toString('hex');
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;

  before(async () => {
    hosts = withHostPair(suite);
    a = await startDaemon(suite, { netns: hosts.a, key });
    await startDaemon(suite, { netns: hosts.b, key });
    await startService(suite, hosts.b, 'tcp-echo', '127.0.0.1', 5432);
    const c = await a.cli('create', 'url', ':6543', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    assert.equal(c.code, 0, c.stderr);
  });

  it('across a restart: a client that connects while the remote child is asked for again is not dropped', async (t) => {
    // (clients in the backlog of a head that stops are reset by the kernel: they start after)
    assert.equal((await a.stop()).code, 0);
    const clients = await startClients(t, hosts.a, '127.0.0.1', 6543, EVERY_MS);
    a = await startDaemon(suite, { netns: hosts.a, key, dir: a.dir });
    await sleep(300);
    const seen = await clients.stop();
    // (until the daemon listens again those clients are refused, not dropped)
    assert.deepEqual([seen.dropped, seen.why], [0, []], 'no client connected and then dropped');
    assert.ok(seen.ok > 0, 'clients were served');
  });

  it('across a takeover: no client refused or dropped', async (t) => {
    const clients = await startClients(t, hosts.a, '127.0.0.1', 6543, EVERY_MS);
    await sleep(200);
    const old = a;
    a = await startDaemon(suite, { netns: hosts.a, key, dir: old.dir, takeover: true });
    assert.equal(await old.exited(), 0, 'the old daemon handed over and exited');
    await sleep(300);
    const seen = await clients.stop();
    assert.deepEqual([seen.refused, seen.dropped, seen.why], [0, 0, []], 'every client was served');
    assert.ok(seen.ok > 0, 'clients were served');
  });
});
