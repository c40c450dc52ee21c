/**
 * How the CLI writes numbers and tables for people: sizes in binary units, ages as the
 * shortest unit that says them, columns padded to their widest cell, and text that came from
 * outside (container names, paths, error messages) with its control characters escaped.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A size for people: `512 B`, `1.2 KiB`, `340.0 MiB` (powers of 1024). */
export function size(bytes: number): string {
  let v = bytes;
  let unit = 0;
  while (v >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(v)} B`;
  // 1023.96 KiB would print as 1024.0 KiB: that is 1.0 MiB
  if (Number(v.toFixed(1)) >= 1024 && unit < UNITS.length - 1) return `1.0 ${UNITS[unit + 1]}`;
  return `${v.toFixed(1)} ${UNITS[unit]}`;
}

/** 45s, 12m, 3h, 2d: how long ago `at` (ms since the epoch) was; '-' for never. */
export function ago(at: number | null | undefined, now = Date.now()): string {
  if (!at) return '-';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A duration in ms as people read it: 850ms, 1.2s, 3m. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  return `${Math.round(ms / 60_000)}m`;
}

/**
 * Control characters (C0, DEL, C1) would move the cursor or start an escape sequence in the
 * reader's terminal: shown as '?'. `list` and `top` show every text from the daemon so.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Rows under a header, each column as wide as its widest cell; the last column is not padded. */
export function table(header: string[], rows: string[][]): string[] {
  return tablePage(header, rows, []);
}

/**
 * table() for rows printed as they come, a page at a time (`list` of thousands of segments):
 * `widths`, carried from page to page, grows here, so that each page's columns are at least
 * as wide as the ones before; the header comes with the first page (widths empty) only.
 */
export function tablePage(header: string[], rows: string[][], widths: number[]): string[] {
  const first = widths.length === 0;
  header.forEach((h, i) => {
    widths[i] = Math.max(widths[i] ?? 0, h.length, ...rows.map((r) => (r[i] ?? '').length));
  });
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [...(first ? [line(header)] : []), ...rows.map(line)];
}
