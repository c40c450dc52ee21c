/**
 * The web view in a real browser (Debian's chromium, headless, driven by playwright-core):
 * two test hosts (namespaces joined by a veth pair), each with a daemon; the first serves its
 * view on a unix socket, reached through a TCP forward of it as an SSH -L would make, and
 * opened with a read-only key's token. The graph is drawn for segments of several kinds,
 * nothing overlaps, the rates move without a reload, segments come and go live, the remote
 * leg ends in the second host's box, and the refusals hold over plain HTTP. The page's
 * screenshot is left in the test's temporary directory (its path is printed): the README's
 * docs/ui.png is a copy of one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { type TestDaemon, WORMHOLE, runCmd, startDaemon, writeKey } from '../helpers/daemon';
import { suiteCleanup, withHostPair, withNetns } from '../helpers/netns';
import { exchangeIn, startService } from '../helpers/services';
import { sleep, until } from '../helpers/wait';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A TCP port on 127.0.0.1 carried to a unix socket, as `ssh -L PORT:SOCKET` would. */
async function forward(t: { after(fn: () => unknown): void }, socket: string): Promise<number> {
  const server = net.createServer((c) => {
    const u = net.connect({ path: socket });
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.pipe(u).pipe(c);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as net.AddressInfo).port;
}

/** A plain HTTP request through the forward: its status. */
function status(
  port: number,
  o: { method?: string; path?: string; headers?: Record<string, string> },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: o.path ?? '/',
      method: o.method ?? 'GET',
      headers: o.headers,
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Rectangles of what matches `selector`, in page coordinates. */
function rects(
  page: Page,
  selector: string,
): Promise<{ name: string; x: number; y: number; w: number; h: number }[]> {
  return page.$$eval(selector, (els) =>
    els.map((e) => {
      const r = (e.querySelector('rect') ?? e).getBoundingClientRect();
      const name = e.getAttribute('data-box') ?? e.getAttribute('data-id') ?? '';
      return { name, x: r.x, y: r.y, w: r.width, h: r.height };
    }),
  );
}

type Rect = { name: string; x: number; y: number; w: number; h: number };
const apart = (a: Rect, b: Rect): boolean =>
  a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
const inside = (a: Rect, b: Rect): boolean =>
  a.x >= b.x && a.y >= b.y && a.x + a.w <= b.x + b.w && a.y + a.h <= b.y + b.h;

describe('the web view in a browser', () => {
  const suite = suiteCleanup(after);
  let hosts: ReturnType<typeof withHostPair>;
  let a: TestDaemon;
  let b: TestDaemon;
  let tmp: string;
  let port: number;
  let viewerKey: string;
  let browser: BrowserContext;
  let page: Page;
  let third: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'whui-'));
    hosts = withHostPair(suite);
    third = withNetns(suite, 'whc');
    const key = randomBytes(20).toString('hex');
    // a read-only key: enough to view
    viewerKey = path.join(tmp, 'viewer.key');
    writeKey(viewerKey);
    fs.writeFileSync(path.join(tmp, 'keys'), 'viewer viewer.key read-only\n', { mode: 0o644 });
    const socket = path.join(tmp, 'ui.sock');
    a = await startDaemon(suite, {
      netns: hosts.a,
      key,
      args: ['--ui', `unix://${socket}`, '--keys', path.join(tmp, 'keys')],
    });
    b = await startDaemon(suite, { netns: hosts.b, key, args: ['--ui', 'tcp://127.0.0.1:9180'] });
    await startService(suite, hosts.a, 'tcp-echo', '127.0.0.1', 7001);
    await startService(suite, hosts.a, 'tcp-echo', '127.0.0.1', 7002);
    await startService(suite, hosts.a, 'udp-echo', '127.0.0.1', 53);
    await startService(suite, third, 'tcp-echo', '127.0.0.1', 7001);
    await startService(suite, hosts.b, 'tcp-echo', '127.0.0.1', 5432);
    await a.create('id', 'web', 'url', ':7000', 'tail', 'url', ':7001');
    await a.create('id', 'dns', 'url', 'udp://:5353', 'tail', 'url', 'udp://:53');
    await a.create('id', 'lb', 'url', ':7100', 'tail', 'url', ':7001', 'also', 'url', ':7002');
    await a.create('id', 'inns', 'url', ':7300', 'tail', 'url', `tcp://${third}@:7001`);
    await a.create('id', 'rem', 'url', ':6543', 'remote', hosts.ipB, 'tail', 'url', ':5432');
    port = await forward(suite, socket);
    // (the screenshot stays in tmp; the browser's profile goes, after the browser)
    suite.after(() => fs.rmSync(path.join(tmp, 'profile'), { recursive: true, force: true }));
    browser = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 800 },
    });
    suite.after(() => browser.close());
    page = await browser.newPage();
  });

  it("gives each key its own token ('wormhole ui'), and refuses a wrong method, Host or token", async () => {
    const asViewer = await runCmd('ip', [
      ...['netns', 'exec', hosts.a, process.execPath, WORMHOLE],
      ...['-H', 'tcp://127.0.0.1:9999', '-K', viewerKey, 'ui', '--json'],
    ]);
    assert.equal(asViewer.code, 0, asViewer.stderr);
    const viewer = JSON.parse(asViewer.stdout) as { address: string; url: string | null; token: string };
    assert.equal(viewer.address, `unix://${path.join(tmp, 'ui.sock')}`);
    assert.equal(viewer.url, null);
    const admin = await a.cli('ui');
    assert.equal(admin.code, 0, admin.stderr);
    assert.match(
      admin.stdout,
      /^unix:\/\/.*\nforward it \(e\.g\. ssh -L 8080:.*\), then open http:\/\/localhost:8080\/\?token=[0-9a-f]{64}\n$/,
    );
    assert.ok(!admin.stdout.includes(viewer.token), "the admin key's token is not the viewer's");
    assert.ok(!admin.stdout.includes(fs.readFileSync(a.keyFile, 'utf8').trim()), 'no key in the output');

    const cookie = `wormhole-ui-${port}=${viewer.token}`;
    assert.equal(await status(port, { method: 'POST', headers: { cookie } }), 405);
    assert.equal(await status(port, { method: 'DELETE', path: '/events', headers: { cookie } }), 405);
    assert.equal(await status(port, { headers: { cookie, host: 'attacker.example' } }), 403);
    assert.equal(await status(port, {}), 401);
    assert.equal(await status(port, { path: `/?token=${'f'.repeat(64)}` }), 401);
    assert.equal(await status(port, { headers: { cookie } }), 200);
    page.setDefaultTimeout(20_000);
    await page.goto(`http://127.0.0.1:${port}/?token=${viewer.token}`);
    assert.equal(page.url(), `http://127.0.0.1:${port}/`, 'the token is out of the address at once');
  });

  it('draws every segment, its ends in their host and namespace boxes, the remote leg in the other host, nothing overlapping', async () => {
    for (const id of ['web', 'dns', 'lb', 'inns', 'rem'])
      await page.waitForSelector(`[data-segment="${id}"][data-state="ready"]`);
    const ns = await page.$$eval('[data-end]', (els) =>
      els.map((e) => `${e.getAttribute('data-end')} ${e.getAttribute('data-ns')}`),
    );
    assert.ok(ns.includes(`tail ${third}`), `a tail in ${third}: ${ns.join(', ')}`);
    assert.ok(ns.includes(`tail ${hosts.ipB}`), 'the remote leg ends on the other host');
    assert.equal(ns.filter((x) => x.startsWith('head ')).length, 5, 'one head per segment');
    assert.equal(
      await page.$$eval('[data-segment="lb"] path.wire', (p) => p.length),
      2,
      'two tails, two wires',
    );

    const hostBoxes = await rects(page, '.box.host');
    assert.equal(hostBoxes.length, 2);
    assert.ok(apart(hostBoxes[0], hostBoxes[1]), 'the host boxes are apart');
    const peerBox = hostBoxes.find((h) => h.name === hosts.ipB)!;
    assert.ok(peerBox, `a box for ${hosts.ipB}: ${hostBoxes.map((h) => h.name).join(', ')}`);
    const ends = await rects(page, '[data-end]');
    const remTail = (await rects(page, `[data-end="tail"][data-ns="${hosts.ipB}"]`))[0];
    assert.ok(inside(remTail, peerBox), "the remote segment's tail is in the other host's box");
    for (let i = 0; i < ends.length; i++)
      for (let j = i + 1; j < ends.length; j++)
        assert.ok(apart(ends[i], ends[j]), `${ends[i].name} and ${ends[j].name} apart`);
    const nsBox = (await rects(page, '.box.namespace')).find((g) => g.name === `namespace ${third}`)!;
    assert.ok(nsBox && hostBoxes.some((h) => inside(nsBox, h)), 'the namespace box is inside a host box');
  });

  it('moves the rates without a reload', async () => {
    await page.evaluate(() => Object.assign(globalThis, { stayed: true }));
    assert.equal(await page.getAttribute('[data-segment="web"]', 'data-up-bps'), '0');
    // a burst, then up to 1.5 s of the page's own ticks, until one has counted it. The value
    // is read in the page (the drawing may be laid out again meanwhile, the segment briefly
    // not there: read as 0, not an error); an error of the page itself fails the test.
    const payload = 'x'.repeat(256 * 1024);
    const upBps = (): Promise<number> =>
      page.evaluate(
        "Number(document.querySelector('[data-segment=\"web\"]')?.getAttribute('data-up-bps') ?? 0)",
      ) as Promise<number>;
    let seen = false;
    for (let i = 0; i < 20 && !seen; i++) {
      await exchangeIn(hosts.a, 7000, payload);
      for (const end = Date.now() + 1500; !seen && Date.now() < end;) {
        seen = (await upBps()) > 0;
        if (!seen) await sleep(100);
      }
    }
    assert.ok(seen, 'data-up-bps went above 0');
    assert.ok(
      Number(await page.getAttribute('[data-segment="web"]', 'data-down-bps')) > 0,
      'and the echo down',
    );
    assert.equal(
      await page.evaluate(() => (globalThis as { stayed?: boolean }).stayed),
      true,
      'the same page',
    );
    assert.match((await page.textContent('[data-segment="web"] text.rates')) ?? '', /\u2191 \d/);
    fs.mkdirSync(path.join(tmp, 'shots'), { recursive: true });
    const shot = path.join(tmp, 'shots', 'ui.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`# the web view's screenshot: ${shot}`);
  });

  it('shows segments coming and going, live', async () => {
    await a.create('id', 'late', 'url', ':7400', 'tail', 'url', ':7002');
    await page.waitForSelector('[data-segment="late"][data-state]');
    assert.equal((await a.cli('delete', 'late')).code, 0);
    await page.waitForSelector('[data-segment="late"]', { state: 'detached' });
    assert.ok(await page.$('[data-segment="web"]'), 'the others stay');
  });

  it('shows what list --json knows of a clicked segment', async () => {
    await page.click('[data-segment="rem"] text.id');
    await page.waitForSelector('#detail:not([hidden])');
    const shown = JSON.parse((await page.textContent('#detail pre')) ?? '') as {
      id: string;
      tail: { peer?: string };
    };
    assert.equal(shown.id, 'rem');
    assert.match(shown.tail.peer ?? '', new RegExp(`^${hosts.ipB.replace(/\./g, '\\.')}`));
  });

  it("'wormhole ui --open' hands the address to xdg-open (an argv), and says so when there is none", async () => {
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    const said = path.join(tmp, 'xdg-open.args');
    fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${said}\n`, {
      mode: 0o755,
    });
    const cli = (PATH: string) =>
      runCmd(process.execPath, [WORMHOLE, '-H', `unix://${b.socket}`, 'ui', '--open'], { env: { PATH } });
    const opened = await cli(bin);
    assert.equal(opened.code, 0, opened.stderr);
    const url = opened.stdout.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:9180\/\?token=[0-9a-f]{64}$/);
    await until(
      'xdg-open was given the address',
      async () => (fs.existsSync(said) ? fs.readFileSync(said, 'utf8') : ''),
      (args) => args === `${url}\n`,
    );
    const none = await cli(path.join(tmp, 'empty'));
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      'wormhole: xdg-open is not installed (Debian package xdg-utils): open the address above yourself\n',
    );
    const unix = await a.cli('ui', '--open');
    assert.equal(unix.code, 2);
    assert.match(unix.stderr, /^wormhole: ui: --open: the web view is on unix:\/\/.*: forward it first/);
  });
});
