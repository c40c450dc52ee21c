/**
 * More kinds of socket (issue 12), on the host and in namespaces, through the real daemon and
 * CLI, with both movers: unix heads and tails (paths and abstract names), conversion between
 * tcp and unix with half-close, stale and foreign files where a head would bind, abstract
 * names per network namespace, and the PROXY protocol header read byte for byte by a backend.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { native } from '../../src/native';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { forEachMover, moverOpts } from '../helpers/movers';
import { type Cleanup, suiteCleanup, withNetns } from '../helpers/netns';
import {
  echoChecksums,
  exchange,
  freePort,
  parseCreate,
  startService,
  unixExchange,
} from '../helpers/services';

/** The PROXY v2 signature, written out here so that the test does not lean on the code it checks. */
const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** Two bytes, big endian. */
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/**
 * A backend that keeps every byte each connection sent until its FIN, then answers "ok":
 * what a PROXY-aware server reads first, exactly.
 */
async function recordingBackend(t: { after(fn: () => unknown): void }): Promise<{
  port: number;
  next(): Promise<Buffer>;
}> {
  const got: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => {
      const all = Buffer.concat(chunks);
      const w = waiters.shift();
      if (w) w(all);
      else got.push(all);
      c.end('ok');
    });
    c.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () =>
      new Promise<Buffer>((resolve) => (got.length ? resolve(got.shift()!) : waiters.push(resolve))),
  };
}

/** Connect, send `data`, half-close, wait for the answer: the client's own port, and the answer. */
function clientSend(opts: net.NetConnectOpts, data: string): Promise<{ port: number; answer: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ ...opts, allowHalfOpen: true } as net.NetConnectOpts, () => c.end(data));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve({ port: c.localPort ?? 0, answer: Buffer.concat(chunks).toString() }));
    c.on('error', reject);
  });
}

/** A command's argv, run inside `ns` (null: here). */
function inNs(ns: string | null, argv: string[]): [string, string[]] {
  return ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0], argv.slice(1)];
}

/**
 * An abstract unix socket `name` in `ns` answering `text` to each connection (socat: Node
 * pads an abstract name to the whole sun_path, which makes it another name).
 */
async function abstractHello(t: Cleanup, ns: string | null, name: string, text: string): Promise<void> {
  const [file, args] = inNs(ns, ['socat', `ABSTRACT-LISTEN:${name},fork`, `EXEC:printf ${text}`]);
  const child = spawn(file, args, { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  for (let i = 0; i < 50; i++) {
    const [f, a] = inNs(ns, ['cat', '/proc/net/unix']);
    if (execFileSync(f, a, { encoding: 'utf8' }).includes(` @${name}\n`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`socat did not listen on @${name}`);
}

/** Send `data` to the abstract name from inside `ns` (null: here), half-close, read the answer. */
function abstractExchange(ns: string | null, name: string, data: string): Promise<string> {
  const [file, args] = inNs(ns, ['socat', '-t', '2', '-', `ABSTRACT-CONNECT:${name}`]);
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, (err, stdout, stderr) =>
      err ? reject(new Error(stderr)) : resolve(stdout),
    );
    // (a socat refused at once may be gone before our bytes are written)
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(data);
  });
}

forEachMover('unix sockets, conversion and the PROXY protocol', (mover) => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let dir: string;

  before(async () => {
    d = await startDaemon(suite, moverOpts(mover));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whu-'));
    suite.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  });

  async function create(...args: string[]): Promise<{ id: string; url: string; port: number }> {
    const r = await d.cli('create', ...args);
    assert.equal(r.code, 0, r.stderr);
    return parseCreate(r.stdout);
  }

  it('a unix head reaches a TCP service, half-close included; its file is 0660 and goes with the segment', async (t) => {
    const port = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', port);
    const sock = path.join(dir, 'head.sock');
    const seg = await create('url', `unix://${sock}`, 'tail', 'url', `:${port}`);
    assert.equal(seg.url, `unix://${sock}`);
    const st = fs.statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660, 'the default mode');
    // the echo says "bye" only after the client's FIN crossed unix -> tcp, and it still
    // reaches the client whose writing side is shut
    assert.equal(await unixExchange(sock, 'ping'), 'pingbye');
    const list = await d.cli('list');
    assert.match(list.stdout, new RegExp(`^${seg.id} +unix://${sock} +tcp://127.0.0.1:${port} +ready`, 'm'));
    const [info] = JSON.parse((await d.cli('list', '--json')).stdout) as {
      head: { proto: string; path: string };
    }[];
    assert.deepEqual([info.head.proto, info.head.path], ['unix', sock]);
    // the access log names a unix client as such (it has no address)
    assert.match(d.log(), new RegExp(`"segment":"${seg.id}","client":"unix",.*"msg":"connection"`));
    assert.equal((await d.cli('delete', seg.id)).code, 0);
    assert.ok(!fs.existsSync(sock), 'the socket file went with the segment');
  });

  it('gives a head socket file the mode asked for (?mode=0600)', async () => {
    const sock = path.join(dir, 'private.sock');
    const seg = await create('url', `unix://${sock}?mode=0600`, 'tail', 'url', ':9');
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    await d.cli('delete', seg.id);
  });

  it('a TCP head reaches a unix service: half-close, and 32 MiB each way intact', async (t) => {
    const sock = path.join(dir, 'service.sock');
    await startService(t, null, 'unix-echo', sock, '-');
    const head = await freePort();
    await create('url', `:${head}`, 'tail', 'url', `unix://${sock}`);
    assert.equal(await exchange(head, 'hello'), 'hellobye');
    const sums = await echoChecksums(head, 32 * 1024 * 1024);
    assert.equal(sums.received, 32 * 1024 * 1024);
    assert.equal(sums.got, sums.sent);
  });

  it('replaces a stale socket file, refuses a live one and any other kind of file', async (t) => {
    // stale: a socket file nobody listens on any more (a daemon that was killed)
    const stale = path.join(dir, 'stale.sock');
    fs.closeSync(native().listenUnix(stale, 1));
    const seg = await create('url', `unix://${stale}`, 'tail', 'url', ':9');
    assert.ok(fs.statSync(stale).isSocket());
    await d.cli('delete', seg.id);

    const live = path.join(dir, 'live.sock');
    await startService(t, null, 'unix-hello', live, 'mine');
    let r = await d.cli('create', 'url', `unix://${live}`, 'tail', 'url', ':9');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /something listens there already/);
    assert.equal(await unixExchange(live, ''), 'mine', 'the live socket is left alone');

    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'keep me');
    fs.mkdirSync(path.join(dir, 'adir'));
    fs.symlinkSync(file, path.join(dir, 'alink'));
    const refusals: [string, RegExp][] = [
      [file, /exists and is not a socket: remove it or pick another path/],
      [path.join(dir, 'adir'), /is a directory, not a socket/],
      [path.join(dir, 'alink'), /is a symbolic link, not a socket/],
      [path.join(dir, 'nodir', 'x.sock'), /its directory does not exist/],
    ];
    for (const [p, why] of refusals) {
      r = await d.cli('create', 'url', `unix://${p}`, 'tail', 'url', ':9');
      assert.equal(r.code, 1, p);
      assert.match(r.stderr, why);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
    assert.ok(fs.lstatSync(path.join(dir, 'alink')).isSymbolicLink());
  });

  it("dials an abstract name in another namespace, not the daemon's own of the same name", async (t) => {
    const ns = withNetns(t);
    const name = `wh-${randomBytes(4).toString('hex')}`;
    await abstractHello(t, ns, name, 'from-the-namespace');
    await abstractHello(t, null, name, 'from-the-host');
    const [a, b] = [await freePort(), await freePort()];
    await create('url', `:${a}`, 'tail', 'url', `unix://${ns}@@${name}`);
    await create('url', `:${b}`, 'tail', 'url', `unix://@${name}`);
    assert.equal(await exchange(a, ''), 'from-the-namespace');
    assert.equal(await exchange(b, ''), 'from-the-host');

    // and an abstract head lives in its namespace: reached from inside, not from the host
    const port = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', port);
    const head = `wh-head-${randomBytes(4).toString('hex')}`;
    await create('url', `unix://${ns}@@${head}`, 'tail', 'url', `:${port}`);
    assert.equal(await abstractExchange(ns, head, 'inside'), 'insidebye');
    await assert.rejects(abstractExchange(null, head, 'outside'), /Connection refused/);
  });

  it('balances between unix tails and a TCP one (also), each a tail of its own', async (t) => {
    const [a, b] = [path.join(dir, 'a.sock'), path.join(dir, 'b.sock')];
    await startService(t, null, 'unix-hello', a, 'A');
    await startService(t, null, 'unix-hello', b, 'B');
    const port = await freePort();
    await startService(t, null, 'tcp-port', '127.0.0.1', port);
    const head = await freePort();
    await create(
      'url',
      `:${head}`,
      'tail',
      'url',
      `unix://${a}`,
      'also',
      'url',
      `unix://${b}`,
      'also',
      'url',
      `tcp://:${port}`,
    );
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await exchange(head, ''));
    assert.deepEqual([...seen].sort(), ['A', 'B', String(port)].sort());
  });

  it('refuses what cannot be joined, in one line each', async () => {
    const cases: [string[], RegExp][] = [
      [['url', 'udp://:5300', 'tail', 'url', `unix://${dir}/x.sock`], /udp joins only udp/],
      [['url', `unix://${dir}/y.sock`, 'tail', 'url', 'udp://:53'], /udp joins only udp/],
      [['url', 'udp://:5301', 'tail', 'url', ':53', 'proxy-protocol', 'v1'], /needs a tcp or unix tail/],
      [['url', ':5302', 'proxy-protocol', 'v1'], /proxy-protocol sets the tail/],
      [['url', ':5303', 'tail', 'proxy-protocol', 'v3'], /expected v1 or v2/],
      [['url', 'unix://@same', 'tail', 'url', 'unix://@same'], /is the head itself/],
      [
        ['url', `unix://${dir}/z.sock`, 'tail', 'url', `unix://${dir}/t.sock?mode=0600`],
        /\?mode is for a head/,
      ],
    ];
    const ids = async (): Promise<string[]> =>
      (JSON.parse((await d.cli('list', '--json')).stdout) as { id: string }[]).map((x) => x.id);
    const before = await ids();
    for (const [words, why] of cases) {
      const r = await d.cli('create', ...words);
      assert.notEqual(r.code, 0, words.join(' '));
      assert.match(r.stderr, why);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
    assert.deepEqual(await ids(), before, 'nothing was made');
  });

  it('starts each connection with the PROXY header: v1 and v2, IPv4 and IPv6, byte for byte', async (t) => {
    const backend = await recordingBackend(t);
    const [h1, h2, h3, h4] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const tail = ['tail', 'url', `:${backend.port}`];
    await create('url', `:${h1}`, ...tail, 'proxy-protocol', 'v1');
    await create('url', `[::1]:${h2}`, ...tail, 'proxy-protocol', 'v1');
    await create('url', `:${h3}`, ...tail, 'proxy-protocol', 'v2');
    await create('url', `[::1]:${h4}`, ...tail, 'proxy-protocol', 'v2');

    let c = await clientSend({ host: '127.0.0.1', port: h1 }, 'payload');
    assert.equal(c.answer, 'ok');
    assert.equal(
      (await backend.next()).toString(),
      `PROXY TCP4 127.0.0.1 127.0.0.1 ${c.port} ${h1}\r\npayload`,
    );

    c = await clientSend({ host: '::1', port: h2 }, 'payload');
    assert.equal((await backend.next()).toString(), `PROXY TCP6 ::1 ::1 ${c.port} ${h2}\r\npayload`);

    c = await clientSend({ host: '127.0.0.1', port: h3 }, 'payload');
    const v4 = Buffer.concat([
      SIG,
      Buffer.from([0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 127, 0, 0, 1]),
      u16(c.port),
      u16(h3),
      Buffer.from('payload'),
    ]);
    assert.equal((await backend.next()).toString('hex'), v4.toString('hex'));

    c = await clientSend({ host: '::1', port: h4 }, 'payload');
    const loop6 = Buffer.alloc(16);
    loop6[15] = 1;
    const v6 = Buffer.concat([
      SIG,
      Buffer.from([0x21, 0x21, 0x00, 0x24]),
      loop6,
      loop6,
      u16(c.port),
      u16(h4),
      Buffer.from('payload'),
    ]);
    assert.equal((await backend.next()).toString('hex'), v6.toString('hex'));
  });

  it('says UNKNOWN (v1) and gives the head path (v2) for a unix client', async (t) => {
    const backend = await recordingBackend(t);
    const [s1, s2] = [path.join(dir, 'pp1.sock'), path.join(dir, 'pp2.sock')];
    await create('url', `unix://${s1}`, 'tail', 'url', `:${backend.port}`, 'proxy-protocol', 'v1');
    await create('url', `unix://${s2}`, 'tail', 'url', `:${backend.port}`, 'proxy-protocol', 'v2');
    assert.equal((await clientSend({ path: s1 }, 'x')).answer, 'ok');
    assert.equal((await backend.next()).toString(), 'PROXY UNKNOWN\r\nx');
    assert.equal((await clientSend({ path: s2 }, 'x')).answer, 'ok');
    const dst = Buffer.alloc(108);
    dst.write(s2);
    const want = Buffer.concat([
      SIG,
      Buffer.from([0x21, 0x31, 0x00, 0xd8]),
      Buffer.alloc(108),
      dst,
      Buffer.from('x'),
    ]);
    assert.equal((await backend.next()).toString('hex'), want.toString('hex'));
  });
});

describe('a unix head across a crash, a restart and a takeover', () => {
  const suite = suiteCleanup(after);

  it('is bound again over the stale file a crash left, kept by a takeover, removed by the last delete', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whu-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', port);
    const sock = path.join(dir, 'kept.sock');
    let d = await startDaemon(suite);
    const r = await d.cli(
      'create',
      'id',
      'kept',
      'url',
      `unix://${sock}?mode=0600`,
      'tail',
      'url',
      `:${port}`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await unixExchange(sock, 'one'), 'onebye');

    // killed: the file stays, nobody listens; the next daemon replaces it
    await d.stop('SIGKILL');
    assert.ok(fs.statSync(sock).isSocket(), 'a crash leaves the file');
    d = await startDaemon(suite, { dir: d.dir });
    assert.equal(await unixExchange(sock, 'two'), 'twobye');
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'with the mode asked for');

    // stopped: the file goes with the daemon's segments, and comes back with the next one
    assert.equal((await d.stop()).code, 0);
    assert.ok(!fs.existsSync(sock), 'a clean stop removes it');
    d = await startDaemon(suite, { dir: d.dir });
    assert.equal(await unixExchange(sock, 'three'), 'threebye');

    // taken over: the same socket goes on, from the new daemon, which removes it at delete
    const next = await startDaemon(suite, {
      dir: d.dir,
      port: Number(d.tcp.split(':').pop()),
      takeover: true,
    });
    assert.equal(await d.exited(), 0);
    assert.ok(fs.existsSync(sock), 'the old daemon leaves the file to its successor');
    assert.equal(await unixExchange(sock, 'four'), 'fourbye');
    assert.equal((await next.cli('delete', 'kept')).code, 0);
    assert.ok(!fs.existsSync(sock), 'the successor removes it');
  });
});
