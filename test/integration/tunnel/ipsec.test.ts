/**
 * IPsec tunnels between two test hosts: this kernel has no ESP, so each daemon runs
 * strongSwan's charon with its userspace ESP (ESP in UDP over its TUN ipsec0). Where the
 * kernel has ESP the same tests run on kernel xfrm, less what is charon's own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CHARON_RCVBUF } from '../../../src/tunnel/charon';
import { Ipsec } from '../../../src/tunnel/ipsec';
import { startCapture } from '../../helpers/capture';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { sh, suiteCleanup, withHostPair } from '../../helpers/netns';
import { startService } from '../../helpers/services';
import { exchangeFrom, links } from './hosts';

/** The pid of the charon a test daemon runs, if one runs. */
function charonPid(d: TestDaemon): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(d.dir, 'state', 'charon', 'run', 'charon.pid'), 'utf8'));
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'charon' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `netns` has charon's TUN. */
function hasIpsec0(netns: string): boolean {
  return (JSON.parse(sh('ip', '-n', netns, '-j', 'link', 'show')) as { ifname: string }[]).some(
    (l) => l.ifname === 'ipsec0',
  );
}

describe('IPsec tunnels', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;
  let key: string;
  let userspace = false;
  // (metrics inside each host's namespace, where the test reads them with curl)
  const args = ['--tunnel-engine', 'ipsec', '--metrics', 'tcp://127.0.0.1:9190'];

  before(async () => {
    userspace = !(await new Ipsec().kernelEsp());
    hosts = withHostPair(suite);
    key = randomBytes(16).toString('hex');
    // last, after the daemons stop: a charon a failed test left is not left running
    suite.after(() => {
      for (const d of [a, b]) {
        const pid = d && charonPid(d);
        if (pid) process.kill(pid, 'SIGKILL');
      }
    });
    a = await startDaemon(suite, { netns: hosts.a, key, args });
    b = await startDaemon(suite, { netns: hosts.b, key, args });
  });

  it('builds one: traffic both ways, ESP in UDP on the wire and never the marker, removed on both sides', async (t) => {
    const made = await a.cli('tunnel-create', hosts.ipB);
    assert.equal(made.code, 0, made.stderr);
    const [localIp, remoteIp] = made.stdout.trim().split(' ');
    assert.match(localIp, /^100\.(6[5-7])\.\d+\.\d+$/);
    assert.equal((await a.cli('tunnel-create', hosts.ipB)).stdout, made.stdout, 'the same pair again');
    assert.match(
      (await a.cli('tunnel-list')).stdout,
      new RegExp(`^${hosts.ipB} ${localIp} ${remoteIp} ipsec wh[0-9a-f]{10}$`, 'm'),
    );
    assert.match(
      (await b.cli('tunnel-list')).stdout,
      new RegExp(`^${hosts.ipA} ${remoteIp} ${localIp} ipsec `, 'm'),
    );
    if (userspace) {
      assert.ok(hasIpsec0(hosts.a) && hasIpsec0(hosts.b), "each side's charon made its ipsec0");
      assert.match(a.log(), /"engine":"ipsec \(strongSwan charon [^"]*userspace ESP/);
      // charon's ESP socket, past the default buffer that drops under load (said in the log)
      for (const [d, netns] of [
        [a, hosts.a],
        [b, hosts.b],
      ] as const) {
        const esp = sh('ip', 'netns', 'exec', netns, 'ss', '-uanmpH', 'sport', '=', ':4500');
        assert.match(esp, /"charon"/, esp);
        assert.match(esp, new RegExp(`rb${2 * CHARON_RCVBUF}\\b`), "charon's ESP socket's receive buffer");
        assert.match(d.log(), /charon's UDP receive buffers raised/);
      }
    }

    await startService(t, hosts.b, 'tcp-echo', remoteIp, 7101);
    await startService(t, hosts.a, 'tcp-echo', localIp, 7102);
    const marker = `IPSEC-${randomBytes(8).toString('hex')}`;
    const cap = await startCapture(t, hosts.a, hosts.vethA);
    assert.equal(await exchangeFrom(hosts.a, remoteIp, 7101, marker), `${marker}bye`, 'a -> b');
    assert.equal(await exchangeFrom(hosts.b, localIp, 7102, marker), `${marker}bye`, 'b -> a');
    const bytes = await cap.stop();
    // the tunnel's bytes, as charon counts them (its bridge carries none)
    const metrics = sh('ip', 'netns', 'exec', hosts.a, 'curl', '-s', 'http://127.0.0.1:9190/metrics');
    for (const direction of ['tx', 'rx']) {
      const line = new RegExp(
        `^wormhole_tunnel_bytes_total\\{[^}]*engine="ipsec"[^}]*direction="${direction}"\\} (\\d+)`,
        'm',
      );
      assert.ok(
        Number(line.exec(metrics)?.[1]) > marker.length * 2,
        `${direction} bytes counted: ${metrics}`,
      );
    }
    assert.ok(!bytes.includes(Buffer.from(marker)), 'the marker never crossed the link in clear text');
    const pcap = path.join(a.dir, 'ipsec.pcap');
    fs.writeFileSync(pcap, bytes);
    const seen = sh('tcpdump', '-n', '-r', pcap);
    assert.match(seen, userspace ? /UDP-encap: ESP\(spi=/ : /ESP\(spi=/, 'the traffic went as ESP');
    assert.ok(!seen.includes(`${remoteIp}.7101`), 'no packet between the overlay addresses in clear');

    const deleted = await a.cli('tunnel-delete', hosts.ipB);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(links(hosts.a), []);
    assert.deepEqual(links(hosts.b), [], "the peer's side is gone too");
    assert.equal((await b.cli('tunnel-list')).stdout, '');
    if (userspace) {
      assert.equal(charonPid(a), undefined, 'charon stopped with its last tunnel');
      assert.equal(charonPid(b), undefined);
      assert.ok(!hasIpsec0(hosts.a) && !hasIpsec0(hosts.b), 'no ipsec0 left');
      assert.doesNotMatch(
        sh('ip', '-n', hosts.a, 'rule'),
        /lookup 220/,
        "charon's routing rule went with it",
      );
    }
    await assert.rejects(exchangeFrom(hosts.a, remoteIp, 7101, 'x'), 'the address is unreachable');
  });

  it("carries the seed's `tunnel` and `udptunnel` segments to the peer's 127.0.0.1", async (t) => {
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 7110);
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 7111);
    const viaTunnel = await a.cli('create', 'url', ':7110', 'tunnel', hosts.ipB, 'trigger', 'url', ':7110');
    assert.equal(viaTunnel.code, 0, viaTunnel.stderr);
    const viaUdp = await a.cli('create', 'url', ':7111', 'udptunnel', hosts.ipB, 'trigger', 'url', ':7111');
    assert.equal(viaUdp.code, 0, viaUdp.stderr);
    assert.equal(await exchangeFrom(hosts.a, '127.0.0.1', 7110, 'seed'), 'seedbye');
    assert.equal(await exchangeFrom(hosts.a, '127.0.0.1', 7111, 'udp'), 'udpbye');
    assert.match((await a.cli('tunnel-list')).stdout, / ipsec /);
    assert.equal(links(hosts.a).length, 1, 'one tunnel carries both');
    for (const r of [viaTunnel, viaUdp])
      assert.equal((await a.cli('delete', r.stdout.split(' ')[0])).code, 0);
    assert.equal((await a.cli('tunnel-delete', hosts.ipB)).code, 0);
    assert.deepEqual(links(hosts.b), []);
  });

  it('outlives the daemon, stopped or killed; rebuilt when the state file is torn; removed at start when its charon died', async (t) => {
    const made = await a.cli('tunnel-create', hosts.ipB);
    assert.equal(made.code, 0, made.stderr);
    const [localIp, remoteIp] = made.stdout.trim().split(' ');
    await startService(t, hosts.b, 'tcp-echo', remoteIp, 7103);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await a.stop(signal);
      assert.equal(links(hosts.a).length, 1, `the tunnel is still there after ${signal}`);
      assert.equal(await exchangeFrom(hosts.a, remoteIp, 7103, 'alone'), 'alonebye', 'and carries traffic');
      a = await startDaemon(suite, { netns: hosts.a, key, args, dir: a.dir });
      assert.match(a.log(), /tunnel found/);
      assert.equal(
        (await a.cli('tunnel-create', hosts.ipB)).stdout.trim(),
        `${localIp} ${remoteIp}`,
        'found again',
      );
      assert.equal(await exchangeFrom(hosts.a, remoteIp, 7103, 'again'), 'againbye');
    }
    if (!userspace) return;
    // the state file torn: the tunnel is rebuilt from its interface and charon's SA (the
    // kernel's xfrm keeps no peer port to rebuild from)
    await a.stop();
    const file = path.join(a.dir, 'state', 'tunnels.json');
    fs.writeFileSync(file, '[{"host":"10.77.');
    a = await startDaemon(suite, { netns: hosts.a, key, args, dir: a.dir });
    assert.match(a.log(), /tunnel rebuilt from its interface/);
    assert.match(
      (await a.cli('tunnel-list')).stdout,
      new RegExp(`^${hosts.ipB} ${localIp} ${remoteIp} ipsec wh[0-9a-f]{10}$`, 'm'),
    );
    assert.equal(await exchangeFrom(hosts.a, remoteIp, 7103, 'rebuilt'), 'rebuiltbye');
    fs.rmSync(`${file}.corrupt`);
    // charon killed too (with the daemon, as a crash of the host would): its SAs are gone
    await a.stop('SIGKILL');
    process.kill(charonPid(a)!, 'SIGKILL');
    a = await startDaemon(suite, { netns: hosts.a, key, args, dir: a.dir });
    assert.match(a.log(), /removed a half-built tunnel/);
    assert.deepEqual(links(hosts.a), []);
    assert.equal((await a.cli('tunnel-list')).stdout, '');
    assert.equal(charonPid(a), undefined, 'no charon started for no tunnel');
    // the peer's side is removed by its own tunnel-delete, which stops its charon
    assert.equal((await b.cli('tunnel-delete', hosts.ipA)).code, 0);
    assert.deepEqual(links(hosts.b), []);
    assert.equal(charonPid(b), undefined);
  });
});
