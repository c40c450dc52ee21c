/**
 * A full-screen view in a terminal, with plain ANSI escape sequences (xterm's, which every
 * terminal emulator and tmux/screen understand): the alternate screen, the cursor hidden, raw
 * keys, redrawn in place. `stop()` puts all of it back, whatever way the view ends; a process
 * that exits without calling it (an uncaught exception) is put back by an 'exit' hook.
 *
 * And the text helpers a view needs to fit its width: a string's width in columns, cutting
 * with an ellipsis (escape sequences and control characters are taken out of shown text by
 * format.ts's printable).
 */
import type * as tty from 'node:tty';
import { printable } from './format';

const ESC = '\x1b[';
export const ALT_SCREEN_ON = `${ESC}?1049h`;
export const ALT_SCREEN_OFF = `${ESC}?1049l`;
const CURSOR_HIDE = `${ESC}?25l`;
const CURSOR_SHOW = `${ESC}?25h`;
const HOME = `${ESC}H`;
const CLEAR_LINE = `${ESC}K`;
const CLEAR_BELOW = `${ESC}J`;
const INVERSE = `${ESC}7m`;
const RESET = `${ESC}0m`;

/** Text shown in reverse video (a title bar); its width is the text's. */
export interface Styled {
  text: string;
  inverse?: boolean;
}

/** Where the view is shown: a terminal's output, and its input for keys when it is one. */
export interface TerminalStreams {
  output: tty.WriteStream;
  input: NodeJS.ReadStream;
}

/** A string's width in columns: one per code point (the text shown here is URLs and ids). */
export function width(text: string): number {
  return Array.from(text).length;
}

/** The first `n` columns of `text`. */
function head(text: string, n: number): string {
  return Array.from(text).slice(0, Math.max(0, n)).join('');
}

/** `text` in at most `n` columns: cut at the end with an ellipsis when longer. */
export function ellipsis(text: string, n: number): string {
  if (width(text) <= n) return text;
  if (n <= 1) return head(text, n);
  return `${head(text, n - 1)}…`;
}

/**
 * `text` in at most `n` columns, cut in the middle (`tcp://12…0.1:8080`): both ends of a URL
 * tell the most, its scheme and its port or path.
 */
export function ellipsisMiddle(text: string, n: number): string {
  if (width(text) <= n) return text;
  if (n <= 2) return ellipsis(text, n);
  const chars = Array.from(text);
  const keepEnd = Math.floor((n - 1) / 2);
  const keepStart = n - 1 - keepEnd;
  return `${chars.slice(0, keepStart).join('')}…${chars.slice(chars.length - keepEnd).join('')}`;
}

/** Pad (or cut, without an ellipsis) `text` to exactly `n` columns. */
export function pad(text: string, n: number, align: 'left' | 'right' = 'left'): string {
  const w = width(text);
  if (w >= n) return head(text, n);
  const fill = ' '.repeat(n - w);
  return align === 'left' ? text + fill : fill + text;
}

/**
 * A terminal taken over for a full-screen view until `stop()`. Keys arrive one `data` chunk
 * at a time (raw mode: Ctrl-C is a key, '\x03', not SIGINT).
 */
export class Terminal {
  private active = false;
  private readonly onExit = (): void => this.stop();
  private keyListener?: (data: Buffer | string) => void;
  private resizeListener?: () => void;

  constructor(private readonly streams: TerminalStreams) {}

  /** Columns and rows (80x24 when the terminal does not say). */
  get size(): { columns: number; rows: number } {
    const { columns, rows } = this.streams.output;
    return { columns: columns > 0 ? columns : 80, rows: rows > 0 ? rows : 24 };
  }

  /** Switch to the alternate screen, hide the cursor, read keys raw. */
  start(onKey: (key: string) => void, onResize: () => void): void {
    if (this.active) return;
    this.active = true;
    process.on('exit', this.onExit);
    const { output, input } = this.streams;
    output.write(ALT_SCREEN_ON + CURSOR_HIDE + HOME + CLEAR_BELOW);
    this.resizeListener = onResize;
    output.on('resize', onResize);
    if (input.isTTY) {
      (input as tty.ReadStream).setRawMode(true);
      this.keyListener = (data) => {
        for (const key of data.toString()) onKey(key);
      };
      input.on('data', this.keyListener);
      input.resume();
    }
  }

  /**
   * Draw a whole screen: each line from the top left, the rest of each line and of the screen
   * cleared (no flicker: nothing is erased first). Lines past the last row are not drawn, and
   * every line is cut to the width (a longer one would wrap and scroll the screen).
   */
  draw(lines: (string | Styled)[]): void {
    if (!this.active) return;
    const { columns, rows } = this.size;
    const shown = lines.slice(0, rows).map((l) => {
      const s = typeof l === 'string' ? { text: l } : l;
      const text = head(printable(s.text), columns);
      return s.inverse ? INVERSE + pad(text, columns) + RESET : text + CLEAR_LINE;
    });
    this.streams.output.write(HOME + shown.join('\r\n') + CLEAR_BELOW);
  }

  /** Put the terminal back as it was: raw mode off, cursor shown, the main screen. Idempotent. */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    process.off('exit', this.onExit);
    const { output, input } = this.streams;
    if (this.resizeListener) output.off('resize', this.resizeListener);
    if (this.keyListener) input.off('data', this.keyListener);
    if (input.isTTY) {
      try {
        (input as tty.ReadStream).setRawMode(false);
      } catch {
        // the terminal is gone (hung up): nothing to put back
      }
      input.pause();
    }
    try {
      // a terminal's writes are synchronous: this is out before the process exits
      output.write(RESET + CURSOR_SHOW + ALT_SCREEN_OFF);
    } catch {
      // the terminal is gone
    }
  }
}
