/**
 * Issue 18's holes in the data path, each reproduced, then closed (named for its number in the
 * issue), with real daemons: a tail that drops SYNs (9). The others are in trust.test.ts.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, startDaemon } from '../helpers/daemon';
import { sh, suiteCleanup, withNetns } from '../helpers/netns';
import { startService } from '../helpers/services';

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
      assert.match(d.log(), /ETIMEDOUT.*"msg":"connection dropped"/);
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
