/**
 * `wormhole top`: every segment with its rates, redrawn each second in the terminal until `q`
 * or Ctrl-C; one frame (or one JSON document) when it is not at a terminal or is given
 * --once. Each refresh is one `list` call on one kept connection, reconnected when the daemon
 * goes away; the rates are the differences of two samples over the time between them.
 */
import { printable, size } from '../format';
import type { SegmentInfo } from '../../api/protocol';
import { type Connection, listAll } from '../../client';
import { type ErrorCode, WormholeError, errorMessage } from '../../common/errors';
import { type CliContext, type Command, commandArgs, printJson, withDaemon } from '../command';
import { type Styled, Terminal, ellipsis, ellipsisMiddle, pad, width } from '../terminal';
import { endpoint } from './list';

/** A refresh each second. */
const INTERVAL_MS = 1000;
/** A list call (each page of it) not answered in this long counts as the daemon gone (and is retried). */
const LIST_TIMEOUT_MS = 3000;
/** An id is shown to this many characters when the width is short, as docker shows them. */
const SHORT_ID = 12;
/** A URL column is not cut below this many columns: it is dropped instead. */
const URL_MIN = 16;
/** Between two columns. */
const GAP = '  ';

/** One `list` answer and when it came (a monotonic clock, in ms). */
export interface Sample {
  at: number;
  segments: SegmentInfo[];
}

/** A segment's line: its counters now and its rates since the previous sample (null: none yet). */
export interface TopRow {
  id: string;
  head: string;
  tail: string;
  state: string;
  open: number | null;
  total: number | null;
  bytesUp: number | null;
  bytesDown: number | null;
  connectionsPerSec: number | null;
  bytesUpPerSec: number | null;
  bytesDownPerSec: number | null;
  /** UDP segments only. */
  datagramsUpPerSec?: number | null;
  datagramsDownPerSec?: number | null;
}

/** A counter's rate per second, or null: no earlier sample, or it went back (a restart). */
function rate(before: number | undefined, now: number | undefined, seconds: number): number | null {
  if (before === undefined || now === undefined || seconds <= 0 || now < before) return null;
  return (now - before) / seconds;
}

/** Bytes each way per second, added up; none counts as 0. */
function byteRate(r: TopRow): number {
  return (r.bytesUpPerSec ?? 0) + (r.bytesDownPerSec ?? 0);
}

/**
 * The rows of `cur`, with rates against `prev` (a segment not in `prev` has none yet), most
 * active first: the highest byte rate, then the most open connections, then by id.
 */
export function topRows(prev: Sample | undefined, cur: Sample): TopRow[] {
  const before = new Map((prev?.segments ?? []).map((s) => [s.id, s.traffic]));
  const seconds = prev ? (cur.at - prev.at) / 1000 : 0;
  const rows = cur.segments.map((s): TopRow => {
    const t = s.traffic;
    const p = before.get(s.id);
    const row: TopRow = {
      id: s.id,
      head: s.state === 'failed' ? s.url : endpoint(s.head),
      tail: endpoint(s.tail),
      state: s.state,
      open: t?.open ?? null,
      total: t?.total ?? null,
      bytesUp: t?.bytesUp ?? null,
      bytesDown: t?.bytesDown ?? null,
      connectionsPerSec: rate(p?.total, t?.total, seconds),
      bytesUpPerSec: rate(p?.bytesUp, t?.bytesUp, seconds),
      bytesDownPerSec: rate(p?.bytesDown, t?.bytesDown, seconds),
    };
    if (t?.datagramsUp !== undefined || t?.datagramsDown !== undefined) {
      row.datagramsUpPerSec = rate(p?.datagramsUp, t.datagramsUp, seconds);
      row.datagramsDownPerSec = rate(p?.datagramsDown, t.datagramsDown, seconds);
    }
    return row;
  });
  return rows.sort(
    (a, b) =>
      byteRate(b) - byteRate(a) || (b.open ?? 0) - (a.open ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** A size for people (shared with list: src/cli/format.ts). */
export const formatBytes = size;

/** A byte rate for people, `1.2 MiB/s`; `-` while there is none yet. */
export function formatRate(perSec: number | null): string {
  return perSec === null ? '-' : `${formatBytes(perSec)}/s`;
}

/** Connections per second: `0`, `2.5`, `120`; `-` while there is none yet. */
function formatPerSec(perSec: number | null): string {
  if (perSec === null) return '-';
  if (perSec === 0) return '0';
  return perSec < 10 ? perSec.toFixed(1) : String(Math.round(perSec));
}

function count(n: number | null): string {
  return n === null ? '-' : String(n);
}

/**
 * For each id, the length of its shortest prefix that no other id starts with (its whole
 * length when it is itself the start of another: an exact id names itself).
 */
export function uniquePrefixLengths(ids: readonly string[]): Map<string, number> {
  const sorted = [...new Set(ids)].sort();
  const common = (a: string, b: string): number => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  const out = new Map<string, number>();
  sorted.forEach((id, i) => {
    const shared = Math.max(
      i > 0 ? common(id, sorted[i - 1]) : 0,
      i + 1 < sorted.length ? common(id, sorted[i + 1]) : 0,
    );
    out.set(id, Math.min(id.length, shared + 1));
  });
  return out;
}

/** A column of the table. */
interface Column {
  title: string;
  align: 'left' | 'right';
  cell(r: TopRow): string;
  /** A URL: cut (in the middle) to fit before anything is dropped. */
  url?: boolean;
}

const COLUMNS: Record<string, Column> = {
  id: { title: 'ID', align: 'left', cell: (r) => r.id },
  state: { title: 'STATE', align: 'left', cell: (r) => r.state },
  open: { title: 'OPEN', align: 'right', cell: (r) => count(r.open) },
  connRate: { title: 'CONN/S', align: 'right', cell: (r) => formatPerSec(r.connectionsPerSec) },
  upRate: { title: 'UP/S', align: 'right', cell: (r) => formatRate(r.bytesUpPerSec) },
  downRate: { title: 'DOWN/S', align: 'right', cell: (r) => formatRate(r.bytesDownPerSec) },
  total: { title: 'CONNS', align: 'right', cell: (r) => count(r.total) },
  up: { title: 'UP', align: 'right', cell: (r) => (r.bytesUp === null ? '-' : formatBytes(r.bytesUp)) },
  down: {
    title: 'DOWN',
    align: 'right',
    cell: (r) => (r.bytesDown === null ? '-' : formatBytes(r.bytesDown)),
  },
  head: { title: 'HEAD', align: 'left', cell: (r) => r.head, url: true },
  tail: { title: 'TAIL', align: 'left', cell: (r) => r.tail, url: true },
};

/** The columns, left to right. */
const ORDER = [
  'id',
  'state',
  'open',
  'connRate',
  'upRate',
  'downRate',
  'total',
  'up',
  'down',
  'head',
  'tail',
];

/**
 * What gives way, in turn, when the table is wider than the terminal: the totals; then the
 * URLs are cut in the middle (down to URL_MIN); then the URLs and the state go; then the id
 * is cut to its unique prefix; then the rates; OPEN last. (Before any of this, ids are cut
 * to 12 characters, as docker shows them, or to their unique prefix if that is longer.)
 */
const GIVE_WAY = [
  'up',
  'down',
  'total',
  '<cut urls>',
  'tail',
  'head',
  'state',
  '<cut ids>',
  'connRate',
  'downRate',
  'upRate',
  'open',
];

/** The table's layout: the columns kept and the width of each. */
export function layout(
  rows: readonly TopRow[],
  columns?: number,
): { keys: string[]; widths: Map<string, number> } {
  const cells = (key: string): string[] => rows.map((r) => printable(COLUMNS[key].cell(r)));
  const natural = new Map(
    ORDER.map((k) => [k, Math.max(width(COLUMNS[k].title), ...cells(k).map(width))] as [string, number]),
  );
  const keys = [...ORDER];
  const widths = new Map(natural);
  if (columns === undefined) return { keys, widths };
  const prefixes = uniquePrefixLengths(rows.map((r) => r.id));
  const unique = Math.max(width(COLUMNS.id.title), ...prefixes.values());
  widths.set('id', Math.min(natural.get('id') ?? 0, Math.max(SHORT_ID, unique)));
  let urlMin = (k: string): number => natural.get(k) ?? 0;
  const fits = (): boolean => {
    const fixed = keys.filter((k) => !COLUMNS[k].url).reduce((n, k) => n + (widths.get(k) ?? 0), 0);
    const urls = keys.filter((k) => COLUMNS[k].url);
    let room = columns - fixed - GAP.length * (keys.length - 1);
    if (room < urls.reduce((n, k) => n + urlMin(k), 0)) return false;
    // the room shared out between the URLs: the narrower first, each up to what it needs
    const byNeed = [...urls].sort((a, b) => (natural.get(a) ?? 0) - (natural.get(b) ?? 0));
    byNeed.forEach((k, i) => {
      const w = Math.min(natural.get(k) ?? 0, Math.floor(room / (byNeed.length - i)));
      widths.set(k, w);
      room -= w;
    });
    return true;
  };
  for (const step of GIVE_WAY) {
    if (fits()) break;
    if (step === '<cut ids>') widths.set('id', unique);
    else if (step === '<cut urls>') urlMin = (k) => Math.min(natural.get(k) ?? 0, URL_MIN);
    else keys.splice(keys.indexOf(step), 1);
  }
  // room to spare with everything at full width: the whole ids
  const used = keys.reduce((n, k) => n + (widths.get(k) ?? 0), 0) + GAP.length * (keys.length - 1);
  if (keys.length === ORDER.length && keys.every((k) => k === 'id' || widths.get(k) === natural.get(k)))
    widths.set('id', Math.min(natural.get('id') ?? 0, (widths.get('id') ?? 0) + columns - used));
  return { keys, widths };
}

/** What a frame shows: the table, or why there is none. */
export interface FrameInput {
  address: string;
  now: Date;
  /** The segments, sorted; undefined before the first answer, or when the daemon could not be asked. */
  rows?: TopRow[];
  /** Why the daemon could not be asked. */
  problem?: string;
}

function time(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/**
 * The header: `wormhole top  ADDRESS` on the left, the segment count and the time on the
 * right. Short of room, the address is cut in the middle, then `wormhole top` goes, then the
 * address; the count and the time stay.
 */
function header(f: FrameInput, columns?: number): string {
  const n = f.rows?.length;
  const right = `${n === undefined ? '' : `${n} segment${n === 1 ? '' : 's'}${GAP}`}${time(f.now)}`;
  const title = 'wormhole top';
  const address = printable(f.address);
  if (columns === undefined) return [title, address, right].join(GAP);
  for (const left of [`${title}${GAP}`, '']) {
    const room = columns - width(left) - width(right) - GAP.length;
    if (room < Math.min(width(address), 16)) continue;
    const shown = ellipsisMiddle(address, room);
    return `${left}${shown}${' '.repeat(room - width(shown))}${GAP}${right}`;
  }
  return ellipsis(width(right) <= columns ? right : time(f.now), columns);
}

/**
 * A whole screen: the header, the column titles (shown inverse at a terminal), one line per
 * segment. With `size`, every line fits its columns (see `layout`) and rows past the screen's
 * height are counted on the last line; without, nothing is cut (for scripts).
 */
export function frame(f: FrameInput, size?: { columns: number; rows?: number }): (string | Styled)[] {
  const columns = size?.columns;
  const lines: (string | Styled)[] = [header(f, columns)];
  const fit = (text: string): string => (columns === undefined ? text : ellipsis(text, columns));
  if (!f.rows && f.problem === undefined) {
    lines.push('', 'connecting…');
    return lines;
  }
  if (!f.rows) {
    lines.push('', fit('daemon not reachable, retrying'));
    if (f.problem) lines.push(fit(printable(f.problem)));
    return lines;
  }
  if (f.rows.length === 0) {
    lines.push('', fit("no segments: 'wormhole create' makes one"));
    return lines;
  }
  const { keys, widths } = layout(f.rows, columns);
  const line = (cell: (k: string) => string): string =>
    keys
      .map((k) => {
        const c = COLUMNS[k];
        const w = widths.get(k) ?? 0;
        const text = printable(cell(k));
        const cut = c.url ? ellipsisMiddle(text, w) : text; // ids: a prefix (pad cuts)
        return pad(cut, w, c.align);
      })
      .join(GAP)
      .trimEnd();
  lines.push({ text: fit(line((k) => COLUMNS[k].title)), inverse: true });
  let shown = f.rows;
  const room = size?.rows === undefined ? Infinity : size.rows - lines.length;
  if (shown.length > room) shown = shown.slice(0, Math.max(0, room - 1));
  for (const r of shown) lines.push(fit(line((k) => COLUMNS[k].cell(r))));
  if (shown.length < f.rows.length) lines.push(fit(`… ${f.rows.length - shown.length} more`));
  return lines;
}

/** --json: the rates of one interval, with the counters they come from. */
function jsonDoc(address: string, intervalMs: number | null, rows: TopRow[]): object {
  const round = (v: number | null | undefined): number | null | undefined =>
    v === null || v === undefined ? v : Math.round(v * 100) / 100;
  return {
    daemon: address,
    at: new Date().toISOString(),
    intervalMs: intervalMs === null ? null : Math.round(intervalMs),
    segments: rows.map((r) => ({
      id: r.id,
      head: r.head === '-' ? null : r.head,
      tail: r.tail === '-' ? null : r.tail,
      state: r.state,
      open: r.open,
      total: r.total,
      bytesUp: r.bytesUp,
      bytesDown: r.bytesDown,
      connectionsPerSec: round(r.connectionsPerSec),
      bytesUpPerSec: round(r.bytesUpPerSec),
      bytesDownPerSec: round(r.bytesDownPerSec),
      ...(r.datagramsUpPerSec !== undefined
        ? { datagramsUpPerSec: round(r.datagramsUpPerSec), datagramsDownPerSec: round(r.datagramsDownPerSec) }
        : {}),
    })),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One frame (or JSON document) from two samples a second apart, on one connection. */
async function once(ctx: CliContext): Promise<number> {
  const [first, second] = await withDaemon(ctx, async (c) => {
    const a: Sample = { at: performance.now(), segments: await listAll(c) };
    if (a.segments.length === 0) return [undefined, a];
    await sleep(INTERVAL_MS);
    return [a, { at: performance.now(), segments: await listAll(c) }];
  });
  const rows = topRows(first, second);
  if (ctx.json) {
    printJson(ctx, jsonDoc(ctx.address, first ? second.at - first.at : null, rows));
    return 0;
  }
  const columns = ctx.terminal?.output.columns;
  const lines = frame({ address: ctx.address, now: new Date(), rows }, columns ? { columns } : undefined);
  for (const l of lines) ctx.out(typeof l === 'string' ? l : l.text);
  return 0;
}

/** Errors that may pass once the daemon is back; anything else before the first frame is fatal. */
const RETRIED = new Set<ErrorCode>(['DAEMON_UNREACHABLE', 'TIMEOUT', 'CONNECTION_LOST', 'NO_REPLY']);

/** Signals that end the view, and the exit code each gives (128 + its number). */
const SIGNALS: [NodeJS.Signals, number][] = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
];

/** The live view, until `q`, Ctrl-C or a signal; the terminal is put back on every way out. */
async function live(ctx: CliContext, streams: NonNullable<CliContext['terminal']>): Promise<number> {
  const term = new Terminal(streams);
  let code: number | undefined;
  let onStop!: () => void;
  const stopped = new Promise<'stopped'>((resolve) => (onStop = () => resolve('stopped')));
  const stop = (c: number): void => {
    code ??= c;
    onStop();
  };
  /** `p`, or 'stopped' as soon as the view is told to end (p goes on; see its callers). */
  const unlessStopped = <T>(p: Promise<T>): Promise<T | 'stopped'> => Promise.race([p, stopped]);

  let view: FrameInput = { address: ctx.address, now: new Date() };
  const redraw = (): void => term.draw(frame(view, term.size));
  const handlers = SIGNALS.map(([sig, c]) => [sig, () => stop(c)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  // the terminal went away under us (EIO once it is closed): end as a hangup would
  const onOutputError = (): void => stop(129);
  streams.output.on('error', onOutputError);

  let conn: Connection | undefined;
  let prev: Sample | undefined;
  let served = false;
  try {
    term.start((key) => {
      if (key === 'q' || key === 'Q' || key === '\x03') stop(0);
    }, redraw);
    redraw(); // 'connecting…' until the first answer
    let next = Date.now();
    while (code === undefined) {
      try {
        if (!conn) {
          const connecting = ctx.connect();
          const c = await unlessStopped(connecting);
          if (c === 'stopped') {
            connecting.then(
              (late) => late.close(),
              () => undefined,
            );
            break;
          }
          conn = c;
        }
        const answer = await unlessStopped(listAll(conn, LIST_TIMEOUT_MS));
        if (answer === 'stopped') break;
        const cur: Sample = { at: performance.now(), segments: answer };
        view = { address: ctx.address, now: new Date(), rows: topRows(prev, cur) };
        prev = cur;
        served = true;
      } catch (e) {
        const retried = e instanceof WormholeError && RETRIED.has(e.code);
        if (!served && !retried) throw e;
        conn?.close();
        conn = undefined;
        prev = undefined; // a daemon that came back counts afresh: its rates start again
        view = { address: ctx.address, now: new Date(), rows: undefined, problem: errorMessage(e) };
      }
      redraw();
      next += INTERVAL_MS;
      if (next < Date.now()) next = Date.now() + INTERVAL_MS; // late (a slow answer): no catching up
      let timer: NodeJS.Timeout | undefined;
      await unlessStopped(new Promise<void>((resolve) => (timer = setTimeout(resolve, next - Date.now()))));
      clearTimeout(timer);
    }
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    conn?.close();
    term.stop();
    streams.output.off('error', onOutputError);
  }
  return code ?? 0;
}

export const top: Command = {
  name: 'top',
  summary: 'a live view of every segment: rates and open connections',
  json: true,
  flags: ['--once'],
  usage: `usage: wormhole top [--once] [--json]

Every segment, redrawn each second, most active first (by bytes per second, then open
connections): ID, STATE, OPEN connections, CONN/S (new connections per second), UP/S and
DOWN/S (bytes per second, up: client to tail), CONNS, UP and DOWN (in all), HEAD and TAIL.
Rates show '-' until a second sample is in. A narrow terminal gets ids cut to a unique
prefix, URLs cut with '…', and fewer columns. If the daemon goes away, top says so and
connects again. Keys: q or Ctrl-C quits.

--once prints one frame, its rates taken over one second, and exits; so does top when its
output is not a terminal. --json (implies --once) prints {"daemon", "at", "intervalMs",
"segments": [{"id", "head", "tail", "state", "open", "total", "bytesUp", "bytesDown",
"connectionsPerSec", "bytesUpPerSec", "bytesDownPerSec"}]} (UDP segments add
datagramsUpPerSec and datagramsDownPerSec; a rate is null where there is none).

  wormhole top
  wormhole top --once
  wormhole top --once --json`,
  async run(args, ctx) {
    const { flags } = commandArgs(this, args, 0);
    if (flags.has('--once') || ctx.json || !ctx.terminal) return once(ctx);
    return live(ctx, ctx.terminal);
  },
};
