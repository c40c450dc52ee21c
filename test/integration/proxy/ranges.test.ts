/**
 * Port ranges (SPEC.md "Port ranges", issue 20) through the real daemon and CLI, with both
 * movers: a head `url :A-B` in a namespace of the test's own (so no other test's port is in
 * the way) takes head port i to tail port i, or every port to one tail port; TCP and UDP; one
 * row in `list` with the range and its counters summed; delete frees every port; a restart
 * and a takeover keep the range; bad ranges are refused in one line with nothing made.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, it } from 'node:test';
import type { SegmentInfo } from '../../../src/api/protocol';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { forEachMover, moverOpts } from '../../helpers/movers';
import { suiteCleanup, withNetns } from '../../helpers/netns';
import { exchangeIn, startService } from '../../helpers/services';

/** One datagram to 127.0.0.1:port from inside `ns`, and the answer ('' after a second without). */
function udpIn(ns: string, port: number, data: string): Promise<string> {
  const script = `
const s = require('node:dgram').createSocket('udp4');
setTimeout(() => process.exit(0), 1500);
s.on('message', (m) => { process.stdout.write(m.toString()); process.exit(0); });
s.send(process.argv[1], ${port}, '127.0.0.1');`;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', script, data], (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

forEachMover('port ranges', (mover) => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  let ns: string;

  before(async () => {
    d = await startDaemon(suite, moverOpts(mover));
    ns = withNetns(suite, 'ranges');
    // each tail port answers with its own number
    await startService(suite, ns, 'tcp-port', '127.0.0.1', '30000-30004');
    await startService(suite, ns, 'udp-port', '127.0.0.1', '30000-30004');
  });

  /** Every segment as `list --json` shows it. */
  async function list(): Promise<SegmentInfo[]> {
    const r = await d.cli('list', '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as SegmentInfo[];
  }

  /** What each head port from `first` answers over TCP (`count` ports). */
  async function answers(first: number, count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(await exchangeIn(ns, first + i, ''));
    return out;
  }

  it('takes TCP head port i to tail port i, in one segment with one row and summed counters', async () => {
    const seg = await d.create('url', `tcp://${ns}@:20000-20004`, 'tail', 'url', `tcp://${ns}@:30000-30004`);
    assert.equal(seg.url, `tcp://${ns}@127.0.0.1:20000-20004`);
    assert.deepEqual(await answers(20000, 5), ['30000', '30001', '30002', '30003', '30004']);
    const rows = await list();
    assert.equal(rows.length, 1, 'one row for the whole range');
    assert.equal(rows[0].url, `tcp://${ns}@127.0.0.1:20000-20004`);
    assert.equal(rows[0].head.port, 20000);
    assert.equal(rows[0].head.portEnd, 20004);
    assert.equal(rows[0].tail?.portEnd, 30004);
    assert.equal(rows[0].connections, 5, 'the connections of every port, summed');
    const text = await d.cli('list');
    assert.match(text.stdout, new RegExp(`tcp://${ns}@127.0.0.1:20000-20004`));
    assert.equal((await d.cli('delete', seg.id)).code, 0);
  });

  it('takes every TCP head port to a single tail port', async () => {
    const seg = await d.create('url', `tcp://${ns}@:20010-20013`, 'tail', 'url', `tcp://${ns}@:30002`);
    assert.deepEqual(await answers(20010, 4), ['30002', '30002', '30002', '30002']);
    assert.equal((await d.cli('delete', seg.id)).code, 0);
  });

  it('relays UDP over a range both ways: port i to port i, and to one port', async () => {
    const a = await d.create('url', `udp://${ns}@:20020-20024`, 'tail', 'url', `udp://${ns}@:30000-30004`);
    for (let i = 0; i < 5; i++) assert.equal(await udpIn(ns, 20020 + i, 'hi'), String(30000 + i));
    const b = await d.create('url', `udp://${ns}@:20030-20032`, 'tail', 'url', `udp://${ns}@:30004`);
    for (let i = 0; i < 3; i++) assert.equal(await udpIn(ns, 20030 + i, 'hi'), '30004');
    const row = (await list()).find((s) => s.id === a.id)!;
    assert.equal(row.traffic?.total, 5, 'five sessions, one row');
    await d.cli('delete', a.id);
    await d.cli('delete', b.id);
  });

  it('frees every port at delete: the same range can be made again at once', async () => {
    const seg = await d.create('url', `tcp://${ns}@:20040-20049`, 'tail', 'url', `tcp://${ns}@:30001`);
    assert.equal((await d.cli('delete', seg.id)).code, 0);
    // a service on every port of it binds: none was left listening
    await startService(suite, ns, 'tcp-port', '127.0.0.1', '20040-20049');
    assert.deepEqual(await answers(20040, 2), ['20040', '20041']);
  });

  it('works with allow and with a tail port taken from the head range (no tail port given)', async () => {
    const seg = await d.create(
      'url',
      `tcp://${ns}@:20300-20301`,
      'allow',
      '127.0.0.0/8',
      'tail',
      'url',
      // (the tail's own namespace: the head's ports, as the grammar defaults them)
      'tcp://127.0.0.1',
    );
    assert.match(seg.url, /:20300-20301$/);
    const row = (await list()).find((s) => s.id === seg.id)!;
    assert.equal(row.tail?.port, 20300);
    assert.equal(row.tail?.portEnd, 20301);
    await d.cli('delete', seg.id);
  });

  it('runs a trigger once for a range, idles it, and wakes on data only', async () => {
    const seg = await d.create(
      'url',
      `tcp://${ns}@:20600-20602`,
      'idle',
      '1h',
      'wake-on-data',
      'trigger',
      'url',
      `tcp://${ns}@:30000-30002`,
    );
    const before = (await list()).find((s) => s.id === seg.id)!;
    assert.equal(before.state, 'waiting', 'no tail before the first client');
    // (tcp-port speaks first; exchangeIn's empty write is not data: send a byte)
    assert.deepEqual(
      [await exchangeIn(ns, 20601, 'x'), await exchangeIn(ns, 20602, 'x')],
      ['30001', '30002'],
    );
    const row = (await list()).find((s) => s.id === seg.id)!;
    assert.equal(row.state, 'ready');
    assert.equal(row.trigger?.runs, 1, 'one run for the whole range');
    await d.cli('delete', seg.id);
  });

  it('refuses bad ranges in one line, naming what to do, and makes nothing', async () => {
    const bad: [string[], RegExp][] = [
      [['url', ':20000-30000', 'tail', 'url', ':40000'], /10001 ports, more than 10,000/],
      [['url', ':20010-20000', 'tail', 'url', ':40000'], /ends \(20000\) before it starts \(20010\)/],
      [['url', ':20000-20004', 'tail', 'url', ':30000-30009'], /has 10 ports but the head .* has 5/],
      [['url', ':0-10', 'tail', 'url', ':40000'], /port 0 cannot be in a range/],
      [['url', ':20000', 'tail', 'url', ':30000-30004'], /a tail range needs a head range/],
      [['url', ':20000-20004', 'tail', 'url', ':30000', 'also', 'url', ':30001'], /takes one tail/],
      [['url', ':20000-20004', 'remote', ':9', 'url', ':1', 'tail', 'url', ':2'], /cannot have "remote"/],
      // a tail range over the head's own ports would reach itself
      [['url', ':20700-20709', 'tail', 'url', ':20705-20714'], /is the head itself/],
    ];
    for (const [words, why] of bad) {
      const r = await d.cli('create', ...words);
      assert.notEqual(r.code, 0, words.join(' '));
      assert.match(r.stderr, why);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    assert.deepEqual(await list(), [], 'nothing made');
  });

  it('refuses a range over another segment or a port in use, leaving none of its ports bound', async () => {
    const a = await d.create('url', `tcp://${ns}@:20100-20104`, 'tail', 'url', `tcp://${ns}@:30000`);
    const over = await d.cli(
      'create',
      'url',
      `tcp://${ns}@:20095-20100`,
      'tail',
      'url',
      `tcp://${ns}@:30000`,
    );
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /port range 20095-20100: .*20100.*address already in use/);
    assert.equal(over.stderr.trim().split('\n').length, 1);
    assert.equal((await list()).length, 1, 'only the first segment');
    // every port the refused range bound before the clash is free again
    const again = await d.create('url', `tcp://${ns}@:20095-20099`, 'tail', 'url', `tcp://${ns}@:30001`);
    assert.deepEqual(await answers(20095, 1), ['30001']);
    await d.cli('delete', a.id);
    await d.cli('delete', again.id);
  });

  it('round-trips through apply and export, and apply refuses a bad range naming its id', async () => {
    const plan = `url tcp://${ns}@:20400-20402 tail url tcp://${ns}@:30000-30002`;
    const f = path.join(d.dir, 'ranges.yaml');
    fs.writeFileSync(f, `segments:\n  r: ${plan}\n`);
    const applied = await d.cli('apply', '-f', f);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(await answers(20400, 3), ['30000', '30001', '30002']);
    const exported = await d.cli('export');
    assert.equal(exported.stdout, `segments:\n  r: ${plan}\n`);
    // the exported file on a fresh daemon makes the same segment (this one lets go of the ports first)
    assert.equal((await d.cli('delete', 'r')).code, 0);
    const fresh = await startDaemon(suite, moverOpts(mover));
    const again = path.join(d.dir, 'exported.yaml');
    fs.writeFileSync(again, exported.stdout);
    assert.equal((await fresh.cli('apply', '-f', again)).code, 0);
    assert.deepEqual(await answers(20400, 3), ['30000', '30001', '30002']);
    assert.equal((await fresh.cli('export')).stdout, exported.stdout);
    await fresh.stop();
    // a file with a bad range changes nothing, and says which id
    fs.writeFileSync(
      f,
      `segments:\n  ok: url tcp://${ns}@:20410 tail url :1\n  big: url :1-10001 tail url :1\n`,
    );
    const bad = await d.cli('apply', '-f', f);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /big.*10001 ports, more than 10,000/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.deepEqual(await list(), [], 'nothing made, not even the good one');
    // two ranges of one file over each other: the second cannot bind, the first is undone
    const a = `url tcp://${ns}@:20500-20504 tail url tcp://${ns}@:30000`;
    const b = `url tcp://${ns}@:20503-20509 tail url tcp://${ns}@:30001`;
    fs.writeFileSync(f, `segments:\n  a: ${a}\n  b: ${b}\n`);
    const over = await d.cli('apply', '-f', f);
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /\bb\b.*port range 20503-20509: .*20503.*address already in use/);
    assert.deepEqual(await list(), [], 'the first undone');
  });

  it('keeps the range across a restart and a takeover', async () => {
    await d.create(
      'id',
      'kept',
      'url',
      `tcp://${ns}@:20200-20202`,
      'tail',
      'url',
      `tcp://${ns}@:30002-30004`,
    );
    assert.equal((await d.stop()).code, 0);
    d = await startDaemon(suite, moverOpts(mover, { dir: d.dir, port: Number(d.tcp.split(':').pop()) }));
    assert.deepEqual(await answers(20200, 3), ['30002', '30003', '30004'], 'after a restart');
    const next = await startDaemon(
      suite,
      moverOpts(mover, { dir: d.dir, port: Number(d.tcp.split(':').pop()), takeover: true }),
    );
    assert.equal(await d.exited(), 0);
    d = next;
    assert.deepEqual(await answers(20200, 3), ['30002', '30003', '30004'], 'after a takeover');
    assert.equal((await list())[0].url, `tcp://${ns}@127.0.0.1:20200-20202`);
    await d.cli('delete', 'kept');
  });
});
