/**
 * npm run bench [-- --quick]: wormhole beside every proxy a user would pick, in one run on
 * this machine (issue 8, point 5).
 *
 * 1. One namespace: direct, wormhole, socat, docker-proxy, all on the host's 127.0.0.1.
 * 2. Across namespaces (the seed's first example): a host port to servers inside another
 *    namespace, through wormhole, pasta, docker-proxy and socat (to the veth address).
 * 3. Cold start of a socket-activated container, beside `docker run` and polling.
 * 4. Two hosts (namespaces joined by a veth pair): the link, `remote`, `tunnel`, `ssh -L`,
 *    and `wormhole ping` between the daemons.
 * 5. Restart under clients (issue 9): wormhole restarted and taken over, docker-proxy and
 *    socat restarted, with a client every 5 ms and a transfer in flight; time to serve again.
 * 6. Sockets (issue 12): tcp -> unix through wormhole and socat beside the unix socket
 *    itself; UDP between two hosts over `remote` and through a `tunnel`, beside the link.
 * Then the issue's targets as ratios of this run, met or missed. Prints markdown tables and
 * writes dist/bench-results.json. Rows: bench/scenes/*; proxies: bench/peers.ts.
 * 7. Scale (issue 20): 10,000 segments applied on one daemon, listed, restarted, taken over.
 * 8. Port ranges (issue 20): memory for 1,000 and 10,000 forwarded ports, beside pasta and
 *    docker-proxy (bench/scenes/ranges.ts).
 * `--only restart` (or a comma list of local, cold-start, two-hosts, restart, scale, ranges,
 * balance, sockets) runs those scenes alone; the targets are printed only when the scenes they compare
 * have run. `--beside DIR [--beside-label NAME]` measures every wormhole row again with the
 * daemon and CLI of another built checkout, in the same rounds, and ends with a table of this
 * build's figures over that build's (bench/beside.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stopDockerdIfStarted } from '../test/helpers/docker';
import { config } from './config';
import { besideBuild, besideFigures, besideTable, type Results } from './beside';
import { fdLimit, ROOT, stopAll, THIS_BUILD } from './env';
import {
  coldTable,
  hostsTable,
  ratio,
  restartTable,
  type Row,
  sceneTable,
  serveAgainTable,
  type Target,
  target,
  median,
  targetsTable,
  udpTable,
} from './report';
import { balance } from './scenes/balance';
import { type ColdStart, coldStart } from './scenes/cold-start';
import { acrossNamespaces, oneNamespace } from './scenes/local';
import { measureScenes } from './scenes/paths';
import { restart } from './scenes/restart';
import { ranges, rangesTable } from './scenes/ranges';
import { scale, scaleTable } from './scenes/scale';
import { tcpToUnix, udpTwoHosts } from './scenes/sockets';
import { type TwoHosts, twoHosts } from './scenes/two-hosts';
import { uiCost } from './scenes/ui';

/** Open files this run and its children need: 10,000 idle connections are 20,000 in a proxy. */
const NOFILE = 262144;

/**
 * Raise RLIMIT_NOFILE for the bench and everything it starts (children inherit it): Node
 * cannot set it, so the run starts itself again under prlimit(1) and returns its exit
 * status. False: no need, or prlimit cannot (not root, not installed): carry on as is.
 */
function reexecWithFdLimit(): number | false {
  if (fdLimit() >= NOFILE || process.env.WORMHOLE_BENCH_NOFILE) return false;
  const raise = `--nofile=${NOFILE}:${NOFILE}`;
  if (spawnSync('prlimit', [raise, 'true']).status !== 0) return false;
  process.on('SIGINT', () => {}); // Ctrl-C: the child cleans up, this one waits for it
  const r = spawnSync('prlimit', [raise, process.execPath, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, WORMHOLE_BENCH_NOFILE: '1' },
  });
  return r.status ?? 1;
}

const find = (rows: Row[], prefix: string): Row | undefined => rows.find((r) => r.path.startsWith(prefix));

/**
 * Whole RSS at 5,000 idle connections, wormhole / docker-proxy. Where docker-proxy could not
 * hold 5,000 (its open-file limit), the largest count both reached stands in, and says so.
 */
function memoryTarget(scene: string, wh: Row | undefined, dp: Row | undefined): Target {
  const both = Object.keys(wh?.idleMiB ?? {})
    .map(Number)
    .filter((n) => n <= 5000 && dp?.idleMiB?.[n] !== undefined);
  const n = both.includes(5000) ? 5000 : Math.max(0, ...both);
  const what = `RSS at ${n === 5000 || n === 0 ? '5,000' : `${n.toLocaleString('en-US')} (docker-proxy did not reach 5,000)`} idle vs docker-proxy, ${scene}`;
  return target(what, n ? ratio(wh?.idleMiB?.[n], dp?.idleMiB?.[n]) : undefined, '<=', 1.0);
}

/**
 * The issue's targets, as ratios of this run (wormhole / peer). The first row whose name
 * starts with `wormhole` is this build's: the scenes list the build beside's after it.
 */
function issueTargets(same: Row[], across: Row[], two: TwoHosts, cold?: ColdStart | string): Target[] {
  const wh = find(same, 'wormhole');
  const dp = find(same, 'docker-proxy');
  const whX = find(across, 'wormhole');
  const dpX = find(across, 'docker-proxy');
  const pastaX = find(across, 'pasta');
  const remote = find(two.rows, 'wormhole remote');
  const ssh = find(two.rows, 'ssh -L');
  const tunnel = find(two.rows, 'wormhole tunnel (');
  const link = find(two.rows, 'plain veth link');
  return [
    target('throughput vs docker-proxy, one namespace', ratio(wh?.gbps, dp?.gbps), '>=', 1.2),
    target('throughput vs docker-proxy, across namespaces', ratio(whX?.gbps, dpX?.gbps), '>=', 1.2),
    target('throughput vs pasta, across namespaces', ratio(whX?.gbps, pastaX?.gbps), '>=', 1.0),
    target('new conn/s vs docker-proxy, one namespace', ratio(wh?.connsPerSec, dp?.connsPerSec), '>=', 1.1),
    target(
      'new conn/s across namespaces / one namespace',
      ratio(whX?.connsPerSec, wh?.connsPerSec),
      '>=',
      0.9,
    ),
    target('latency p50 vs docker-proxy, one namespace', ratio(wh?.p50us, dp?.p50us), '<=', 1.0),
    target('latency p99 vs docker-proxy, one namespace', ratio(wh?.p99us, dp?.p99us), '<=', 1.0),
    target('latency p50 vs docker-proxy, across namespaces', ratio(whX?.p50us, dpX?.p50us), '<=', 1.0),
    target('latency p99 vs docker-proxy, across namespaces', ratio(whX?.p99us, dpX?.p99us), '<=', 1.0),
    memoryTarget('one namespace', wh, dp),
    memoryTarget('across namespaces', whX, dpX),
    target('remote leg new conn/s vs ssh -L', ratio(remote?.connsPerSec, ssh?.connsPerSec), '>=', 1.5),
    target('remote leg throughput vs ssh -L', ratio(remote?.gbps, ssh?.gbps), '>=', 1.1),
    target('remote leg latency p50 vs ssh -L', ratio(remote?.p50us, ssh?.p50us), '<=', 1.0),
    target('tunnel segment throughput vs ssh -L (issue 19)', ratio(tunnel?.gbps, ssh?.gbps), '>=', 0.4),
    target('peer ping over veth, the first after a start', two.peerPingFirstMs, '<', 5, 'ms'),
    target(
      "peer ping over veth, over the link's own round trip (p50)",
      two.peerPingMs !== undefined && link?.p50us !== undefined
        ? two.peerPingMs - link.p50us / 1000
        : undefined,
      '<',
      1,
      'ms',
    ),
    target(
      'an idle stream on the peer channel, both daemons (issue 17)',
      two.idleStreamBytes?.[0] && two.idleStreamBytes[0].bytes / 1024,
      '<=',
      2,
      'KiB',
    ),
    target(
      'first byte after idle paused the container (issue 21)',
      typeof cold === 'object' && cold.afterPauseMs.length > 0 ? median(cold.afterPauseMs) : undefined,
      '<',
      100,
      'ms',
    ),
  ];
}

const SCENES = ['local', 'cold-start', 'two-hosts', 'restart', 'scale', 'ranges', 'balance', 'sockets'];

/** The scenes `--only A[,B]` names (every scene without it); exits on a name it does not know. */
function scenesWanted(): Set<string> {
  const i = process.argv.indexOf('--only');
  if (i < 0) return new Set(SCENES);
  const names = (process.argv[i + 1] ?? '').split(',').filter(Boolean);
  const unknown = names.filter((n) => !SCENES.includes(n));
  if (names.length === 0 || unknown.length) {
    console.error(`bench: --only takes a comma list of ${SCENES.join(', ')}`);
    process.exit(2);
  }
  return new Set(names);
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const want = scenesWanted();
  const beside = besideBuild(process.argv);
  // this build first: the targets below read its rows as the first named wormhole
  const builds = beside ? [THIS_BUILD, beside] : [THIS_BUILD];
  const cfg = config(quick, fdLimit());
  if (cfg.idle.join() !== config(quick).idle.join()) {
    console.error(
      `# open files limited to ${fdLimit()} (raising it needs CAP_SYS_RESOURCE): ` +
        `memory read at ${cfg.idle.join(', ')} idle connections`,
    );
  }
  const results: Results & Record<string, unknown> = { date: new Date().toISOString(), config: cfg };
  try {
    let same: Row[] = [];
    let across: Row[] = [];
    if (want.has('local')) {
      // both scenes stand at once, so that their measurements interleave (bench/scenes/paths.ts)
      const scenes = [await oneNamespace(cfg, builds), await acrossNamespaces(cfg, builds)];
      [same, across] = await measureScenes(scenes, cfg);
      results.oneNamespace = same;
      results.acrossNamespaces = across;
      await stopAll();
      const idle = cfg.idle.map((n) => n.toLocaleString('en-US')).join(', ');
      const how = `iperf3 one stream ${cfg.seconds} s; ${cfg.conns} connections, 8 in flight; ${cfg.rounds} round trips; ${cfg.repeats > 1 ? `median of ${cfg.repeats} rounds; ` : ''}memory at ${idle} idle connections`;
      console.log(`\n### One namespace (127.0.0.1; ${how})\n`);
      console.log(sceneTable(same, cfg.idle));
      console.log(`\n### Across namespaces (host 127.0.0.1 to a service inside a namespace)\n`);
      console.log(sceneTable(across, cfg.idle));
    }

    if (want.has('cold-start')) {
      const cold = await coldStart(cfg, builds).catch(
        (err: Error) => `failed: ${err.message.split('\n')[0]}`,
      );
      results.coldStart = cold;
      await stopAll();
      console.log('\n### Cold start of a socket-activated container (first byte back, median)\n');
      console.log(typeof cold === 'string' ? `skipped: ${cold}` : coldTable(cold));
    }

    let two: TwoHosts | undefined;
    if (want.has('two-hosts')) {
      two = await twoHosts(cfg, builds);
      results.twoHosts = two;
      await stopAll();
      console.log(`\n### Two hosts (namespaces joined by a veth pair, iperf3 ${cfg.seconds} s)\n`);
      console.log(hostsTable(two.rows));
      for (const p of [{ path: 'wormhole', ...two }, ...(two.beside ? [two.beside] : [])])
        console.log(
          `\n${p.path} ping between the two daemons: ${p.peerPingMs === undefined ? p.peerPingNote : `${p.peerPingMs.toFixed(2)} ms (the first after a start, through the CLI: ${p.peerPingFirstMs?.toFixed(2)} ms)`}`,
        );
      for (const s of two.idleStreamBytes ?? [])
        console.log(
          `\n${s.path}: an idle stream on the peer channel costs both daemons ${(s.bytes / 1024).toFixed(2)} KiB`,
        );
    }

    if (want.has('restart')) {
      const r = await restart(cfg, builds);
      results.restart = r;
      await stopAll();
      console.log(
        `\n### Restart while clients connect (a connection every 5 ms; 64 MiB through the echo, half before the restart, half after)\n`,
      );
      console.log(restartTable(r.paths));
      const times = cfg.quick ? 'one restart and one takeover' : 'median of 3 restarts and 3 takeovers';
      console.log(`\n### Time to serve again, segments kept in the state directory (${times})\n`);
      console.log(serveAgainTable(r.serveAgain));
    }

    if (want.has('scale')) {
      const rows = await scale(cfg, builds);
      results.scale = rows;
      await stopAll();
      console.log(
        `\n### Scale: ${rows[0]?.segments.toLocaleString('en-US')} segments on one daemon (apply -f of one file; heads idle)\n`,
      );
      console.log(scaleTable(rows));
    }

    if (want.has('ranges')) {
      const rows = await ranges(cfg, builds);
      results.ranges = rows;
      await stopAll();
      console.log(
        `\n### Port ranges: memory to forward 1,000 and 10,000 host ports into a namespace (port i to port i; median of ${cfg.repeats} rounds)\n`,
      );
      console.log(rangesTable(rows));
    }

    if (want.has('balance')) {
      const rows = await balance(cfg, builds);
      results.balance = rows;
      await stopAll();
      console.log(
        `\n### Several tails and the access log (new connections/s, one namespace, median of ${cfg.repeats})\n`,
      );
      console.log('| path | conn/s | vs one tail |\n| --- | --- | --- |');
      for (const r of rows)
        console.log(
          `| ${r.path} | ${Math.round(r.connsPerSec).toLocaleString('en-US')} | ${r.vsOneTail.toFixed(2)}x |`,
        );
      // the web view's cost beside (this build only): the daemon with a page open and without
      const ui = await uiCost(cfg);
      results.uiCost = ui;
      await stopAll();
      console.log(`\n### The web view (issue 22): the daemon over ${cfg.seconds * 2} s, this build\n`);
      console.log('| daemon | CPU | RSS | events |\n| --- | --- | --- | --- |');
      for (const r of ui)
        console.log(`| ${r.path} | ${r.cpuPercent.toFixed(1)}% | ${r.rssMiB.toFixed(1)} MiB | ${r.events} |`);
    }

    if (want.has('sockets')) {
      const unix = await tcpToUnix(cfg, builds);
      await stopAll();
      const udp = await udpTwoHosts(cfg, builds);
      await stopAll();
      results.sockets = { tcpToUnix: unix, udpTwoHosts: udp };
      const rounds = cfg.repeats > 1 ? `; median of ${cfg.repeats} rounds` : '';
      console.log(
        `\n### tcp -> unix (a TCP port to a unix echo and a unix sink on one host; sink ${cfg.seconds} s; ${cfg.conns} connections, 8 in flight; ${cfg.rounds} round trips${rounds})\n`,
      );
      console.log(sceneTable(unix, []));
      console.log(
        `\n### UDP between two hosts (a UDP echo on the second; 1,400-byte datagrams, 32 in flight, ${cfg.seconds} s${rounds})\n`,
      );
      console.log(udpTable(udp));
    }

    const targets = two && want.has('local') ? issueTargets(same, across, two, results.coldStart) : undefined;
    if (targets) {
      results.targets = targets;
      console.log(`\n### Targets (issue 8), as ratios of this run (wormhole / peer)\n`);
      console.log(targetsTable(targets));
    }
    if (beside) {
      const figures = besideFigures(results, beside, cfg);
      results.beside = { dir: beside.root, label: beside.beside, figures };
      console.log(
        `\n### Beside wormhole (${beside.beside}): each figure of this build over the same of ${beside.root}, in this run\n`,
      );
      console.log(besideTable(figures, beside));
    }
  } finally {
    await stopAll();
    await stopDockerdIfStarted().catch(() => undefined);
    fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'dist/bench-results.json'), JSON.stringify(results, null, 2));
  }
}

const status = reexecWithFdLimit();
if (status !== false) process.exit(status);
// Ctrl-C still removes the namespaces and stops every process this run started
process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
