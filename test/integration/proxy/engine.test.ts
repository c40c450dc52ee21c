/**
 * The splice engine under what a user's traffic does to it: bulk both ways, many short
 * connections, a tail that is not there yet, a reader that stalls, a segment deleted under
 * open connections, and namespace paths that are not namespaces. Through the real daemon.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { suiteCleanup, withNetns } from '../../helpers/netns';
import { echoChecksums, exchange, freePort, startService } from '../../helpers/services';

/** The daemon's resident memory, in bytes. */
function rss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const sha = (b: Buffer): string => `${b.length} ${createHash('sha256').update(b).digest('hex')}`;

describe('the splice engine', () => {
  let d: TestDaemon;
  let ns: string;
  const suite = suiteCleanup(after);

  before(async () => {
    d = await startDaemon(suite);
    ns = withNetns(suite);
  });

  async function traffic(
    id: string,
  ): Promise<{ open: number; total: number; bytesUp: number; bytesDown: number }> {
    const r = await d.cli('list', '--json');
    const seg = (JSON.parse(r.stdout) as { id: string; traffic: never }[]).find((s) => s.id === id);
    assert.ok(seg, `segment ${id} listed`);
    return seg.traffic;
  }

  it('moves 1 GiB each way with equal checksums, and counts every byte', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 8200);
    const head = await freePort();
    const { id } = await d.create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8200`);
    const total = 1024 * 1024 * 1024;
    const r = await echoChecksums(head, total);
    assert.equal(r.received, total);
    assert.equal(r.got, r.sent);
    const tr = await traffic(id);
    assert.equal(tr.bytesUp, total);
    assert.equal(tr.bytesDown, total + 'bye'.length);
    assert.equal(tr.open, 0);
  });

  it('delivers every byte of 400 short request-then-close connections', async (t) => {
    await startService(t, ns, 'tcp-sha', '127.0.0.1', 8300);
    const head = await freePort();
    const { id } = await d.create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8300`);
    const bodies = Array.from({ length: 400 }, (_, i) => randomBytes(1 + ((i * 7919) % 100_000)));
    for (let i = 0; i < bodies.length; i += 40) {
      const batch = bodies.slice(i, i + 40);
      const answers = await Promise.all(batch.map((b) => exchange(head, b)));
      answers.forEach((a, j) => assert.equal(a, sha(batch[j]), `connection ${i + j}`));
    }
    const tr = await traffic(id);
    assert.equal(tr.total, 400);
    assert.equal(
      tr.bytesUp,
      bodies.reduce((n, b) => n + b.length, 0),
    );
  });

  it('hands a client whose dial failed back for retries, with no byte lost', async (t) => {
    const tail = await freePort();
    const head = await freePort();
    await d.create('url', `:${head}`, 'tail', 'url', `:${tail}`);
    // the client speaks first, while nothing listens at the tail yet
    const early = randomBytes(100_000);
    const answer = exchange(head, early);
    await new Promise((r) => setTimeout(r, 600));
    await startService(t, null, 'tcp-sha', '127.0.0.1', tail);
    assert.equal(await answer, sha(early));
  });

  it('keeps a stalled reader from growing the daemon: 50 MiB pushed, memory flat', async (t) => {
    await startService(t, ns, 'tcp-stall', '127.0.0.1', 8400);
    const head = await freePort();
    await d.create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8400`);
    const before = rss(d.proc.pid!);
    const pushed = await new Promise<number>((resolve) => {
      const c = net.connect(head, '127.0.0.1');
      c.on('error', () => undefined);
      const block = Buffer.alloc(1024 * 1024);
      let written = 0;
      let idle: NodeJS.Timeout | undefined;
      const stop = (): void => {
        c.destroy();
        resolve(written);
      };
      const pump = (): void => {
        clearTimeout(idle);
        while (written < 50 * block.length && c.write(block)) written += block.length;
        idle = setTimeout(stop, 1000); // nothing drained for a second: stalled
      };
      c.on('connect', pump);
      c.on('drain', pump);
    });
    const grown = rss(d.proc.pid!) - before;
    assert.ok(pushed < 50 * 1024 * 1024, `the stalled tail took all ${pushed} bytes`);
    assert.ok(grown < 16 * 1024 * 1024, `the daemon grew by ${grown} bytes behind a stalled reader`);
  });

  it('closes every open connection when its segment is deleted', async (t) => {
    await startService(t, ns, 'tcp-echo', '127.0.0.1', 8500);
    const head = await freePort();
    const { id } = await d.create('url', `:${head}`, 'tail', 'url', `tcp://${ns}@:8500`);
    const clients = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const c = net.connect(head, '127.0.0.1', () => {
              c.write('ping');
              c.once('data', () => resolve(c));
            });
            c.on('error', reject);
          }),
      ),
    );
    assert.equal((await traffic(id)).open, 20);
    const ended = clients.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve())));
    t.after(() => clients.forEach((c) => c.destroy()));
    assert.equal((await d.cli('delete', id)).code, 0);
    await Promise.all(ended);
    await assert.rejects(exchange(head, 'x'), /ECONNREFUSED/);
  });

  for (const kind of ['a FIFO', 'a directory', 'a regular file'] as const) {
    it(`refuses ${kind} as a namespace path, and goes on answering`, async (t) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whns-'));
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      let nsPath = path.join(dir, 'ns');
      if (kind === 'a FIFO') execFileSync('mkfifo', [nsPath]);
      else if (kind === 'a directory') nsPath = dir;
      else fs.writeFileSync(nsPath, 'not a namespace');
      const port = await freePort();
      for (const side of [[], ['tail', 'url', ':1']]) {
        const args = side.length
          ? ['url', `:${port}`, 'tail', 'url', `tcp://${nsPath}@:80`]
          : ['url', `tcp://${nsPath}@:${port}`, 'tail', 'url', ':1'];
        const r = await d.cli('create', ...args);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /not a network namespace/);
        assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      }
      assert.equal((await d.cli('ping')).code, 0, 'the daemon still answers');
    });
  }
});
