/**
 * Issue 18's holes, each reproduced, then closed (named for its number in the issue): what a
 * unit can show without a daemon. The end-to-end ones are in test/e2e/trust.test.ts.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import type { SegmentInfo } from '../../src/api/protocol';
import { listRows } from '../../src/cli/commands/list';
import { connect } from '../../src/client';
import { writeFileAtomic } from '../../src/common/atomicfile';
import { WormholeError } from '../../src/common/errors';
import { resolveDirs } from '../../src/common/hostpath';
import { MetricsServer } from '../../src/daemon/metrics';
import { parseDaemonOptions } from '../../src/daemon/options';
import { PendingBudget } from '../../src/daemon/pending';
import { type HandlerTable, ApiServer } from '../../src/daemon/server';
import type * as net from 'node:net';
import type { Endpoint } from '../../src/segment/endpoint';
import { confineUnixTail } from '../../src/segment/hostunix';
import { TunnelService } from '../../src/tunnel';
import { KeyRing } from '../../src/trust/keys';
import { ROOT, runCmd } from '../helpers/daemon';
import { freePort } from '../helpers/services';

const silent = pino({ level: 'silent' });

describe('hole 10: a reply over the frame limit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('becomes an error reply naming the method and the limit, and the connection goes on', async () => {
    // 2,000 rows making a reply of about 69 MiB, over the 64 MiB a reply may be
    const rows = Array.from({ length: 2000 }, (_, i) => ({
      id: `seg-${i}`,
      url: `tcp://127.0.0.1:${i}`,
      pad: 'x'.repeat(36_000),
    }));
    const handlers = {
      list: async () => ({ segments: rows }),
      ping: async () => ({}),
    } as unknown as HandlerTable;
    const server = new ApiServer(
      handlers,
      () => undefined,
      new KeyRing(Buffer.from('k'.repeat(32))),
      silent,
      {
        maxConnections: 8,
        idleMs: 30_000,
      },
    );
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
        /^the list reply is too large: \d+ bytes, over the 67108864-byte limit of a frame: /,
      );
      return true;
    });
    // the same connection still answers
    assert.deepEqual(await conn.call('ping', {}, 10_000), {});
  });
});

describe('hole 1: which unix tails are host sockets (--allow-unix)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'ok', 'sub'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'ok'), path.join(dir, 'via'));
  const allowed = resolveDirs('--allow-unix', [path.join(dir, 'via')]);
  const unix = (p: string, ns: string | null = null): Endpoint => ({
    proto: 'unix',
    ns,
    host: '',
    port: 0,
    path: p,
  });

  it('reads the flag (repeatable, absolute) and resolves its directories at start', () => {
    const o = parseDaemonOptions(['--allow-unix', '/run/a', '--allow-unix', '/srv/b'], {});
    assert.deepEqual(o.allowUnix, ['/run/a', '/srv/b']);
    assert.deepEqual(parseDaemonOptions([], {}).allowUnix, []);
    assert.throws(
      () => parseDaemonOptions(['--allow-unix', 'run'], {}),
      /--allow-unix "run" is not an absolute path/,
    );
    assert.throws(
      () => resolveDirs('--allow-unix', ['/no/such']),
      /--allow-unix \/no\/such cannot be used \(ENOENT\)/,
    );
    assert.deepEqual(allowed, [path.join(dir, 'ok')]);
  });

  it('confines an allowed path to its directory: dialed there as the root of the lookup', () => {
    const ep = confineUnixTail(unix(path.join(dir, 'via', 'sub', 'app.sock')), allowed);
    assert.deepEqual(ep.confined, { root: path.join(dir, 'ok'), path: '/sub/app.sock' });
    assert.equal(ep.path, path.join(dir, 'via', 'sub', 'app.sock'), 'shown as the user wrote it');
  });

  it('treats the root of a host process (/proc/PID/ns/net) as the host, and leaves the rest alone', () => {
    assert.throws(
      () => confineUnixTail(unix('/var/run/docker.sock', `/proc/${process.pid}/ns/net`), allowed),
      /outside the --allow-unix/,
    );
    assert.throws(
      () => confineUnixTail(unix('/var/run/docker.sock'), []),
      /allowed only under wormholed --allow-unix DIR/,
    );
    const abstract = unix('@name');
    assert.equal(confineUnixTail(abstract, []), abstract);
    const tcp: Endpoint = { proto: 'tcp', ns: null, host: '127.0.0.1', port: 80 };
    assert.equal(confineUnixTail(tcp, []), tcp);
  });
});

/** Enough of a TCP socket for the budget: its addresses, bytes read, destroy. */
class FakeSocket extends EventEmitter {
  static port = 40000;
  readonly remotePort = FakeSocket.port++;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 9999;
  bytesRead = 0;
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

describe('hole 3: the budget of connections still in their handshake', () => {
  const budget = (perSource: number, total: number, firstBytesMs = 60_000): [PendingBudget, string[]] => {
    const refused: string[] = [];
    return [new PendingBudget({ perSource, total, firstBytesMs }, (_s, why) => refused.push(why)), refused];
  };
  const sock = (from: string): FakeSocket & net.Socket => new FakeSocket(from) as FakeSocket & net.Socket;

  it('refuses past the budget of one address, not another address', () => {
    const [b, refused] = budget(2, 100);
    const [a1, a2, a3, c1] = [sock('10.0.0.1'), sock('10.0.0.1'), sock('10.0.0.1'), sock('10.0.0.2')];
    assert.deepEqual([b.admit(a1), b.admit(a2), b.admit(a3), b.admit(c1)], [true, true, false, true]);
    assert.ok(a3.destroyed);
    assert.match(refused[0], /2 from 10.0.0.1 still in their TLS handshake/);
    // one that authenticated, or closed, leaves room
    b.done(a1);
    a2.destroy();
    assert.equal(b.size, 1);
    assert.ok(b.admit(sock('10.0.0.1')) && b.admit(sock('10.0.0.1')));
  });

  it("when full, makes room by closing the oldest of the address holding the most, never a client's one", () => {
    const [b, refused] = budget(10, 4);
    const flood = [sock('10.0.0.9'), sock('10.0.0.9'), sock('10.0.0.9')];
    for (const s of flood) assert.ok(b.admit(s));
    const client = sock('10.0.0.1');
    assert.ok(b.admit(client));
    // full: a newcomer from elsewhere takes the place of the flood's oldest
    const peer = sock('10.0.0.2');
    assert.ok(b.admit(peer));
    assert.deepEqual(
      flood.map((s) => s.destroyed),
      [true, false, false],
    );
    // a newcomer of the flood's, its address holding the most, is refused; nobody else is touched
    assert.equal(b.admit(sock('10.0.0.9')), false);
    assert.ok(!flood[1].destroyed && !client.destroyed && !peer.destroyed);
    // and with every address holding one, a newcomer from one of them is refused
    const [even, why] = budget(10, 2);
    assert.ok(even.admit(sock('10.0.0.1')) && even.admit(sock('10.0.0.2')));
    assert.equal(even.admit(sock('10.0.0.3')), true, 'holds none: takes a place');
    assert.equal(even.admit(sock('10.0.0.3')), false, 'holds as many as the most: refused');
    assert.match(why[0], /2 connections still in their TLS handshake/);
    assert.match(refused[0], /4 connections still in their TLS handshake/);
  });

  it('closes a socket that sends nothing in time, not one that spoke', async () => {
    const [b] = budget(10, 10, 20);
    const [silent, spoke] = [sock('10.0.0.1'), sock('10.0.0.1')];
    b.admit(silent);
    b.admit(spoke);
    spoke.bytesRead = 300;
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual([silent.destroyed, spoke.destroyed], [true, false]);
    assert.equal(b.size, 1);
  });
});

describe('hole 11: the smaller ones', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps an unreadable tunnel state file aside, and says so, instead of reading "no tunnels"', () => {
    const file = path.join(dir, 'tunnels.json');
    const half = '[{"host":"myserver","iface":"wh0a0b0c0d0e","loc';
    fs.writeFileSync(file, half);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const peers = { call: () => Promise.reject(new Error('no peers here')) };
    new TunnelService(
      { stateFile: file, keyDir: dir, cidr: '100.65.0.0/14', ports: [4500, 4599] },
      peers,
      log,
    );
    assert.equal(fs.readFileSync(`${file}.corrupt`, 'utf8'), half, 'kept aside as it was');
    assert.ok(!fs.existsSync(file));
    const line = JSON.parse(lines.find((l) => /tunnel state unreadable/.test(l)) ?? '{}') as Record<
      string,
      unknown
    >;
    assert.equal(line.level, 50, 'an error line');
    assert.equal(line.keptAs, `${file}.corrupt`);
  });

  it('writes a file atomically: the whole new text or the old, mode 0600, no temporary file left', () => {
    const file = path.join(dir, 'state.json');
    writeFileAtomic(file, 'old');
    writeFileAtomic(file, '[]');
    assert.equal(fs.readFileSync(file, 'utf8'), '[]');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
    );
  });

  it('list escapes control characters in what came from outside, as top does', () => {
    const seg = {
      id: 'web',
      url: 'tcp://127.0.0.1:8080',
      state: 'failed',
      error: 'bad\x1b]0;owned\x07\nrm -rf',
      head: { proto: 'unix', path: '/run/a\x1b[2J.sock' },
      tail: null,
    } as unknown as SegmentInfo;
    const text = listRows([seg]).join('\n');
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(text.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/);
    assert.equal(text.split('\n').length, 2, 'a header and one line');
    assert.match(text, /error: bad\?\]0;owned\?\?rm -rf/);
  });

  it('/metrics reads the tunnels (ip, wg) once for a burst of scrapes', async () => {
    let reads = 0;
    const m = new MetricsServer(
      {
        segments: () => [],
        peers: () => [],
        tunnels: async () => {
          reads++;
          return [
            { host: 'peer', iface: 'wh0', driver: 'wireguard', txBytes: 1, rxBytes: 2, lastHandshake: null },
          ];
        },
      },
      silent,
    );
    const port = await freePort();
    await m.listen({ kind: 'tcp', host: '127.0.0.1', port });
    after(() => m.close());
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.match(await res.text(), /host="peer"/);
    }
    assert.equal(reads, 1);
  });
});

describe('hole 11: the namespace thread cannot start', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-trust-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('rejects each job, and lets the process exit (its count of waiting jobs kept right)', async () => {
    // a process at its thread limit: pthread_create fails once the flag file exists
    const shim = path.join(dir, 'nothreads.so');
    const built = await runCmd('cc', [
      '-shared',
      '-fPIC',
      '-o',
      shim,
      path.join(ROOT, 'test/fixtures/nothreads.c'),
      '-ldl',
    ]);
    assert.equal(built.code, 0, built.stderr);
    const flag = path.join(dir, 'no-threads');
    const script = `
      const { native } = require(${JSON.stringify(path.join(ROOT, 'dist/src/native'))});
      const n = native();
      require('node:fs').writeFileSync(${JSON.stringify(flag)}, '');
      Promise.allSettled([n.openNamespace(null), n.openRoot(null)]).then((all) =>
        console.log(all.map((r) => r.status === 'rejected' ? r.reason.code + ': ' + r.reason.message : 'fd').join('\\n')));`;
    // (with a promise left unsettled, or the addon's callback still held, it would never exit)
    const r = await runCmd(process.execPath, ['-e', script], {
      // (after what is preloaded already: AddressSanitizer's runtime under test/asan.sh)
      env: { LD_PRELOAD: [process.env.LD_PRELOAD, shim].filter(Boolean).join(' '), WH_NO_THREADS: flag },
      timeoutMs: 10_000,
    });
    assert.equal(r.code, 0, `exited by itself: ${r.stdout}${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0], /^EAGAIN: \(host namespace\) cannot start the namespace thread/);
    assert.match(lines[1], /^EAGAIN: \/ cannot start the namespace thread/);
  });
});
