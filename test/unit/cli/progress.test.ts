/**
 * Long work's progress (src/cli/progress.ts): a bar redrawn in place at a terminal and
 * cleared at the end; plain lines at each tenth of the work elsewhere.
 */
import assert from 'node:assert/strict';
import type * as tty from 'node:tty';
import { it } from 'node:test';
import { ProgressView } from '../../../src/cli/progress';

it('says each tenth of the work once in plain lines when there is no terminal', () => {
  const lines: string[] = [];
  const view = new ProgressView('applying', undefined, (l) => lines.push(l));
  for (let done = 1; done <= 1000; done++) view.update(done, 1000);
  view.end();
  assert.deepEqual(
    lines,
    Array.from({ length: 10 }, (_, i) => `applying: ${(i + 1) * 100}/1000`),
  );
});

it('draws a bar with counts on one line at a terminal, and clears it at the end', () => {
  let screen = '';
  const terminal = { write: (s: string) => ((screen += s), true) } as unknown as tty.WriteStream;
  const lines: string[] = [];
  const view = new ProgressView('applying', terminal, (l) => lines.push(l));
  view.update(15, 30);
  assert.equal(screen, `\rapplying [${'#'.repeat(15)}${'.'.repeat(15)}] 15/30\x1b[K`);
  view.update(30, 30);
  assert.ok(screen.endsWith(`[${'#'.repeat(30)}] 30/30\x1b[K`), JSON.stringify(screen));
  view.end();
  assert.ok(screen.endsWith('\r\x1b[K'), 'the bar is gone before the command prints');
  assert.deepEqual(lines, [], 'nothing among the output lines');
});
