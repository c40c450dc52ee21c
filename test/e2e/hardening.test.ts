/**
 * The daemon's limits, tried as an attacker or a careless user would: bad daemon input,
 * silent and deep-nested API clients, a flood of API connections, a burst of proxied
 * connections and UDP clients past the caps, a tunnel to itself, deleting a chain's child,
 * and `ping :PORT`.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { PSK_CIPHERS, PSK_IDENTITY, readKey } from '../../src/common/key';
import { WORMHOLED, type TestDaemon, runCmd, startDaemon, writeKey } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { exchange, freePort, parseCreate, startService, udpExchange } from '../helpers/services';

/** A socket's 'close', or a rejection after `ms`. */
function closedWithin(s: net.Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A TLS connection to the daemon with its key, once the handshake is done. */
function tlsClient(d: TestDaemon): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: Number(d.tcp.split(':').pop()),
      minVersion: 'TLSv1.3',
      ciphers: PSK_CIPHERS,
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk: readKey(d.keyFile), identity: PSK_IDENTITY }),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The daemon's peak resident memory so far, in KiB. */
function peakKiB(d: TestDaemon): number {
  const status = fs.readFileSync(`/proc/${d.proc.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
}

describe('bad input to the daemon', () => {
  const suite = suiteCleanup(after);
  let dir: string;

  before(async () => {
    dir = (await startDaemon(suite)).dir;
  });

  it('gets one line saying what to do, exit 1, no stack trace', async () => {
    const key = path.join(dir, 'ok.key');
    writeKey(key);
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const base = (state: string): string[] => ['-H', `unix://${dir}/bad.sock`, '--state-dir', state];
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--bogus'], {}, /unknown flag --bogus/],
      [['--max-connections', '0'], {}, /--max-connections "0" is not a whole number/],
      [['--api-idle', 'soon'], {}, /--api-idle "soon" is not a number of seconds/],
      [['--allow-bind', 'relative/dir'], {}, /--allow-bind "relative\/dir" is not an absolute path/],
      [['--allow-bind', '/no/such/dir', '-K', key, ...base(`${dir}/s1`)], {}, /--allow-bind \/no\/such\/dir/],
      [
        ['-K', key, ...base(`${dir}/s2`)],
        { WORMHOLE_LOG: 'verbose' },
        /WORMHOLE_LOG="verbose" is not a log level/,
      ],
      [['-K', key, ...base(file)], {}, /state directory .* is a file, not a directory/],
      [['-K', key, ...base(`${file}/sub`)], {}, /state directory .* is under a file/],
      [['-K', dir, ...base(`${dir}/s3`)], {}, /key file \/.* is a directory/],
      [['-K', `${dir}/no.key`, ...base(`${dir}/s4`)], {}, /does not exist: write a key .* or leave -K out/],
      [
        ['-K', key, '-H', 'unix:///no/such/dir/w.sock', '--state-dir', `${dir}/s5`],
        {},
        /directory \/no\/such\/dir does not exist/,
      ],
    ];
    for (const [args, env, msg] of cases) {
      const r = await runCmd('env', [
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        process.execPath,
        WORMHOLED,
        ...args,
      ]);
      const what = `${Object.keys(env).join(' ')} ${args.join(' ')}`;
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
      assert.equal(lines.length, 1, `${what}: one line: ${r.stderr}`);
      assert.match(lines[0], msg, what);
      assert.doesNotMatch(r.stderr, /\bat .*:\d+:\d+|Error:/, `${what}: no stack trace`);
    }
  });
});

describe('API limits', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite, { args: ['--api-idle', '0.5', '--max-api-connections', '8'] });
  });

  it('closes an authenticated client that sends nothing', async () => {
    const s = await tlsClient(d);
    s.on('error', () => undefined);
    await closedWithin(s, 5000);
    assert.match(d.log(), /API connection idle, closed/);
  });

  it('refuses a deeply nested frame before parsing it, with memory flat', async () => {
    const before = peakKiB(d);
    const body = Buffer.from(`{"v":1,"id":1,"method":"ping","params":${'['.repeat(1000000)}`);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ path: d.socket }, () => s.write(Buffer.concat([head, body])));
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks).subarray(4).toString()));
      s.on('error', reject);
    });
    assert.match(reply, /nests deeper than 32 levels/);
    const grown = peakKiB(d) - before;
    assert.ok(grown < 32 * 1024, `peak memory grew by ${grown} KiB`);
    assert.equal((await d.cli('ping')).code, 0);
  });

  it('closes connections past --max-api-connections at once, and answers again after', async () => {
    const port = Number(d.tcp.split(':').pop());
    const sockets = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, '127.0.0.1', () => resolve(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    const closed = await Promise.all(
      sockets.map((s) =>
        closedWithin(s, 1000).then(
          () => true,
          () => false,
        ),
      ),
    );
    assert.equal(closed.filter(Boolean).length, 12, 'the 12 past the cap of 8 were closed');
    for (const s of sockets) s.destroy();
    // the idle clock and handshake timeout do not matter: their sockets are gone
    let r = await d.cli('ping');
    for (let i = 0; i < 20 && r.code !== 0; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await d.cli('ping');
    }
    assert.equal(r.code, 0, r.stderr);
    const refusals = d.log().match(/too many open \(--max-api-connections\)/g) ?? [];
    assert.ok(refusals.length <= 2, `${refusals.length} log lines for one burst`);
  });
});

describe('data path limits', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite, { args: ['--max-connections', '5', '--max-udp-sessions', '2'] });
  });

  it('refuses a burst of connections past --max-connections at once, and stays alive', async (t) => {
    const tail = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', tail);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'url', `:${tail}`);
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    // a refused connection may be reset before its client even sees it connected
    const connect = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = net.connect(head, '127.0.0.1', () => resolve(s));
        s.on('error', () => resolve(s));
      });
    const held = await Promise.all(Array.from({ length: 5 }, connect));
    await new Promise((r) => setTimeout(r, 200));
    const burst = await Promise.all(Array.from({ length: 50 }, connect));
    const refused = await Promise.all(burst.map((s) => closedWithin(s, 2000).then(() => true)));
    assert.equal(refused.length, 50);
    for (const s of [...held, ...burst]) s.destroy();
    assert.equal((await d.cli('ping')).code, 0, 'the daemon answers');
    const [seg] = (
      JSON.parse((await d.cli('list', '--json')).stdout) as { id: string; refused: number }[]
    ).filter((s) => s.id === id);
    assert.equal(seg.refused, 50);
    assert.match((await d.cli('list')).stdout, /refused=50/);
    const lines = d.log().match(/connection refused: too many open/g) ?? [];
    assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} log lines for one burst of 50`);
    // once connections close, new ones are served again
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await exchange(head, 'again'), 'againbye');
  });

  it('drops a third UDP client past --max-udp-sessions 2, and serves the first two', async (t) => {
    const tail = await freePort();
    await startService(t, null, 'udp-echo', '127.0.0.1', tail);
    const head = await freePort();
    const c = await d.cli('create', 'url', `udp://:${head}`, 'tail', 'url', `udp://:${tail}`);
    assert.equal(c.code, 0, c.stderr);
    const clients = Array.from({ length: 3 }, () => dgram.createSocket('udp4'));
    t.after(() => clients.forEach((s) => s.close()));
    const ask = (s: dgram.Socket, text: string): Promise<string> =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve('(nothing)'), 1500);
        s.once('message', (m) => {
          clearTimeout(timer);
          resolve(m.toString());
        });
        s.send(text, head, '127.0.0.1');
      });
    assert.equal(await ask(clients[0], 'one'), 'one');
    assert.equal(await ask(clients[1], 'two'), 'two');
    assert.equal(await ask(clients[2], 'three'), '(nothing)');
    assert.equal(await ask(clients[0], 'one again'), 'one again');
    assert.equal(await udpExchange(head, 'a fourth').catch(() => '(nothing)'), '(nothing)');
    assert.match(d.log(), /udp session refused: too many/);
  });
});

describe('the segment tree and peers', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon(suite);
  });

  it('refuses to delete a chain child, naming its parent; the parent deletes both', async (t) => {
    const tail = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', tail);
    const [head, mid] = [await freePort(), await freePort()];
    const c = await d.cli(
      'create',
      'id',
      'top',
      'url',
      `:${head}`,
      'chain',
      'id',
      'kid',
      'url',
      `:${mid}`,
      'tail',
      'url',
      `:${tail}`,
    );
    assert.equal(c.code, 0, c.stderr);
    const r = await d.cli('delete', 'kid');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /segment kid is a child of top, which needs it: delete top/);
    assert.equal(await exchange(head, 'x'), 'xbye', 'the chain still works');
    assert.equal((await d.cli('delete', 'top')).code, 0);
    assert.equal((await d.cli('list')).stdout, '');
  });

  it('pings a daemon named :PORT on 127.0.0.1', async () => {
    const key = fs.readFileSync(d.keyFile, 'utf8').trim();
    const peer = await startDaemon(suite, { key });
    const r = await d.cli('ping', `:${peer.tcp.split(':').pop()}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^\d+\.\d{3}$/);
  });

  it('refuses a tunnel to itself at once', async () => {
    const port = d.tcp.split(':').pop()!;
    for (const host of [`127.0.0.1:${port}`, `:${port}`]) {
      const started = Date.now();
      const r = await d.cli('tunnel-create', host);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /is this host .*: a tunnel joins two hosts/);
      assert.ok(Date.now() - started < 10_000, 'answered, not hung');
    }
    assert.equal((await d.cli('tunnel-list')).stdout, '');
    assert.equal((await d.cli('ping')).code, 0);
  });
});
