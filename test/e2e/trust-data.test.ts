/**
 * Issue 18's holes in the data path, each reproduced, then closed (named for its number in the
 * issue), with real daemons: a tail that drops SYNs (9), clients that never read (8), a
 * flood of UDP sources (7; the relay's own bounds in test/unit/proxy/udp). The others are in
 * trust.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, runCmd, startDaemon } from '../helpers/daemon';
import { type Cleanup, sh, suiteCleanup, withNetns } from '../helpers/netns';
import { startService } from '../helpers/services';
import { sleep, until } from '../helpers/wait';

/**
 * Connect to `port`, half-close, and wait (at most `boundMs`) for the daemon to answer or let
 * go: what came back, and whether the connection ended at all within the bound.
 */
function answerWithin(port: number, boundMs: number): Promise<{ ended: boolean; got: string }> {
  return new Promise((resolve) => {
    let got = '';
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end());
    const timer = setTimeout(() => {
      c.destroy();
      resolve({ ended: false, got });
    }, boundMs);
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('error', () => undefined);
    c.on('close', () => {
      clearTimeout(timer);
      resolve({ ended: true, got });
    });
  });
}

for (const mover of ['engine', 'javascript'] as const) {
  describe(`hole 9: a tail that drops SYNs (${mover} mover)`, () => {
    const suite = suiteCleanup(after);
    // a namespace whose port 7001 drops every SYN (as a firewall does), and answers on 7002
    const ns = withNetns(suite, 'whsyn');
    let d: TestDaemon;

    before(async () => {
      sh(
        'ip',
        'netns',
        'exec',
        ns,
        'iptables',
        '-A',
        'INPUT',
        '-p',
        'tcp',
        '--dport',
        '7001',
        '--syn',
        '-j',
        'DROP',
      );
      await startService(suite, ns, 'tcp-port', '127.0.0.1', 7002);
      const env = mover === 'javascript' ? { WORMHOLE_ENGINE: 'off' } : undefined;
      d = await startDaemon(suite, { env, args: ['--dial-timeout', '1'] });
    });

    it('lets the client go after the dial timeout, not after the kernel SYN retries (~2 min)', async () => {
      const seg = await d.create('url', ':0', 'tail', 'url', `tcp://${ns}@127.0.0.1:7001`);
      // (the bound is far below the kernel's retries and far above the dial timeout)
      const r = await answerWithin(seg.port, 20_000);
      assert.ok(r.ended, 'the client was held past 20 s: the connect had no timeout');
      assert.equal(r.got, '');
      await until(
        'the drop logged',
        async () => d.log(),
        (log) => /ETIMEDOUT.*"msg":"connection dropped"/.test(log),
      );
      await d.cli('delete', seg.id);
    });

    it('tries the next tail when one does not answer, as when one refuses', async () => {
      const seg = await d.create(
        'url',
        ':0',
        'tail',
        'url',
        `tcp://${ns}@127.0.0.1:7001`,
        'also',
        'url',
        `tcp://${ns}@127.0.0.1:7002`,
        'health',
        'off',
      );
      // round-robin: the first client is sent to the silent tail first, the second to the other
      for (let i = 0; i < 2; i++) {
        const r = await answerWithin(seg.port, 20_000);
        assert.equal(r.got, '7002', `client ${i + 1} reached the tail that answers`);
      }
      await d.cli('delete', seg.id);
    });
  });
}

/**
 * `count` clients in `ns` that connect to 127.0.0.1:`port` and never read (their window goes
 * to zero); resolves once all are connected, with how to close them all.
 */
async function neverReading(t: Cleanup, ns: string, port: number, count: number): Promise<() => void> {
  const script = `
    const net = require('node:net');
    let open = 0;
    for (let i = 0; i < ${count}; i++) {
      const c = net.connect(${port}, '127.0.0.1', () => {
        c.pause();
        if (++open === ${count}) process.stdout.write('ready\\n');
      });
      c.on('error', () => undefined);
    }
    setInterval(() => undefined, 1 << 30); // (paused sockets alone do not keep the process alive)`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const kill = (): void => void child.kill('SIGKILL');
  t.after(kill);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the clients exited with ${code}`)));
  });
  return kill;
}

/** One unlabelled metric of the daemon in `ns` (undefined: not served). */
async function metric(ns: string, name: string): Promise<number | undefined> {
  // (Node's own client: curl hangs at times under test/asan.sh's LD_PRELOAD)
  const get = `require('node:http').get('http://127.0.0.1:9101/metrics', (r) => r.pipe(process.stdout))`;
  const r = await runCmd('ip', ['netns', 'exec', ns, process.execPath, '-e', get]);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('hole 8: kernel memory pinned by clients that never read', () => {
  const suite = suiteCleanup(after);
  const MiB = 1024 * 1024;

  it("keeps the engine's grown pipes within --pipe-budget, and gives it back as they end", async () => {
    const ns = withNetns(suite, 'whpipe');
    // socket buffers in the namespace of a fixed, modest size, so that the bytes soon stop in
    // the engine's pipes (a few MiB of them, not hundreds, are what the test costs); a read
    // from the tail can still fill a pipe's first 64 KiB, which makes it grow
    sh('ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_rmem=4096 262144 262144');
    sh('ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.tcp_wmem=4096 65536 65536');
    await startService(suite, ns, 'tcp-flood', '127.0.0.1', 7003);
    const d = await startDaemon(suite, {
      netns: ns,
      args: ['--pipe-budget', '4', '--metrics', 'tcp://127.0.0.1:9101'],
    });
    await d.create('url', ':7004', 'tail', 'url', ':7003');
    // 24 readers that never read: each would pin a pipe grown to 1 MiB (24 MiB) with no budget
    const close = await neverReading(suite, ns, 7004, 24);
    let refused = 0;
    for (let i = 0; i < 40 && !(refused > 0); i++) {
      await sleep(500);
      refused = (await metric(ns, 'wormhole_engine_pipe_grow_refused_total')) ?? 0;
    }
    const grown = await metric(ns, 'wormhole_engine_pipe_grown_bytes');
    assert.ok(grown !== undefined, 'the engine counts its grown pipes');
    assert.equal(await metric(ns, 'wormhole_engine_pipe_budget_bytes'), 4 * MiB);
    assert.ok(refused > 0, `pipes were left small once the budget was spent (grown: ${grown})`);
    assert.ok(grown > 0, 'some pipes grew');
    assert.ok(grown <= 4 * MiB, `${grown} bytes of grown pipes, over the 4 MiB budget`);
    // the clients go: their pipes, full, are closed and give the budget back
    close();
    let after = grown;
    for (let i = 0; i < 20 && after > 0; i++) {
      await sleep(500);
      after = (await metric(ns, 'wormhole_engine_pipe_grown_bytes')) ?? -1;
    }
    assert.equal(after, 0, 'the budget was given back');
  });
});

/** Send `count` datagrams of `size` bytes from each of `sources` sockets of their own to 127.0.0.1:`port`. */
async function udpFlood(port: number, sources: number, count: number, size: number): Promise<void> {
  const block = Buffer.alloc(size, 'u');
  for (let i = 0; i < sources; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    for (let n = 0; n < count; n++) {
      await new Promise<void>((resolve) => s.send(block, port, '127.0.0.1', () => resolve()));
      if (n % 8 === 7) await sleep(5); // (the daemon reads them, not the kernel's buffer that drops)
    }
    s.close();
  }
}

/** A segment's counters as `list --json` gives them. */
async function traffic(d: TestDaemon, id: string): Promise<Record<string, number | undefined>> {
  const r = await d.cli('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  const seg = (JSON.parse(r.stdout) as { id: string; traffic?: Record<string, number> }[]).find(
    (s) => s.id === id,
  );
  return seg?.traffic ?? {};
}

describe('hole 7: UDP memory under a spoofed flood', () => {
  const suite = suiteCleanup(after);
  const MiB = 1024 * 1024;

  it('bounds the bytes a segment holds for its sessions, whatever the sources', async () => {
    // a tail that never answers: each session keeps what it sent, to send again, for the
    // dial timeout (a tail that does not listen yet); 48 sources of 32 KiB datagrams
    const tail = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => tail.bind(0, '127.0.0.1', resolve));
    suite.after(() => tail.close());
    const d = await startDaemon(suite, { args: ['--dial-timeout', '60'] });
    const seg = await d.create(
      'url',
      'udp://127.0.0.1:0',
      'tail',
      'url',
      `udp://127.0.0.1:${tail.address().port}`,
    );
    await udpFlood(seg.port, 48, 24, 32 * 1024);
    const t = await traffic(d, seg.id);
    assert.ok(t.queuedBytes !== undefined, 'the segment counts the bytes it holds');
    assert.ok((t.datagramsUp ?? 0) > 48 * 8, `the daemon read the flood (${t.datagramsUp} datagrams)`);
    // without a bound: every session 24 datagrams (768 KiB), 36 MiB in all
    assert.ok(t.queuedBytes > 0, 'sessions keep what the tail has not answered');
    assert.ok(t.queuedBytes <= 8 * MiB, `${t.queuedBytes} bytes held, over the segment's 8 MiB`);
    assert.equal(t.open, 48);
  });
});
