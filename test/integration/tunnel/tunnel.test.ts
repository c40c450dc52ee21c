/**
 * Encrypted L3 tunnels between two test hosts, WireGuard's (wireguard-go here); IPsec's are
 * in ipsec.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCapture } from '../../helpers/capture';
import { type TestDaemon, startDaemon } from '../../helpers/daemon';
import { sh, suiteCleanup, withHostPair, withNetns } from '../../helpers/netns';
import { startService } from '../../helpers/services';
import { sleep } from '../../helpers/wait';
import { exchangeFrom, links } from './hosts';

describe('tunnels between two hosts', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;
  let key: string;

  before(async () => {
    hosts = withHostPair(suite);
    key = randomBytes(16).toString('hex');
    a = await startDaemon(suite, { netns: hosts.a, key });
    b = await startDaemon(suite, { netns: hosts.b, key });
  });

  it('builds a WireGuard tunnel: same pair twice, traffic both ways, nothing in clear, removed on both sides', async (t) => {
    const first = await a.cli('tunnel-create', hosts.ipB);
    assert.equal(first.code, 0, first.stderr);
    const [localIp, remoteIp] = first.stdout.trim().split(' ');
    assert.match(localIp, /^100\.(6[5-7])\.\d+\.\d+$/, 'from the default overlay range 100.65.0.0/14');
    assert.notEqual(localIp, remoteIp);
    assert.equal((await a.cli('tunnel-create', hosts.ipB)).stdout, first.stdout, 'the same pair again');
    // the veth's 1500 less WireGuard's 60 over IPv4; wireguard-go with offloads (setup.sh's)
    const [iface] = links(hosts.a);
    const [link] = JSON.parse(sh('ip', '-n', hosts.a, '-j', '-d', 'link', 'show', iface)) as {
      mtu: number;
      linkinfo?: { info_kind?: string; info_data?: { vnet_hdr?: boolean } };
    }[];
    assert.equal(link.mtu, 1440);
    if (link.linkinfo?.info_kind === 'tun') {
      assert.equal(link.linkinfo.info_data?.vnet_hdr, true, 'wireguard-go offloads its TUN');
      assert.match(a.log(), /"engine":"wireguard \(userspace wireguard-go v\d+\.\d+\.\d+.*"tunnel engine"/);
      assert.doesNotMatch(a.log(), /offloads/, 'no warning of missing offloads');
    }
    const list = await a.cli('tunnel-list');
    assert.match(
      list.stdout,
      new RegExp(`^${hosts.ipB} ${localIp} ${remoteIp} wireguard wh[0-9a-f]{10}$`, 'm'),
    );
    // --json: the tunnel as tunnel-list --json has it, the same pair
    const json = await a.cli('tunnel-create', '--json', hosts.ipB);
    assert.equal(json.code, 0, json.stdout);
    const made = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(made).sort(), ['engine', 'host', 'iface', 'localIp', 'remoteIp', 'udp']);
    assert.deepEqual(
      [made.host, made.localIp, made.remoteIp, made.udp],
      [hosts.ipB, localIp, remoteIp, false],
    );
    assert.deepEqual(JSON.parse((await a.cli('tunnel-list', '--json')).stdout), [made]);

    await startService(t, hosts.b, 'tcp-echo', remoteIp, 7001);
    await startService(t, hosts.a, 'tcp-echo', localIp, 7002);
    const marker = `TUNNEL-${randomBytes(8).toString('hex')}`;
    const cap = await startCapture(t, hosts.a, hosts.vethA);
    assert.equal(await exchangeFrom(hosts.a, remoteIp, 7001, marker), `${marker}bye`, 'a -> b');
    assert.equal(await exchangeFrom(hosts.b, localIp, 7002, marker), `${marker}bye`, 'b -> a');
    const bytes = await cap.stop();
    assert.ok(bytes.length > 500, 'the capture saw the tunnel traffic');
    assert.ok(!bytes.includes(Buffer.from(marker)), 'the marker never crossed the link in clear text');

    const deleted = await a.cli('tunnel-delete', '--json', hosts.ipB);
    assert.equal(deleted.code, 0, deleted.stdout);
    assert.deepEqual(JSON.parse(deleted.stdout), { host: hosts.ipB, deleted: true });
    assert.deepEqual(links(hosts.a), []);
    assert.deepEqual(links(hosts.b), [], "the peer's side is gone too");
    assert.equal((await b.cli('tunnel-list')).stdout, '');
    await assert.rejects(exchangeFrom(hosts.a, remoteIp, 7001, 'x'), 'the address is unreachable');
  });

  it('builds a --udp tunnel', async () => {
    const r = await a.cli('tunnel-create', '--udp', hosts.ipB);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await a.cli('tunnel-list')).stdout, / wireguard udp wh/);
    assert.equal((await a.cli('tunnel-delete', hosts.ipB)).code, 0);
  });

  it('outlives the daemon, which finds it again; a half-built one is removed at start', async (t) => {
    const r = await a.cli('tunnel-create', hosts.ipB);
    const [localIp, remoteIp] = r.stdout.trim().split(' ');
    assert.equal((await a.stop()).code, 0);
    assert.equal(links(hosts.a).length, 1, 'the tunnel is still there with no daemon');
    a = await startDaemon(suite, { netns: hosts.a, key, dir: a.dir });
    assert.equal(
      (await a.cli('tunnel-create', hosts.ipB)).stdout.trim(),
      `${localIp} ${remoteIp}`,
      'found again',
    );
    await startService(t, hosts.b, 'tcp-echo', remoteIp, 7003);
    assert.equal(await exchangeFrom(hosts.a, remoteIp, 7003, 'again'), 'againbye');

    // Break our side (the peer config goes), as a crash in the middle of a build would leave it.
    assert.equal((await a.stop()).code, 0);
    const iface = links(hosts.a)[0];
    const peerKey = sh('ip', 'netns', 'exec', hosts.a, 'wg', 'show', iface, 'peers').trim();
    sh('ip', 'netns', 'exec', hosts.a, 'wg', 'set', iface, 'peer', peerKey, 'remove');
    a = await startDaemon(suite, { netns: hosts.a, key, dir: a.dir });
    assert.deepEqual(links(hosts.a), [], 'the half-built tunnel was removed');
    assert.equal((await a.cli('tunnel-list')).stdout, '');
    assert.match(a.log(), /removed a half-built tunnel/);
    // leave b clean for the next test
    await b.cli('tunnel-list');
    const tunnelsFile = path.join(b.dir, 'state', 'tunnels.json');
    assert.ok(fs.existsSync(tunnelsFile));
  });

  it('rebuilds its tunnels from their interfaces when the state file is unreadable', async (t) => {
    const made = await a.cli('tunnel-create', hosts.ipB);
    assert.equal(made.code, 0, made.stderr);
    const [localIp, remoteIp] = made.stdout.trim().split(' ');
    assert.equal((await a.stop()).code, 0);
    const file = path.join(a.dir, 'state', 'tunnels.json');
    fs.writeFileSync(file, '[{"host":"10.77.'); // as a crash mid-write of the old code left it
    a = await startDaemon(suite, { netns: hosts.a, key, dir: a.dir });
    assert.match(a.log(), /tunnel state unreadable, kept aside/);
    assert.match(a.log(), /tunnel rebuilt from its interface/);
    assert.equal(fs.readFileSync(`${file}.corrupt`, 'utf8'), '[{"host":"10.77.');
    const list = await a.cli('tunnel-list');
    assert.match(
      list.stdout,
      new RegExp(`^${hosts.ipB} ${localIp} ${remoteIp} wireguard wh[0-9a-f]{10}$`, 'm'),
    );
    await startService(t, hosts.b, 'tcp-echo', remoteIp, 7004);
    assert.equal(await exchangeFrom(hosts.a, remoteIp, 7004, 'kept'), 'keptbye');
    assert.equal((await a.cli('tunnel-create', hosts.ipB)).stdout.trim(), `${localIp} ${remoteIp}`);
    assert.equal((await a.cli('tunnel-delete', hosts.ipB)).code, 0);
    assert.deepEqual(links(hosts.a), []);
    assert.deepEqual(links(hosts.b), []);
    fs.rmSync(`${file}.corrupt`);
  });

  it('tunnel-create whose daemon dies during the request is an error, and leaves nothing', async () => {
    // b stopped: a's request waits on it, and a is killed while it does. The CLI as a user
    // runs it: over TCP (TLS), whose half-close let the CLI end quietly with 0 (issue 19).
    b.proc.kill('SIGSTOP');
    let r;
    try {
      const pending = a.asWritten('tunnel-create', hosts.ipB);
      await new Promise((res) => setTimeout(res, 1000));
      await a.stop('SIGKILL');
      r = await pending;
    } finally {
      b.proc.kill('SIGCONT');
    }
    assert.equal(r.code, 1, `exit code (stdout: ${JSON.stringify(r.stdout)})`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^wormhole: .*(closed the connection|failed).*\n$/);
    a = await startDaemon(suite, { netns: hosts.a, key, dir: a.dir });
    assert.equal((await a.cli('tunnel-list')).stdout, '');
    assert.deepEqual(links(hosts.a), []);
  });

  it('says clearly when the other end is no peer, and leaves nothing half-built', async () => {
    const stranger = hosts.ipA.replace(/\.1$/, '.99');
    const r = await a.cli('tunnel-create', stranger);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /peer .* is not reachable/);
    const noRoute = await a.cli('tunnel-create', '10.77.255.254');
    assert.equal(noRoute.code, 1);
    assert.match(noRoute.stderr, /not reachable|no route/);
    assert.equal((await a.cli('tunnel-list')).stdout, '');
    assert.deepEqual(links(hosts.a), []);
  });
});

describe('a tunnel to a peer by its name (issue 19)', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;

  before(async () => {
    hosts = withHostPair(suite);
    const key = randomBytes(16).toString('hex');
    await startDaemon(suite, { netns: hosts.b, key });
    a = await startDaemon(suite, { netns: hosts.a, key, seedStyle: { hosts: [`${hosts.ipB} myserver`] } });
  });

  it('is the same tunnel by name and by address, and deleted by either', async () => {
    const byName = await a.cli('tunnel-create', 'myserver');
    assert.equal(byName.code, 0, byName.stderr);
    const byAddress = await a.cli('tunnel-create', `${hosts.ipB}:9999`);
    assert.equal(byAddress.code, 0, byAddress.stderr);
    assert.equal(byAddress.stdout, byName.stdout, 'the same pair');
    assert.equal((await a.cli('tunnel-list')).stdout.split('\n').filter(Boolean).length, 1);
    assert.equal(links(hosts.a).length, 1);
    assert.equal((await a.cli('tunnel-delete', hosts.ipB)).code, 0);
    assert.deepEqual(links(hosts.a), []);
    assert.deepEqual(links(hosts.b), []);
    assert.equal((await a.cli('tunnel-list')).stdout, '');
  });

  it("takes `tunnel H trigger url :P`: the tail is the peer's 127.0.0.1:P, not the head", async (t) => {
    await startService(t, hosts.b, 'tcp-echo', '127.0.0.1', 7020);
    const r = await a.cli('create', 'url', ':7020', 'tunnel', 'myserver', 'trigger', 'url', ':7020');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exchangeFrom(hosts.a, '127.0.0.1', 7020, 'hop'), 'hopbye');
    // the same at home is still refused: a head on 127.0.0.1:P with the tail 127.0.0.1:P
    const self = await a.cli('create', 'url', ':7021', 'trigger', 'url', ':7021');
    assert.equal(self.code, 1);
    assert.match(self.stderr, /is the head itself/);
    assert.equal((await a.cli('delete', r.stdout.split(' ')[0])).code, 0);
    assert.equal((await a.cli('tunnel-delete', 'myserver')).code, 0);
  });

  it('gets no tunnel from a daemon with another key, and leaves nothing on either side', async (t) => {
    await startDaemon(t, { netns: hosts.b, port: 9998 }); // a key of its own
    const r = await a.cli('tunnel-create', `${hosts.ipB}:9998`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /key differs/);
    assert.equal((await a.cli('tunnel-list')).stdout, '');
    assert.deepEqual(links(hosts.a), []);
    assert.deepEqual(links(hosts.b), []);
  });
});

describe('a wireguard-go without offloads (issue 19)', () => {
  const suite = suiteCleanup(after);

  it('is named at start and warned of once, with what to install', async () => {
    // bookworm's own wireguard-go (0.0.20220316) as far as the daemon can tell: a stand-in
    // that says that version first on PATH (and the kernel here has no WireGuard)
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'wholdwg-'));
    suite.after(() => fs.rmSync(bin, { recursive: true, force: true }));
    fs.writeFileSync(path.join(bin, 'wireguard-go'), "#!/bin/sh\necho 'wireguard-go v0.0.20220316'\n", {
      mode: 0o755,
    });
    const d = await startDaemon(suite, {
      netns: withNetns(suite),
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    const deadline = Date.now() + 10_000;
    while (!/"tunnel engine"/.test(d.log()) && Date.now() < deadline) await sleep(50);
    const lines = d.log().split('\n');
    if (lines.some((l) => l.includes('"engine":"wireguard (kernel)"'))) return; // (a kernel with WireGuard)
    assert.ok(
      lines.some((l) => /"engine":"wireguard \(userspace wireguard-go v0\.0\.20220316/.test(l)),
      'the version that runs is named',
    );
    await sleep(300); // (the warning follows the engine's line)
    const warned = d
      .log()
      .split('\n')
      .filter((l) => /offloads/.test(l));
    assert.equal(warned.length, 1, `warned once: ${warned.join('\n')}`);
    assert.match(warned[0], /"level":40/);
    assert.match(
      warned[0],
      /0\.0\.20220316 has no TUN or UDP offloads.*install bookworm-backports' wireguard-go/,
    );
  });
});
