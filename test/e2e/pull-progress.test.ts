/**
 * A pull shows itself (issue 20, "Long work shows itself"): a `create` or `apply` whose
 * docker-run image is not here prints the pull's layers as the engine reports them, here
 * through a pipe (not a terminal), so as plain lines on stderr, one per layer and status
 * change, while stdout keeps the command's own answer. The engine is a fake on a unix socket
 * (the part of the Engine API a pull uses): the real daemon and CLI run, the daemon with it as
 * DOCKER_HOST; no registry, no dockerd.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, WORMHOLE, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { freePort, parseCreate } from '../helpers/services';
import { Tmux } from '../helpers/tmux';

/** What the fake engine streams for a pull: Docker's progress events, spaced out. */
const PULL_EVENTS: object[] = [
  { status: 'Pulling from wormhole-fake/slow', id: 'latest' },
  { status: 'Pulling fs layer', id: 'aaaa1111bbbb' },
  { status: 'Waiting', id: 'cccc2222dddd' },
  ...[1, 2, 3, 4].map((i) => ({
    status: 'Downloading',
    progressDetail: { current: i * 1024 * 1024, total: 4 * 1024 * 1024 },
    progress: '[==>   ]',
    id: 'aaaa1111bbbb',
  })),
  { status: 'Download complete', id: 'aaaa1111bbbb' },
  { status: 'Pull complete', id: 'aaaa1111bbbb' },
  { status: 'Pull complete', id: 'cccc2222dddd' },
  { status: 'Digest: sha256:0123' },
  { status: 'Status: Downloaded newer image for wormhole-fake/slow:latest' },
];

/** A fake engine: images it "has", a pull that streams PULL_EVENTS, no containers. */
function fakeEngine(pulls: string[]): http.Server {
  const have = new Set<string>();
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://engine');
    const image = /^\/images\/(.+)\/json$/.exec(url.pathname)?.[1];
    if (req.method === 'GET' && image !== undefined) {
      res.writeHead(have.has(image) ? 200 : 404, { 'Content-Type': 'application/json' });
      res.end(have.has(image) ? '{}' : '{"message":"No such image"}');
    } else if (req.method === 'POST' && url.pathname === '/images/create') {
      const name = url.searchParams.get('fromImage') ?? '';
      pulls.push(name);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const events = [...PULL_EVENTS];
      const next = (): void => {
        const e = events.shift();
        if (!e) {
          have.add(name);
          res.end();
          return;
        }
        res.write(`${JSON.stringify(e)}\n`);
        // spaced out past the daemon's 250 ms between a layer's byte counts
        setTimeout(next, 300);
      };
      next();
    } else if (req.method === 'GET' && url.pathname === '/containers/json') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('[]');
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"message":"not in this fake"}');
    }
  });
}

describe('a pull shows its progress', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  const pulls: string[] = [];
  /** `create url :HEAD trigger docker-run wormhole-fake/slow url :9001`, through a pipe. */
  const createLazy = (head: number) =>
    d.cli('create', 'url', `:${head}`, 'trigger', 'docker-run', 'wormhole-fake/slow', 'url', ':9001');

  before(async () => {
    const dir = fs.mkdtempSync(path.join('/tmp', 'whpull-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socket = path.join(dir, 'engine.sock');
    const engine = fakeEngine(pulls);
    await new Promise<void>((resolve) => engine.listen(socket, resolve));
    suite.after(() => new Promise<void>((resolve) => engine.close(() => resolve())));
    d = await startDaemon(suite, { env: { DOCKER_HOST: `unix://${socket}` } });
  });

  it('create: plain lines on stderr, one per layer and status, stdout only ID URL', async () => {
    const head = await freePort();
    const r = await createLazy(head);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\S+ tcp:\/\/127\.0\.0\.1:\d+\n$/, 'stdout is the answer alone');
    assert.deepEqual(pulls, ['wormhole-fake/slow']);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      'pulling wormhole-fake/slow: latest Pulling from wormhole-fake/slow',
      'pulling wormhole-fake/slow: aaaa1111bbbb Pulling fs layer',
      'pulling wormhole-fake/slow: cccc2222dddd Waiting',
      'pulling wormhole-fake/slow: aaaa1111bbbb Downloading',
      'pulling wormhole-fake/slow: aaaa1111bbbb Download complete',
      'pulling wormhole-fake/slow: aaaa1111bbbb Pull complete',
      'pulling wormhole-fake/slow: cccc2222dddd Pull complete',
      'pulling wormhole-fake/slow: Digest: sha256:0123',
      'pulling wormhole-fake/slow: Status: Downloaded newer image for wormhole-fake/slow:latest',
    ]);
    assert.equal((await d.cli('delete', parseCreate(r.stdout).id)).code, 0);

    // the image is here now: nothing pulled, nothing shown
    const again = await createLazy(head);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, '');
    assert.equal(pulls.length, 1);
    assert.equal((await d.cli('delete', parseCreate(again.stdout).id)).code, 0);
  });

  it('apply: the same lines, and --json keeps stdout one JSON document', async () => {
    const file = path.join(d.dir, 'wiring.yaml');
    fs.writeFileSync(
      file,
      `segments:\n  lazy: url :${await freePort()} trigger docker-run wormhole-fake/other url :9001\n`,
    );
    const r = await d.cli('apply', '--json', '-f', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { created: number }).created, 1);
    assert.deepEqual(pulls, ['wormhole-fake/slow', 'wormhole-fake/other']);
    assert.match(r.stderr, /^pulling wormhole-fake\/other: aaaa1111bbbb Pull complete$/m);
    assert.equal(
      r.stderr.match(/Downloading/g)?.length,
      1,
      'one line for the layer downloading, not one per count',
    );
  });

  it('at a terminal: one line per layer, redrawn in place, then the answer', async () => {
    const term = await Tmux.start(suite, 100, 30);
    const head = await freePort();
    await term.typeLine(
      `${process.execPath} ${WORMHOLE} -H unix://${d.socket} create id tty1 url :${head} trigger docker-run wormhole-fake/tty url :9001; echo "create exited $?"`,
    );
    const screen = await term.waitFor((s) => /create exited \d/.test(s), 'the create to end');
    const count = (text: string): number => screen.split('\n').filter((l) => l.trim() === text).length;
    assert.equal(count('pulling wormhole-fake/tty'), 1, screen);
    // each layer on one line, which ends with its last status (the earlier ones drawn over)
    assert.equal(count('aaaa1111bbbb: Pull complete'), 1, screen);
    assert.equal(count('cccc2222dddd: Pull complete'), 1, screen);
    assert.doesNotMatch(screen, /Downloading|Pulling fs layer|Waiting/, screen);
    assert.equal(count('Status: Downloaded newer image for wormhole-fake/slow:latest'), 1, screen);
    assert.match(screen, /\ntty1 tcp:\/\/127\.0\.0\.1:\d+\ncreate exited 0\n/, screen);
  });
});
