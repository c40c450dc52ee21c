/**
 * Every command's output is complete whatever stdout is (issue 20): a file, a terminal, or a
 * pipe to a slower reader. The CLI once called process.exit() right after writing, and a pipe
 * took 64 KiB before the process was gone: `wormhole list --json | jq` read invalid JSON from
 * about 90 segments on. And from about 2,000 segments the list reply was over the frame limit:
 * `list` failed, and `delete`, which resolves an id prefix through it, with it. Now `list`
 * answers a page at a time, and the CLI prints each page as it comes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tokenize } from '../../src/api/grammar';
import { LIST_PAGE } from '../../src/api/protocol';
import { connect, listAll } from '../../src/client';
import { type TestDaemon, WORMHOLE, runCmd, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';

// over the 1 MiB a reply once was (list never answered), and 64 KiB many times over
const SEGMENTS = 2000;

/**
 * `wormhole ARGS | cat`, as a shell runs it: through a real pipe (a FIFO: Node's own child
 * pipes are socket pairs, which never showed the loss). cat's output and wormhole's exit code.
 */
async function throughCat(d: TestDaemon, args: string[]): Promise<{ code: number | null; stdout: string }> {
  const fifo = path.join(d.dir, `pipe-${Math.random().toString(36).slice(2)}`);
  const made = await runCmd('mkfifo', [fifo]);
  assert.equal(made.code, 0, made.stderr);
  const cat = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  cat.stdout.on('data', (b: Buffer) => chunks.push(b));
  const catDone = new Promise<void>((resolve) => cat.on('close', () => resolve()));
  const writeEnd = fs.openSync(fifo, 'w'); // (returns once cat has opened its end)
  try {
    const cli = spawn(process.execPath, [WORMHOLE, '-H', `unix://${d.socket}`, ...args], {
      stdio: ['ignore', writeEnd, 'inherit'],
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      cli.on('error', reject);
      cli.on('exit', resolve);
    });
    fs.closeSync(writeEnd);
    await catDone;
    return { code, stdout: Buffer.concat(chunks).toString() };
  } finally {
    fs.rmSync(fifo, { force: true });
  }
}

describe('a large output through a pipe', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite);
    const c = await connect({ kind: 'unix', path: d.socket }, null);
    try {
      // heads on port 0: the daemon picks free ports, so nothing here races other tests for one
      for (let i = 0; i < SEGMENTS; i++)
        await c.call('create', { actions: tokenize(['id', `seg-${i}`, 'url', ':0', 'tail', 'url', ':9']) });
    } finally {
      c.close();
    }
  });

  it('list --json reaches the reader whole: valid JSON, every segment', async () => {
    const r = await throughCat(d, ['list', '--json']);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.length > 65536, `more than a pipe's buffer: ${r.stdout.length} bytes`);
    const doc = JSON.parse(r.stdout) as { id: string }[];
    assert.equal(doc.length, SEGMENTS, `${r.stdout.length} bytes`);
  });

  it('list answers a page at a time, and the pages hold every segment once, in order', async () => {
    const c = await connect({ kind: 'unix', path: d.socket }, null);
    try {
      const first = await c.call('list', {});
      assert.equal(first.segments.length, LIST_PAGE, 'no reply holds them all');
      assert.equal(first.next, LIST_PAGE);
      const last = await c.call('list', { from: SEGMENTS - 10, limit: 50 });
      assert.deepEqual([last.segments.length, last.next], [10, undefined], 'the last page says no more');
      const ids = (await listAll(c)).map((s) => s.id);
      assert.deepEqual(
        ids,
        Array.from({ length: SEGMENTS }, (_, i) => `seg-${i}`),
      );
    } finally {
      c.close();
    }
  });

  it('list --json is the same document printed page by page as it was whole', async () => {
    const r = await d.cli('list', '--json');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as unknown[];
    assert.equal(`${JSON.stringify(doc, null, 2)}\n`, r.stdout);
  });

  it('list, and delete by a prefix (resolved through list), answer with that many segments', async () => {
    const rows = await d.cli('list');
    assert.equal(rows.code, 0, rows.stderr);
    assert.equal(rows.stdout.trim().split('\n').length, SEGMENTS + 1, 'a header and a row per segment');
    const del = await d.cli('delete', 'seg-1999');
    assert.equal(del.code, 0, del.stderr);
    const left = JSON.parse((await d.cli('list', '--json')).stdout) as { id: string }[];
    assert.equal(left.length, SEGMENTS - 1);
    assert.ok(!left.some((s) => s.id === 'seg-1999'));
  });
});
