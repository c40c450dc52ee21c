import type { EndpointInfo, SegmentInfo } from '../../api/protocol';
import { formatUnixUrl, formatUrl } from '../../api/url';
import { UsageError } from '../../common/errors';
import { listPages } from '../../client';
import { type Command, withDaemon } from '../command';
import { ago, duration, printable, size, tablePage } from '../format';

/** An end as `list` and `top` show it: its URL, `peer:HOST` for a remote one, `-` for none. */
export function endpoint(e: EndpointInfo | null): string {
  if (!e) return '-';
  if (e.peer) return `peer:${e.peer}`;
  const ns = e.container ? `docker:${e.container.slice(0, 12)}` : (e.ns ?? undefined);
  if (e.proto === 'unix') return formatUnixUrl(e.path ?? '', ns);
  return formatUrl(e.proto, e.host, e.port, ns, e.portEnd);
}

/** A container as people write it: a full id shortened as docker does, a name as it is. */
function short(container: string): string {
  return /^[0-9a-f]{64}$/.test(container) ? container.slice(0, 12) : container;
}

/** What a segment's line says besides its columns: why it failed, what is down, its place. */
function notes(s: SegmentInfo, now: number): string {
  const n: string[] = [];
  if (s.state === 'failed') n.push(`error: ${s.error ?? 'unknown'}`);
  if (s.ready && s.ready.state !== 'ready')
    n.push(
      `${s.ready.state === 'failed' ? 'never ready' : 'waiting for ready'} (${s.ready.why ?? s.ready.mode})`,
    );
  if (s.down?.length) n.push(`down=${s.down.map((d) => `${d.end}:${short(d.container)}`).join(',')}`);
  if (s.refused) n.push(`refused=${s.refused}`);
  const t = s.trigger;
  if (t && t.runs > 0)
    n.push(
      `trigger=${t.state}${t.lastMs !== undefined ? ` in ${duration(t.lastMs)}` : ''}${t.lastError ? ` (${t.lastError})` : ''}`,
    );
  if (t?.idleMs !== undefined)
    n.push(`idle=${duration(t.idleMs)}${t.idleAction === 'pause' ? ' (pause)' : ''}`);
  if (t?.idledAt !== undefined) n.push(`idled ${ago(t.idledAt, now)} ago`);
  for (const tail of s.tails ?? [])
    if (tail.health === 'down') n.push(`tail down${tail.lastError ? ` (${tail.lastError})` : ''}`);
  if (s.parent) n.push(`parent=${s.parent}`);
  if (s.remote) n.push('remote');
  if (s.transparent) n.push('transparent');
  if (s.label) n.push(`label=${s.label}`);
  return n.join(' ');
}

const HEADER = ['ID', 'HEAD', 'TAIL', 'STATE', 'OPEN', 'TOTAL', 'UP', 'DOWN', 'LAST', 'FAILS', 'NOTES'];

/** One row per segment under the header. */
export function listRows(segments: SegmentInfo[], now = Date.now()): string[] {
  return listPageRows(segments, [], now);
}

/**
 * The rows of one page of a listing printed as it comes (tablePage): the header with the
 * first page, nothing at all when there is no segment.
 */
export function listPageRows(segments: SegmentInfo[], widths: number[], now = Date.now()): string[] {
  if (segments.length === 0) return [];
  const rows = segments.map((s) => {
    const t = s.traffic;
    return [
      s.id,
      s.state === 'failed' ? s.url : endpoint(s.head),
      (s.tails?.length ?? 0) > 1 ? `${endpoint(s.tail)} +${(s.tails?.length ?? 1) - 1}` : endpoint(s.tail),
      s.state,
      t ? String(t.open) : '-',
      t ? String(t.total) : '-',
      t ? size(t.bytesUp) : '-',
      t ? size(t.bytesDown) : '-',
      ago(t?.lastActive, now),
      t ? String(t.dialFailures) : '-',
      notes(s, now),
    ].map(printable); // (ids, paths, container names, errors: text from outside)
  });
  return tablePage(HEADER, rows, widths);
}

/**
 * A JSON array printed an element at a time, the same text as JSON.stringify(all, null, 2):
 * each element waits for the next (or the end) to know whether a comma follows it.
 */
class JsonArrayOut {
  private pending: string | undefined;
  private started = false;
  constructor(private readonly out: (line: string) => void) {}

  add(items: unknown[]): void {
    for (const item of items) {
      if (!this.started) this.out('[');
      this.started = true;
      if (this.pending !== undefined) this.out(`${this.pending},`);
      this.pending = `  ${JSON.stringify(item, null, 2).replace(/\n/g, '\n  ')}`;
    }
  }

  end(): void {
    if (this.pending !== undefined) this.out(this.pending);
    this.out(this.started ? ']' : '[]');
  }
}

export const list: Command = {
  name: 'list',
  summary: 'list segments with their counters, one line each',
  json: true,
  usage: `usage: wormhole list [--json]

One line per segment, in columns under a header (nothing at all when there is none):
  ID      the segment's id (delete takes any unique prefix of it)
  HEAD    where it listens; TAIL where its connections go (peer:HOST/ID on a peer)
  STATE   ready; not-ready (ready: its tail is not ready yet, clients wait); waiting (a
          trigger not run yet); triggering; idle (unused for its idle
          time: what its trigger made is released, the next connection runs it again);
          container-down (an end's container stopped: the segment follows it and goes on
          in its new namespace); failed (it could not be built again at start: kept, and
          tried again)
  OPEN    connections open now (UDP: sessions, one per client address)
  TOTAL   connections since it was made (UDP: sessions)
  UP      bytes from clients to the tail; DOWN bytes back
  LAST    how long since a byte last moved
  FAILS   dials to the tail that failed
  NOTES   error: WHY (failed), down=END:CONTAINER, refused=N (at --max-connections or
          --max-udp-sessions, or from outside allow), trigger=STATE in TIME (its last run, and its error),
          idle=TIME (its idle time), idled AGE ago (when it last idled), tail down (WHY),
          waiting for ready (WHY) or never ready (WHY) (ready), parent=ID, remote (made for a peer), transparent (the tail sees the client's
          own address), label=CONTAINER (made from its label)
--json prints an array with every field (see the README for their names).

  wormhole list
  wormhole list --json`,
  async run(args, ctx) {
    const json = args.includes('--json');
    const extra = args.filter((a) => a !== '--json');
    if (extra.length > 0) throw new UsageError(`list: unexpected "${extra[0]}"`);
    // printed as the pages come: 10,000 segments are no single reply (nor one wait)
    const widths: number[] = [];
    const array = new JsonArrayOut(ctx.out);
    await withDaemon(ctx, async (c) => {
      for await (const page of listPages(c)) {
        if (json) array.add(page);
        else for (const line of listPageRows(page, widths)) ctx.out(line);
      }
    });
    if (json) array.end();
    return 0;
  },
};
