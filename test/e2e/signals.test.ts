/**
 * The daemon's signals and its systemd protocol: SIGHUP rotates the key (new connections
 * only; a key file that cannot be used keeps the old key), SIGUSR1 opens no debugger, and
 * sd_notify tells a Type=notify unit READY=1 (with MAINPID), RELOADING=1 / READY=1 around a
 * reload and STOPPING=1, through the addon's AF_UNIX datagram export.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { connect } from '../../src/client';
import { parseDaemonAddress } from '../../src/common/address';
import { readKey } from '../../src/common/key';
import { sdNotify } from '../../src/daemon/notify';
import { native } from '../../src/native';
import { type TestDaemon, startDaemon, writeKey } from '../helpers/daemon';
import { startNotifyReceiver } from '../helpers/notify';
import { exchange, freePort, parseCreate, startService } from '../helpers/services';

/** Wait until the daemon's log has `count` lines matching `re` (a bound, not a timing check). */
async function waitForLog(d: TestDaemon, re: RegExp, count = 1): Promise<void> {
  const global = new RegExp(re.source, 'g');
  for (let i = 0; i < 200; i++) {
    if ((d.log().match(global) ?? []).length >= count) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${count}× ${re} in the daemon's log: ${d.log()}`);
}

/** How many log lines match. */
function countLog(d: TestDaemon, re: RegExp): number {
  return (d.log().match(new RegExp(re.source, 'g')) ?? []).length;
}

/** SIGHUP, and wait for the reload's verdict (good or bad) in the log. */
async function hangUp(d: TestDaemon): Promise<void> {
  const verdict = /"msg":"key (reloaded|not reloaded[^"]*)"/;
  const before = countLog(d, verdict);
  assert.ok(d.proc.pid);
  process.kill(d.proc.pid, 'SIGHUP');
  await waitForLog(d, verdict, before + 1);
}

/** A key file holding the same key as `from` (what a client kept from before a rotation). */
function copyKey(from: string, to: string): string {
  writeKey(to, fs.readFileSync(from, 'utf8').trim());
  return to;
}

/** Ports the process listens on over TCP (IPv4 and IPv6), from its own sockets only. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`, 'utf8'));
    if (m) inodes.add(m[1]);
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the tenth field
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

describe('SIGHUP: the key file read again', () => {
  it('rotates the key for new connections; open ones, segments and peers go on', async (t) => {
    const d = await startDaemon(t);
    const oldKey = copyKey(d.keyFile, path.join(d.dir, 'old.key'));
    const newKey = path.join(d.dir, 'new.key');
    const newText = writeKey(newKey);
    // a peer that already has the new key: refused before the rotation, reached after it
    const peer = await startDaemon(t, { key: newText });
    const peerAddr = peer.tcp.replace('tcp://', '');
    const refused = await d.cli('ping', peerAddr);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /key differs/);

    assert.equal((await d.cliTcp(oldKey, 'ping')).code, 0, 'the old key works before');
    // a segment, with a proxied connection open across the rotation
    const tail = await freePort();
    await startService(t, null, 'tcp-echo', '127.0.0.1', tail);
    const head = await freePort();
    const c = await d.cli('create', 'url', `:${head}`, 'tail', 'url', `:${tail}`);
    assert.equal(c.code, 0, c.stderr);
    const { id } = parseCreate(c.stdout);
    const held = net.connect({ port: head, host: '127.0.0.1', allowHalfOpen: true });
    t.after(() => held.destroy());
    let echoed = '';
    held.on('data', (b: Buffer) => (echoed += b.toString()));
    const ended = new Promise<void>((resolve, reject) => {
      held.on('end', resolve);
      held.on('error', reject);
    });
    held.write('before');
    for (let i = 0; i < 100 && echoed !== 'before'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(echoed, 'before');
    // an API connection authenticated with the old key, open across the rotation
    const api = await connect(parseDaemonAddress(d.tcp), readKey(oldKey));
    t.after(() => api.close());
    await api.call('ping', {});

    writeKey(d.keyFile, newText);
    await hangUp(d);
    assert.match(d.log(), /"changed":true,"msg":"key reloaded"/);

    const withNew = await d.cliTcp(newKey, 'ping');
    assert.equal(withNew.code, 0, `the new key works: ${withNew.stderr}`);
    const withOld = await d.cliTcp(oldKey, 'ping');
    assert.equal(withOld.code, 1, 'the old key is refused');
    assert.match(withOld.stderr, /key differs/);
    await api.call('ping', {});
    const toPeer = await d.cli('ping', peerAddr);
    assert.equal(toPeer.code, 0, `the daemon reaches a peer with the new key: ${toPeer.stderr}`);
    // the open proxied connection still carries bytes, and the segment takes new ones
    held.end('after');
    await ended;
    assert.equal(echoed, 'beforeafterbye');
    assert.equal(await exchange(head, 'new'), 'newbye');
    const list = JSON.parse((await d.cli('list', '--json')).stdout) as { id: string }[];
    assert.ok(
      list.some((s) => s.id === id),
      'the segment is still there',
    );
  });

  it('keeps the key in use when the key file cannot be used, and says why', async (t) => {
    const d = await startDaemon(t);
    const oldKey = copyKey(d.keyFile, path.join(d.dir, 'old.key'));
    const newKey = path.join(d.dir, 'new.key');
    const newText = writeKey(newKey);
    writeKey(d.keyFile, newText);
    await hangUp(d);
    assert.equal((await d.cliTcp(newKey, 'ping')).code, 0);

    const cases: [string, () => void, RegExp][] = [
      ['too short', () => writeKey(d.keyFile, 'short'), /shorter than 16 characters/],
      ['empty', () => fs.writeFileSync(d.keyFile, ''), /shorter than 16 characters/],
      [
        'readable by others',
        () => {
          writeKey(d.keyFile, 'x'.repeat(40));
          fs.chmodSync(d.keyFile, 0o644);
        },
        /can be read by others: chmod 600/,
      ],
      ['missing', () => fs.rmSync(d.keyFile), /does not exist/],
    ];
    for (const [what, spoil, why] of cases) {
      if (fs.existsSync(d.keyFile)) fs.chmodSync(d.keyFile, 0o600);
      spoil();
      const errors = countLog(d, /key not reloaded/);
      await hangUp(d);
      assert.equal(countLog(d, /key not reloaded/), errors + 1, `${what}: one error line`);
      const line = d
        .log()
        .split('\n')
        .filter((l) => l.includes('key not reloaded'))
        .pop();
      assert.match(line ?? '', /"level":50/, `${what}: logged as an error`);
      assert.match(line ?? '', why, `${what}: says why`);
      assert.equal(d.proc.exitCode, null, `${what}: the daemon runs on`);
      const r = await d.cliTcp(newKey, 'ping');
      assert.equal(r.code, 0, `${what}: the key in use still works: ${r.stderr}`);
      assert.equal((await d.cliTcp(oldKey, 'ping')).code, 1, `${what}: the older key stays refused`);
    }
  });
});

describe('SIGUSR1', () => {
  it('is logged and ignored: no debugger port, the daemon answers', async (t) => {
    const d = await startDaemon(t);
    const pid = d.proc.pid;
    assert.ok(pid);
    const api = Number(d.tcp.split(':').pop());
    assert.deepEqual(listeningPorts(pid), [api]);
    process.kill(pid, 'SIGUSR1');
    await waitForLog(d, /SIGUSR1 ignored: it would open Node's debugger/);
    // the ping is a full turn of the daemon's event loop after the signal was handled
    assert.equal((await d.cli('ping')).code, 0);
    assert.deepEqual(listeningPorts(pid), [api], 'no new listener (the inspector would be 9229)');
    assert.doesNotMatch(d.log(), /Debugger listening/);
  });
});

describe('sd_notify', () => {
  it('tells a Type=notify supervisor READY=1 with MAINPID, a reload, and STOPPING=1', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whn-'));
    const rx = await startNotifyReceiver(t, path.join(dir, 'notify.sock'));
    const d = await startDaemon(t, { env: { NOTIFY_SOCKET: rx.address } });
    const ready = await rx.waitFor(/^READY=1\nMAINPID=(\d+)/);
    assert.equal(Number(ready[1]), d.proc.pid);
    // READY=1 comes once the listeners serve: the TCP one answers now
    assert.equal((await d.cliTcp(d.keyFile, 'ping')).code, 0);

    await hangUp(d);
    await rx.waitFor(/RELOADING=1\nMONOTONIC_USEC=\d+READY=1$/);
    const stopped = await d.stop();
    assert.equal(stopped.code, 0);
    await rx.waitFor(/STOPPING=1$/);
    assert.match(
      rx.text(),
      new RegExp(`^READY=1\\nMAINPID=${d.proc.pid}RELOADING=1\\nMONOTONIC_USEC=\\d+READY=1STOPPING=1$`),
      'each message once, in order',
    );
  });

  it('starts and serves when nothing listens at NOTIFY_SOCKET, with a warning', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whn-'));
    const d = await startDaemon(t, { env: { NOTIFY_SOCKET: path.join(dir, 'nobody.sock') } });
    assert.equal((await d.cli('ping')).code, 0);
    await waitForLog(d, /"code":"ENOENT".*cannot tell systemd/);
  });
});

describe('sd_notify datagrams (the addon)', () => {
  /** A logger whose lines are kept, to see what sdNotify said. */
  function memoryLog(): { log: pino.Logger; lines: string[] } {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return { log: pino({ level: 'debug' }, sink), lines };
  }

  it('sends to an abstract address (@name), the name counted exactly', async (t) => {
    const name = `@wormhole-test-${process.pid}-${Date.now()}`;
    const rx = await startNotifyReceiver(t, name);
    // socat binds the name without a trailing NUL: one byte more in the address length would
    // be another address, and ECONNREFUSED
    native().notify(name, 'READY=1\nSTATUS=abstract');
    await rx.waitFor(/STATUS=abstract/);
    assert.equal(rx.text(), 'READY=1\nSTATUS=abstract');
  });

  it('sends to a path, and says what is wrong with an address', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whn-'));
    const rx = await startNotifyReceiver(t, path.join(dir, 'n.sock'));
    const { log, lines } = memoryLog();
    assert.equal(sdNotify('STOPPING=1', log, { NOTIFY_SOCKET: rx.address }), true);
    await rx.waitFor(/STOPPING=1/);
    assert.equal(rx.text(), 'STOPPING=1');

    assert.throws(() => native().notify(path.join(dir, 'none.sock'), 'READY=1'), { code: 'ENOENT' });
    assert.throws(() => native().notify('relative.sock', 'READY=1'), { code: 'EINVAL' });
    assert.throws(() => native().notify(`/${'x'.repeat(120)}`, 'READY=1'), { code: 'ENAMETOOLONG' });
    assert.throws(() => native().notify(`@${'x'.repeat(120)}`, 'READY=1'), { code: 'ENAMETOOLONG' });
    assert.throws(() => native().notify(rx.address, ''), { code: 'EINVAL' });

    // sdNotify never throws: nothing to do without NOTIFY_SOCKET, a warning when sending fails
    const before = lines.length;
    assert.equal(sdNotify('READY=1', log, {}), false);
    assert.equal(lines.length, before, 'no NOTIFY_SOCKET: silent');
    assert.equal(sdNotify('READY=1', log, { NOTIFY_SOCKET: path.join(dir, 'none.sock') }), false);
    const warning = lines.pop() ?? '';
    assert.match(warning, /"level":40/);
    assert.match(warning, /"code":"ENOENT".*cannot tell systemd/);
  });
});
