/**
 * What a run found: the rows of each scene, printed as markdown tables, and the issue's
 * targets (issue 8) as ratios between rows of the same run, each met or missed.
 */
import type { ColdStart } from './scenes/cold-start';
import type { RestartPath, ServeAgain } from './scenes/restart';
import type { UdpRow } from './scenes/sockets';

/** One path through one scene. A value left undefined was not measured (printed '–'). */
export interface Row {
  path: string;
  gbps?: number;
  connsPerSec?: number;
  p50us?: number;
  p99us?: number;
  /** Whole RSS of the proxy's processes (MiB) by number of idle proxied connections. */
  idleMiB?: Record<number, number>;
  /** Why something in the row is missing, printed as a footnote. */
  notes?: string[];
}

const f = (n: number | undefined, digits: number): string => (n === undefined ? '–' : n.toFixed(digits));
const thousands = (n: number): string => n.toLocaleString('en-US');
/** The median of some samples (undefined for none). */
export const median = (xs: number[]): number | undefined =>
  xs.length ? [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] : undefined;

/** Footnotes under a table (a markdown list, one line each): each row's notes, numbered, the mark after the path's name. */
function withNotes<R extends { path: string; notes?: string[] }>(
  rows: R[],
  line: (r: R, name: string) => string,
): string {
  const notes: string[] = [];
  const lines = rows.map((r) => {
    const marks = (r.notes ?? []).map((n) => {
      notes.push(n);
      return `[${notes.length}]`;
    });
    return line(r, marks.length ? `${r.path} ${marks.join('')}` : r.path);
  });
  return [...lines, ...(notes.length ? ['', ...notes.map((n, i) => `- [${i + 1}] ${n}`)] : [])].join('\n');
}

/** A scene's table: throughput, connection rate, latency and memory at each idle count. */
export function sceneTable(rows: Row[], idleCounts: number[]): string {
  // (no idle counts: a table without memory columns)
  const idleHeads = idleCounts.map((n) => ` MiB, ${thousands(n)} idle |`);
  const head = [
    `| path | Gbit/s | new conn/s | p50 (µs) | p99 (µs) |${idleHeads.join('')}`,
    `|---|---|---|---|---|${idleCounts.map(() => '---|').join('')}`,
  ];
  const body = withNotes(rows, (r, name) => {
    const mem = idleCounts.map((n) => ` ${f(r.idleMiB?.[n], 1)} |`);
    return `| ${name} | ${f(r.gbps, 2)} | ${f(r.connsPerSec, 0)} | ${f(r.p50us, 0)} | ${f(r.p99us, 0)} |${mem.join('')}`;
  });
  return [...head, body].join('\n');
}

/** The cold-start table: medians, wormhole's rows (and the build beside's) among the by-hand ones. */
export function coldTable(cold: ColdStart): string {
  const ms = (xs: number[]): string => f(median(xs), 0);
  const other = cold.beside;
  return [
    '| how | ms |',
    '|---|---|',
    `| wormhole trigger docker-run (connect to first byte) | ${ms(cold.wormholeMs)} |`,
    ...(other
      ? [`| ${other.path} trigger docker-run (connect to first byte) | ${ms(other.wormholeMs)} |`]
      : []),
    `| docker run -d, then the service polled until it answers | ${ms(cold.byHandMs)} |`,
    `| wormhole after idle stopped the container (connect to first byte) | ${ms(cold.afterIdleMs)} |`,
    ...(other
      ? [
          `| ${other.path} after idle stopped the container (connect to first byte) | ${ms(other.afterIdleMs)} |`,
        ]
      : []),
    `| docker start of the stopped container, then the service polled until it answers | ${ms(cold.byHandStartMs)} |`,
    `| wormhole after idle paused the container (idle-action pause; connect to first byte) | ${ms(cold.afterPauseMs)} |`,
    ...(cold.readyMs
      ? [
          `| wormhole trigger docker-run of a service ready at once, no ready (connect to the first ready answer, retried) | ${ms(cold.readyMs.none)} |`,
          `| the same with ready health (its HEALTHCHECK every 1 s) | ${ms(cold.readyMs.health)} |`,
          `| the same with ready banner | ${ms(cold.readyMs.banner)} |`,
          `| the same with ready exec "test -f /tmp/ready" | ${ms(cold.readyMs.exec)} |`,
        ]
      : []),
  ].join('\n');
}

/** The two-hosts table: throughput, new connections/s and latency (each leg is its own machine's pair). */
export function hostsTable(rows: Row[]): string {
  const head = ['| path | Gbit/s | new conn/s | p50 (µs) | p99 (µs) |', '|---|---|---|---|---|'];
  const body = withNotes(
    rows,
    (r, name) =>
      `| ${name} | ${f(r.gbps, 2)} | ${f(r.connsPerSec, 0)} | ${f(r.p50us, 0)} | ${f(r.p99us, 0)} |`,
  );
  return [...head, body].join('\n');
}

/** UDP between two hosts: the echoed rate (1,400-byte datagrams, 32 in flight) and round trips. */
export function udpTable(rows: UdpRow[]): string {
  const head = [
    '| path | Mbit/s echoed | datagrams/s | lost (of the rate run) | p50 (µs) | p99 (µs) |',
    '|---|---|---|---|---|---|',
  ];
  const body = withNotes(
    rows,
    (r, name) =>
      `| ${name} | ${f(r.mbps, 0)} | ${f(r.datagramsPerSec, 0)} | ${f(r.lost, 0)} | ${f(r.p50us, 0)} | ${f(r.p99us, 0)} |`,
  );
  return [...head, body].join('\n');
}

/**
 * The restart table: while each proxy restarts, connections served and failed (by reason),
 * the longest time none was served, and whether the transfer in flight ended intact.
 */
export function restartTable(rows: RestartPath[]): string {
  const head = [
    '| path | restart | served | failed | longest gap (ms) | new process serving (ms) | transfer in flight |',
    '|---|---|---|---|---|---|---|',
  ];
  const noted = rows.map((r) => ({
    ...r,
    notes: [...(r.skip ? [r.skip] : []), ...(r.error ? [r.error] : [])],
  }));
  const body = withNotes(noted, (r, name) => {
    if (r.skip) return `| ${name} | ${r.how} | – | – | – | – | – |`;
    const why = Object.entries(r.failures)
      .sort(([, a], [, b]) => b - a)
      .map(([w, n]) => `${w} ${n}`)
      .join(', ');
    const failed = r.failed ? `**${r.failed}** (${why})` : '0';
    return `| ${name} | ${r.how} | ${r.ok} | ${failed} | ${f(r.gapMs, 0)} | ${f(r.backMs, 0)} | ${r.transfer.note} |`;
  });
  return [...head, body].join('\n');
}

/** Time to serve again by segments kept in the state directory (median of the repeats). */
export function serveAgainTable(rows: ServeAgain[]): string {
  const head = [
    '| segments kept | SIGTERM to exit (ms) | restart: spawn to first connection through the last segment (ms) | takeover: spawn to new daemon serving (ms) | takeover: spawn to old daemon gone (ms) | clients during the takeovers: served / failed |',
    '|---|---|---|---|---|---|',
  ];
  const body = withNotes(
    rows.map((r) => ({ ...r, notes: r.error ? [r.error] : [] })),
    (r, name) => {
      const c = r.takeoverClients;
      const why = Object.entries(c.failures)
        .map(([w, n]) => `${w} ${n}`)
        .join(', ');
      const clients = `${c.ok} / ${c.failed ? `**${c.failed}** (${why})` : '0'}`;
      return `| ${name} | ${f(median(r.stopMs), 0)} | ${f(median(r.restartMs), 0)} | ${f(median(r.takeoverServingMs), 0)} | ${f(median(r.takeoverMs), 0)} | ${clients} |`;
    },
  );
  return [...head, body].join('\n');
}

export interface Target {
  what: string;
  /** The measured ratio (or value), undefined when a row it needs was not measured. */
  value?: number;
  /** `>=` goal: value must reach it; `<=`: must not exceed it; `<`: must stay below. */
  op: '>=' | '<=' | '<';
  goal: number;
  unit: 'x' | 'ms' | 'KiB';
  met?: boolean;
}

/** A ratio a/b when both were measured. */
export const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;

export function target(
  what: string,
  value: number | undefined,
  op: Target['op'],
  goal: number,
  unit: Target['unit'] = 'x',
): Target {
  const met =
    value === undefined
      ? undefined
      : op === '>='
        ? value >= goal
        : op === '<='
          ? value <= goal
          : value < goal;
  return { what, value, op, goal, unit, met };
}

export function targetsTable(targets: Target[]): string {
  const head = ['| target | measured | goal | |', '|---|---|---|---|'];
  const body = targets.map((t) => {
    const unit = t.unit === 'x' ? 'x' : ` ${t.unit}`;
    const v = t.value === undefined ? '–' : `${t.value.toFixed(2)}${unit}`;
    const goal = `${t.op} ${t.goal}${unit}`;
    const result = t.met === undefined ? 'not measured' : t.met ? 'met' : '**missed**';
    return `| ${t.what} | ${v} | ${goal} | ${result} |`;
  });
  return [...head, ...body].join('\n');
}
