/**
 * Peers and keys (SPEC "Trust"): two test hosts, each with its own daemon and key. Host b
 * knows a's key as `a` (with `peer`, bounded by `permit-open`) and c's as `c` (without
 * `peer`): a's remote children are made within a's permit-open and owned by `a`; a child
 * outside it is refused with nothing made; a daemon holding c's key is refused as a peer.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { suiteCleanup, withHostPair } from '../../helpers/netns';
import { exchangeIn, parseCreate, startService } from '../../helpers/services';

/** What b's list --json says of its segments. */
async function listed(d: TestDaemon): Promise<{ id: string; owner?: string; remote: boolean }[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: string; owner?: string; remote: boolean }[];
}

describe('peers hold keys with rights', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;
  let c: TestDaemon;

  before(async () => {
    hosts = withHostPair(suite);
    // a and c: daemons on host a, each with a key of its own (c on another API port)
    a = await startDaemon(suite, { netns: hosts.a });
    c = await startDaemon(suite, { netns: hosts.a, port: 9998 });
    const dir = fs.mkdtempSync(path.join(path.dirname(a.dir), 'whkeys-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const keys = path.join(dir, 'keys');
    fs.writeFileSync(keys, `a ${a.keyFile} peer,permit-open=127.0.0.1:5432\nc ${c.keyFile}\n`, {
      mode: 0o600,
    });
    b = await startDaemon(suite, { netns: hosts.b, args: ['--keys', keys] });
  });

  it("makes a peer's child within its permit-open, owned by its key", async () => {
    await startService(suite, hosts.b, 'tcp-echo', '127.0.0.1', 5432);
    const r = await a.cli('create', 'url', ':6543', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    assert.equal(r.code, 0, r.stderr);
    parseCreate(r.stdout);
    assert.equal(await exchangeIn(hosts.a, 6543, 'hello'), 'hellobye');
    const onB = await listed(b);
    assert.equal(onB.length, 1);
    assert.deepEqual([onB[0].remote, onB[0].owner], [true, 'a']);
    assert.match(b.log(), /"key":"a","method":"peer-create"/);
  });

  it("refuses a child whose tail is outside the peer's permit-open: nothing made on either host", async () => {
    const before = (await listed(a)).length;
    const r = await a.cli('create', 'url', ':6544', 'remote', hosts.ipB, 'tail', 'url', ':22');
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /key "a" may not open 127\.0\.0\.1:22 \(permit-open=127\.0\.0\.1:5432\)/);
    assert.equal((await listed(b)).length, 1, 'no child on b');
    assert.equal((await listed(a)).length, before, 'no segment on a');
  });

  it('refuses a daemon whose key has no peer option', async () => {
    const r = await c.cli('create', 'url', ':6545', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    assert.equal(r.code, 1, r.stdout);
    assert.equal(
      r.stderr,
      'wormhole: key "c" may not act as a peer (channel): its line in the keys file has no peer option\n',
    );
    assert.equal((await listed(b)).length, 1, 'no child on b');
    assert.equal((await listed(c)).length, 0, 'no segment on c');
  });
});
