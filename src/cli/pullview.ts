/**
 * An image's pull as `create` and `apply` show it while they wait (the daemon's progress
 * frames: src/docker/progress.ts). At a terminal: one line per layer, redrawn in place as
 * docker pull does (`a1b2c3d4e5f6: Downloading [=====>    ] 1.2 MiB / 5.0 MiB`). Elsewhere (a
 * pipe, a file, a test): a plain line each time a layer's status changes, never a byte count
 * per line. Both go to stderr: stdout keeps the command's own answer (`ID URL`, `--json`).
 */
import type { PullProgress } from '../api/protocol';
import { printable, size } from './format';

/** Width of the bar between the brackets. */
const BAR = 30;

/** Where the view writes (stderr), and whether it may redraw (a terminal). */
export interface PullViewOutput {
  write(text: string): void;
  live: boolean;
}

/** `[=====>    ]`, done of total. */
function bar(current: number, total: number): string {
  const filled = Math.min(BAR, Math.floor((current / total) * BAR));
  return `[${'='.repeat(filled)}${filled < BAR ? '>' : ''}${' '.repeat(Math.max(0, BAR - filled - 1))}]`;
}

/** A layer's line as a terminal shows it. */
export function layerLine(p: PullProgress): string {
  const head = p.layer !== undefined ? `${printable(p.layer)}: ` : '';
  const counts =
    p.current !== undefined && p.total !== undefined
      ? ` ${bar(p.current, p.total)} ${size(p.current)} / ${size(p.total)}`
      : '';
  return `${head}${printable(p.status)}${counts}`;
}

/** The view of the pulls one command waits for: give it every progress frame. */
export class PullView {
  /** Live: the lines drawn, by image and layer, in the order they first came. */
  private readonly lines = new Map<string, string>();
  /** Plain: the last status told of each image and layer. */
  private readonly told = new Map<string, string>();
  private drawn = 0;

  constructor(private readonly out: PullViewOutput) {}

  /** One progress frame. */
  show(p: PullProgress): void {
    const key = `${p.image}\0${p.layer ?? ''}`;
    if (!this.out.live) {
      if (this.told.get(key) === p.status) return;
      this.told.set(key, p.status);
      const layer = p.layer !== undefined ? ` ${printable(p.layer)}` : '';
      this.out.write(`pulling ${printable(p.image)}:${layer} ${printable(p.status)}\n`);
      return;
    }
    const title = `\0${p.image}`;
    if (!this.lines.has(title)) this.lines.set(title, `pulling ${printable(p.image)}`);
    this.lines.set(key, p.layer === undefined ? `  ${printable(p.status)}` : `  ${layerLine(p)}`);
    // back to the first line drawn, then every line again, each cleared first
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    const body = [...this.lines.values()].map((l) => `\x1b[2K${l}\n`).join('');
    this.drawn = this.lines.size;
    this.out.write(`${up}${body}`);
  }
}
