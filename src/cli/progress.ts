/**
 * Long work shown as it goes (`apply` of many segments): at a terminal, one line redrawn in
 * place, a bar with counts, cleared before the command prints its own lines; elsewhere (a
 * file, a pipe) a plain line at each tenth of the work, so that a log shows it moving.
 */
import type * as tty from 'node:tty';

/** The bar's width in columns. */
const BAR = 30;

/** One piece of long work's progress, shown on a terminal or as plain lines. */
export class ProgressView {
  /** The tenths of the work said in plain lines so far. */
  private tenths = 0;
  private drawn = false;

  /** `terminal`: where the bar is drawn; without one, `out` prints the plain lines. */
  constructor(
    private readonly what: string,
    private readonly terminal: tty.WriteStream | undefined,
    private readonly out: (line: string) => void,
  ) {}

  /** `done` of `total` steps are done. */
  update(done: number, total: number): void {
    if (total <= 0) return;
    const counts = `${done}/${total}`;
    if (this.terminal) {
      const full = Math.round((BAR * Math.min(done, total)) / total);
      this.terminal.write(`\r${this.what} [${'#'.repeat(full)}${'.'.repeat(BAR - full)}] ${counts}\x1b[K`);
      this.drawn = true;
      return;
    }
    const tenths = Math.floor((10 * Math.min(done, total)) / total);
    if (tenths <= this.tenths) return;
    this.tenths = tenths;
    this.out(`${this.what}: ${counts}`);
  }

  /** The work is over: the bar is cleared (plain lines stay). */
  end(): void {
    if (this.drawn) this.terminal?.write('\r\x1b[K');
    this.drawn = false;
  }
}
