/**
 * The web view's cost (issue 22), a small row beside the balance scene: the daemon's CPU and
 * memory with 100 idle segments and no page open, beside the same with the web view open and
 * streaming (one event stream, as a tab holds, read for the same time). This build only: a
 * build beside may have no --ui.
 */
import * as http from 'node:http';
import type { Config } from '../config';
import { cpuSeconds } from '../cpu';
import { rssMiB } from '../measure';
import { type Daemon, THIS_BUILD, daemon, echoServer, port, sleep, waitPort } from '../env';

export interface UiCostRow {
  path: string;
  /** The daemon's CPU over the window, in percent of one core. */
  cpuPercent: number;
  /** Its resident memory at the end of the window. */
  rssMiB: number;
  /** Events the page received in the window (0 without one). */
  events: number;
}

/** An event stream held open as the page holds it; counts the events it gets. */
function openPage(d: Daemon, uiPort: number): { events: () => number; close: () => void } {
  const { token } = JSON.parse(d.cli('ui', '--json')) as { token: string };
  let events = 0;
  const req = http.get({
    host: '127.0.0.1',
    port: uiPort,
    path: '/events',
    headers: { cookie: `wormhole-ui-${uiPort}=${token}` },
  });
  req.on('response', (res) =>
    res.on('data', (b: Buffer) => (events += b.toString().split('\n\n').length - 1)),
  );
  req.on('error', () => undefined);
  return { events: () => events, close: () => req.destroy() };
}

/** Both rows, measured for twice the iperf seconds each, one after the other. */
export async function uiCost(cfg: Config): Promise<UiCostRow[]> {
  const echo = port();
  echoServer('127.0.0.1', echo);
  await waitPort('127.0.0.1', echo);
  const uiPort = port();
  const rows: UiCostRow[] = [];
  for (const [path, flags] of [
    ['100 idle segments, no page', []],
    ['100 idle segments, web view open', ['--ui', `tcp://127.0.0.1:${uiPort}`]],
  ] as [string, string[]][]) {
    const d = daemon(THIS_BUILD, { flags });
    for (let i = 0; i < 100; i++) d.cli('create', 'url', `:${port()}`, 'tail', 'url', `:${echo}`);
    const page = flags.length > 0 ? openPage(d, uiPort) : undefined;
    await sleep(2000); // the first events and layouts out of the way
    // (the daemon runs on: its figures are there; NaN, printed as such, if it died)
    const [cpu0, events0, t0] = [cpuSeconds(d.pid) ?? NaN, page?.events() ?? 0, Date.now()];
    await sleep(cfg.seconds * 2000);
    const cpu = (cpuSeconds(d.pid) ?? NaN) - cpu0;
    rows.push({
      path,
      cpuPercent: (cpu * 100 * 1000) / (Date.now() - t0),
      rssMiB: rssMiB([d.pid]),
      events: (page?.events() ?? 0) - events0,
    });
    page?.close();
  }
  return rows;
}
