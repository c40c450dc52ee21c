/**
 * `wormhole top` (issue 10, item 2) against a real daemon, in a real terminal (tmux): the live
 * view shows the segments with their rates and open connections, most active first, under a
 * header; it fits a terminal made narrower; it says when the daemon is gone and carries on
 * when it is back; q, Ctrl-C, SIGTERM and an error each end it with the terminal put back (the
 * main screen, the cursor shown, the tty's settings as before). Where its output is not a
 * terminal it prints one frame (or one JSON document) and exits. Nothing here is timed: the
 * screen is polled until it shows what is looked for.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestDaemon, WORMHOLE, runCmd, startDaemon } from '../helpers/daemon';
import { suiteCleanup } from '../helpers/netns';
import { freePort, parseCreate, startService } from '../helpers/services';
import { PROMPT, Tmux } from '../helpers/tmux';
import { eventually } from '../helpers/wait';

/** One row of the table on a screen (or in a frame printed), keyed by the column titles. */
type Row = Record<string, string>;

/** The table on a screen: the line of titles starting with ID, then a row per line under it. */
function table(screen: string): Row[] {
  const lines = screen.split('\n');
  const at = lines.findIndex((l) => /^ID\s/.test(l));
  if (at < 0) return [];
  const titles = lines[at].trim().split(/\s{2,}/);
  const rows: Row[] = [];
  for (const line of lines.slice(at + 1)) {
    const cells = line.trim().split(/\s{2,}/);
    if (cells.length !== titles.length) break;
    rows.push(Object.fromEntries(titles.map((t, i) => [t, cells[i]])));
  }
  return rows;
}

/** A byte rate that is not zero, as top prints one: `5.0 MiB/s`. */
const MOVING = /^\d+(\.\d)? (B|KiB|MiB|GiB)\/s$/;
/** A byte rate as top prints one, or `-` before there is one. */
const RATE = /^(-|\d+(\.\d)? (B|KiB|MiB|GiB)\/s)$/;
/** Every column top has. */
const COLUMNS = ['ID', 'STATE', 'OPEN', 'CONN/S', 'UP/S', 'DOWN/S', 'CONNS', 'UP', 'DOWN', 'HEAD', 'TAIL'];
const moving = (rate: string | undefined): boolean => !!rate && MOVING.test(rate) && !/^0 B\/s$/.test(rate);

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Bytes through `port` (a segment to the echo service) on one connection kept open, about
 * 5 MiB/s each way, until stop() (or 2 minutes at most).
 */
function steadyTraffic(port: number): { stop(): Promise<void> } {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('data', () => undefined);
  c.on('error', () => undefined);
  const block = Buffer.alloc(64 * 1024, 7);
  const timer = setInterval(() => {
    if (c.writableLength < 1024 * 1024) for (let i = 0; i < 4; i++) c.write(block);
  }, 50);
  const limit = setTimeout(() => void stop(), 120_000);
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  const stop = (): Promise<void> => {
    clearInterval(timer);
    clearTimeout(limit);
    c.destroy();
    return closed;
  };
  return { stop };
}

describe('wormhole top', () => {
  const suite = suiteCleanup(after);
  let d: TestDaemon;
  /** A segment to a tcp echo service (a generated id, a uuid), and one nobody uses. */
  let busy: { id: string; port: number };
  const IDLE = 'idle-one';

  before(async () => {
    d = await startDaemon(suite);
    const echo = await freePort();
    await startService(suite, null, 'tcp-echo', '127.0.0.1', echo);
    const made = await d.cli('create', 'url', ':0', 'tail', 'url', `:${echo}`);
    assert.equal(made.code, 0, made.stderr);
    busy = parseCreate(made.stdout);
    const idle = await d.cli('create', 'id', IDLE, 'url', ':0', 'tail', 'url', ':9');
    assert.equal(idle.code, 0, idle.stderr);
  });

  /** A frame's header: `wormhole top  ADDRESS  N segments  HH:MM:SS`. */
  const headerRe = (): RegExp =>
    new RegExp(`^wormhole top {2}${escapeRe(`unix://${d.socket}`)} +2 segments {2}\\d\\d:\\d\\d:\\d\\d$`);

  it('prints one frame and exits where its output is not a terminal, or one JSON document', async () => {
    const traffic = steadyTraffic(busy.port);
    try {
      for (const args of [['top'], ['top', '--once']]) {
        const r = await d.cli(...args);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        const lines = r.stdout.trimEnd().split('\n');
        assert.match(lines[0], headerRe(), args.join(' '));
        assert.match(lines[1], /^ID +STATE +OPEN +CONN\/S +UP\/S +DOWN\/S +CONNS +UP +DOWN +HEAD +TAIL$/);
        const rows = table(r.stdout);
        // whole ids, whole URLs: nothing is cut for a script
        assert.deepEqual(rows.map((x) => x.ID).sort(), [busy.id, IDLE].sort(), r.stdout);
        assert.equal(rows.find((x) => x.ID === busy.id)?.HEAD, `tcp://127.0.0.1:${busy.port}`);
        assert.equal(rows.find((x) => x.ID === IDLE)?.['UP/S'], '0 B/s');
      }
      // the rates of one second, most active first, once the connection is moving bytes
      for (const args of [
        ['top', '--once', '--json'],
        ['top', '--json'],
      ]) {
        const doc = await eventually(`${args.join(' ')}: the busy segment moving bytes`, async () => {
          const r = await d.cli(...args);
          assert.equal(r.code, 0, r.stderr);
          const parsed = JSON.parse(r.stdout) as {
            daemon: string;
            at: string;
            intervalMs: number;
            segments: Record<string, unknown>[];
          };
          const s = parsed.segments.find((x) => x.id === busy.id);
          return s && s.open === 1 && (s.bytesUpPerSec as number) > 0 ? parsed : undefined;
        });
        assert.deepEqual(Object.keys(doc), ['daemon', 'at', 'intervalMs', 'segments']);
        assert.equal(doc.daemon, `unix://${d.socket}`);
        assert.ok(doc.intervalMs >= 900, `intervalMs ${doc.intervalMs}`);
        assert.ok(!Number.isNaN(Date.parse(doc.at)));
        assert.deepEqual(
          doc.segments.map((s) => s.id),
          [busy.id, IDLE],
          'most active first',
        );
        const [b, idle] = doc.segments;
        assert.deepEqual(Object.keys(b), [
          'id',
          'head',
          'tail',
          'state',
          'open',
          'total',
          'bytesUp',
          'bytesDown',
          'connectionsPerSec',
          'bytesUpPerSec',
          'bytesDownPerSec',
        ]);
        assert.equal(b.head, `tcp://127.0.0.1:${busy.port}`);
        assert.equal(b.state, 'ready');
        assert.ok((b.bytesDownPerSec as number) > 0);
        assert.ok((b.bytesUp as number) > 0);
        assert.equal(idle.bytesUpPerSec, 0);
        assert.equal(idle.connectionsPerSec, 0);
        assert.equal(idle.tail, 'tcp://127.0.0.1:9');
      }
    } finally {
      await traffic.stop();
    }
    const usage: [string[], string][] = [
      [['top', 'x'], `wormhole: top: unexpected "x" (see 'wormhole help top')\n`],
      [['top', '--bogus'], `wormhole: top: unexpected "--bogus" (see 'wormhole help top')\n`],
    ];
    for (const [args, stderr] of usage) {
      const r = await d.cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stderr, stderr);
    }
    const gone = `unix://${path.join(d.dir, 'nowhere.sock')}`;
    const r = await runCmd(process.execPath, [WORMHOLE, '-H', gone, 'top', '--once']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^wormhole: cannot reach the daemon at ${escapeRe(gone)} `));
  });

  it('shows the segments live in a terminal, fits it when narrowed, outlives the daemon; q puts it back', async () => {
    const term = await Tmux.start(suite, 100, 30);
    const sttyBefore = path.join(term.dir, 'stty-before');
    const sttyAfter = path.join(term.dir, 'stty-after');
    await term.typeLine(
      `stty -g > ${sttyBefore}; ${process.execPath} ${WORMHOLE} -H unix://${d.socket} top; echo "top exited $?"; stty -g > ${sttyAfter}`,
    );
    const traffic = steadyTraffic(busy.port);
    let screen: string;
    try {
      const busyRow = (screen: string): Row | undefined =>
        table(screen).find((r) => r.ID.length >= 8 && busy.id.startsWith(r.ID));
      screen = await term.waitFor((s) => {
        const row = busyRow(s);
        return !!row && row.OPEN === '1' && moving(row['UP/S']) && moving(row['DOWN/S']);
      }, 'the busy segment with one open connection moving bytes');
      const lines = screen.split('\n');
      assert.match(lines[0], headerRe(), 'the header: address, segments, time');
      assert.equal(await term.pane('#{alternate_on}'), '1', 'on the alternate screen');
      assert.equal(await term.pane('#{cursor_flag}'), '0', 'the cursor hidden');
      const rows = table(screen);
      assert.equal(rows.length, 2, screen);
      assert.ok(busy.id.startsWith(rows[0].ID), `the most active first:\n${screen}`);
      assert.ok(
        rows[0].ID.length >= 12 && rows[0].ID.length < busy.id.length,
        `the id shortened: ${rows[0].ID}`,
      );
      assert.equal(rows[1].ID, IDLE);
      assert.equal(rows[1]['UP/S'], '0 B/s');
      assert.equal(rows[1].OPEN, '0');

      // narrower: a frame drawn for 60 columns (the header ends with the time again, which
      // the old frame's did only at column 100), and no line is wider than the pane
      await term.resize(60, 30);
      for (let frames = 0; frames < 3; frames++) {
        const shown = lines[0].slice(-8);
        screen = await term.waitFor((s) => {
          const head = s.split('\n')[0];
          return /2 segments {2}\d\d:\d\d:\d\d$/.test(head) && !head.endsWith(shown) && !!busyRow(s);
        }, 'a frame 60 columns wide');
        lines[0] = screen.split('\n')[0];
        assert.equal(await term.pane('#{pane_width}'), '60');
        for (const l of screen.split('\n'))
          assert.ok(l.trimEnd().length <= 60, `a line wider than 60 columns: ${JSON.stringify(l)}`);
        // whole cells, cut nowhere: columns were dropped to make room, not clipped
        const titles = Object.keys(table(screen)[0]);
        assert.deepEqual(titles.slice(0, 2), ['ID', 'STATE'], screen);
        for (const t of titles) assert.ok(COLUMNS.includes(t), `a whole column title: ${t}`);
        for (const r of table(screen)) {
          assert.match(r.OPEN, /^\d+$/, screen);
          for (const rate of ['UP/S', 'DOWN/S'])
            if (r[rate] !== undefined) assert.match(r[rate], RATE, screen);
        }
      }

      // the daemon goes away, and comes back (the same socket; it builds its segments again)
      await traffic.stop();
      await d.stop();
      await term.waitFor((s) => s.includes('daemon not reachable, retrying'), 'that the daemon is gone');
      d = await startDaemon(suite, { dir: d.dir });
      await term.waitFor(
        (s) => !s.includes('not reachable') && !!busyRow(s) && table(s).some((r) => r.ID === IDLE),
        'the segments again',
      );

      await term.keys('q');
      screen = await term.waitFor(
        (s) => s.includes('top exited 0') && s.trimEnd().endsWith(PROMPT.trim()),
        'top ended, the shell prompt',
      );
    } finally {
      await traffic.stop();
    }
    assert.doesNotMatch(screen, /ID +STATE/, 'the main screen, without the view');
    assert.equal(await term.pane('#{alternate_on}'), '0', 'back on the main screen');
    assert.equal(await term.pane('#{cursor_flag}'), '1', 'the cursor shown');
    await eventually('stty -g after top', async () => (fs.existsSync(sttyAfter) ? true : undefined));
    assert.equal(
      fs.readFileSync(sttyAfter, 'utf8'),
      fs.readFileSync(sttyBefore, 'utf8'),
      'the tty as before',
    );
  });

  it('puts the terminal back on Ctrl-C, SIGTERM and an error too', async () => {
    const term = await Tmux.start(suite, 80, 24);
    const pidFile = path.join(term.dir, 'pid');
    const sttyBefore = path.join(term.dir, 'stty-before');
    const sttyAfter = path.join(term.dir, 'stty-after');
    const cases: { what: string; end(): Promise<void>; code: number }[] = [
      { what: 'Ctrl-C', end: () => term.keys('C-c'), code: 0 },
      {
        what: 'SIGTERM',
        end: async () => void process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM'),
        code: 143,
      },
    ];
    for (const { what, end, code } of cases) {
      fs.rmSync(sttyAfter, { force: true });
      // sh writes its pid and becomes top (exec): the pid is top's
      await term.typeLine(
        `clear; stty -g > ${sttyBefore}; sh -c 'echo $$ > ${pidFile}; exec "$0" "$@"' ${process.execPath} ${WORMHOLE} -H unix://${d.socket} top; echo "top exited $?"; stty -g > ${sttyAfter}`,
      );
      await term.waitFor((s) => /^wormhole top /.test(s) && table(s).length === 2, `${what}: a frame`);
      assert.equal(await term.pane('#{alternate_on}'), '1', what);
      await end();
      await term.waitFor((s) => s.includes(`top exited ${code}`), `${what}: top exited ${code}`);
      assert.equal(await term.pane('#{alternate_on}'), '0', `${what}: back on the main screen`);
      assert.equal(await term.pane('#{cursor_flag}'), '1', `${what}: the cursor shown`);
      await eventually('stty -g after top', async () => (fs.existsSync(sttyAfter) ? true : undefined));
      assert.equal(
        fs.readFileSync(sttyAfter, 'utf8'),
        fs.readFileSync(sttyBefore, 'utf8'),
        `${what}: the tty`,
      );
    }
    // refused before the first frame (TCP with a key file that is not there): the error is
    // printed on the main screen, after the terminal is put back
    const noKey = path.join(term.dir, 'no.key');
    await term.typeLine(
      `clear; ${process.execPath} ${WORMHOLE} -H ${d.tcp} -K ${noKey} top; echo "top exited $?"`,
    );
    const screen = await term.waitFor((s) => s.includes('top exited 1'), 'top exited 1');
    assert.match(screen, new RegExp(`wormhole: key file ${escapeRe(noKey)} does not exist`));
    assert.equal(await term.pane('#{alternate_on}'), '0', 'error: back on the main screen');
    assert.equal(await term.pane('#{cursor_flag}'), '1', 'error: the cursor shown');
  });
});
