/**
 * Issue 18's hole in what a daemon keeps, reproduced, then closed (named for its number in
 * the issue), with real daemons: creates and deletes around a takeover (5). The store's side
 * (a live writer's temporary file) is in test/unit/store/store.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { callOnce } from '../../src/client';
import { parseDaemonAddress } from '../../src/common/address';
import { WormholeError } from '../../src/common/errors';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';

/** Was a call refused because a takeover was under way? */
const underWay = (err: unknown): boolean => err instanceof WormholeError && err.code === 'TAKEOVER_UNDER_WAY';

/** The ids `list` shows. */
async function ids(d: TestDaemon): Promise<string[]> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);
}

describe('hole 5: creates and deletes lost around a takeover', () => {
  const suite = suiteCleanup(after);

  it('never answers a delete or a create that the daemon taking over does not have', async () => {
    const old = await startDaemon(suite);
    const before: string[] = [];
    for (let i = 0; i < 40; i++)
      before.push((await old.create('id', `old-${i}`, 'url', ':0', 'tail', 'url', ':9')).id);
    const api = parseDaemonAddress(`unix://${old.socket}`);
    // deletes and creates one after another, for as long as the takeover runs: each either
    // answered (done), refused (TAKEOVER_UNDER_WAY), or cut off (its answer unknown)
    const deleted: string[] = [];
    const created: string[] = [];
    const refused: string[] = [];
    let running = true;
    const changes = (async () => {
      for (let i = 0; running; i++) {
        const id = before[i % before.length];
        await callOnce(api, null, 'delete', { id }).then(
          () => deleted.push(id),
          (err: unknown) => underWay(err) && refused.push(`delete ${id}`),
        );
        const actions = [
          { verb: 'id' as const, args: [`new-${i}`] },
          { verb: 'url' as const, args: [':0'] },
          { verb: 'tail' as const, args: [] },
          { verb: 'url' as const, args: [':9'] },
        ];
        await callOnce(api, null, 'create', { actions }).then(
          () => created.push(`new-${i}`),
          (err: unknown) => underWay(err) && refused.push(`create new-${i}`),
        );
      }
    })();
    const port = Number(old.tcp.split(':').pop());
    const next = await startDaemon(suite, { dir: old.dir, port, takeover: true });
    assert.equal(await old.exited(), 0);
    running = false;
    await changes;
    const have = await ids(next);
    for (const id of deleted) assert.ok(!have.includes(id), `${id}, deleted during the takeover, came back`);
    for (const id of created) assert.ok(have.includes(id), `${id}, created during the takeover, was lost`);
    assert.ok(refused.length > 0, 'changes during the handover were refused, to be tried again');
  });
});
