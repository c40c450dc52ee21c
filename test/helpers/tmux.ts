/**
 * A real terminal for tests: a tmux server of the test's own (its own socket, no config)
 * running bash in one pane of a given size. Type into it, read the screen back, ask tmux what
 * the pane's state is (alternate screen, cursor shown, size).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCmd } from './daemon';
import type { Cleanup } from './netns';

/** The shell's prompt, to tell when a command has ended. */
export const PROMPT = 'tmux-test$ ';

export class Tmux {
  private constructor(
    readonly dir: string,
    private readonly socket: string,
  ) {}

  /** A tmux server with one detached session running bash, `columns` x `rows`. */
  static async start(t: Cleanup, columns: number, rows: number): Promise<Tmux> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wht-'));
    const tmux = new Tmux(dir, path.join(dir, 'tmux.sock'));
    t.after(async () => {
      await tmux.tmux('kill-server').catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const shell = `env PS1='${PROMPT}' HISTFILE=/dev/null bash --norc --noprofile`;
    await tmux.tmux('new-session', '-d', '-s', 'test', '-x', String(columns), '-y', String(rows), shell);
    await tmux.waitFor((s) => s.includes(PROMPT.trim()), 'the shell prompt');
    return tmux;
  }

  /** Run tmux against this server; its stdout. */
  async tmux(...args: string[]): Promise<string> {
    const r = await runCmd('tmux', ['-S', this.socket, '-f', '/dev/null', ...args], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** Type a line into the shell and press Enter. */
  async typeLine(line: string): Promise<void> {
    await this.tmux('send-keys', '-t', 'test', '-l', line);
    await this.tmux('send-keys', '-t', 'test', 'Enter');
  }

  /** Press keys, as tmux names them (`q`, `C-c`). */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux('send-keys', '-t', 'test', ...keys);
  }

  /** The screen as text, wrapped lines joined (so a line wider than the pane shows as such). */
  async screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-J', '-t', 'test');
  }

  /** A tmux format about the pane, e.g. `#{alternate_on}`. */
  async pane(format: string): Promise<string> {
    return (await this.tmux('display-message', '-p', '-t', 'test', format)).trim();
  }

  async resize(columns: number, rows: number): Promise<void> {
    await this.tmux('resize-window', '-t', 'test', '-x', String(columns), '-y', String(rows));
  }

  /** Poll the screen until `ok(screen)` is true; fails with the last screen after `ms`. */
  async waitFor(ok: (screen: string) => boolean, what: string, ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    let last = '';
    for (;;) {
      last = await this.screen();
      if (ok(last)) return last;
      if (Date.now() > deadline) throw new Error(`the screen never showed ${what}:\n${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
