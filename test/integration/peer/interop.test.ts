/**
 * A daemon whose engine carries its channels beside a peer whose channels are JavaScript's
 * (WORMHOLE_ENGINE=off): the `channel` request settles on the format both speak, whichever
 * side dials, and a remote leg works both ways. Two test hosts, a daemon on each.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { suiteCleanup, withHostPair } from '../../helpers/netns';
import { exchangeIn, parseCreate, startService } from '../../helpers/services';

describe('a daemon on the engine and a peer on JavaScript', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;

  before(async () => {
    hosts = withHostPair(suite);
    const key = randomBytes(20).toString('hex');
    a = await startDaemon(suite, { netns: hosts.a, key });
    b = await startDaemon(suite, { netns: hosts.b, key, env: { WORMHOLE_ENGINE: 'off' } });
  });

  it('carry a remote leg whichever of them dials', async (t) => {
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 5432);
    await startService(t, hosts.a, 'tcp-echo', '127.0.0.1', 5442);
    const fromA = await a.cli('create', 'url', ':6543', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    assert.equal(fromA.code, 0, fromA.stderr);
    const fromB = await b.cli('create', 'url', ':6553', 'remote', hosts.ipA, 'tail', 'url', ':5442');
    assert.equal(fromB.code, 0, fromB.stderr);
    for (let i = 0; i < 3; i++) {
      assert.equal(await exchangeIn(hosts.a, 6543, `a${i}`), `a${i}bye`, 'engine dialing JavaScript');
      assert.equal(await exchangeIn(hosts.b, 6553, `b${i}`), `b${i}bye`, 'JavaScript dialing the engine');
    }
    const up = (d: TestDaemon): Promise<string[]> =>
      d.cli('peers', '--json').then((r) => (JSON.parse(r.stdout) as { state: string }[]).map((p) => p.state));
    assert.deepEqual(await up(a), ['up']);
    assert.deepEqual(await up(b), ['up']);
    assert.equal((await a.cli('delete', parseCreate(fromA.stdout).id)).code, 0);
    assert.equal((await b.cli('delete', parseCreate(fromB.stdout).id)).code, 0);
  });
});
