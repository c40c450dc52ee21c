/**
 * Several tails and the access log (issues 10 and 11): new connections per second through one
 * segment with one tail, with three (round-robin, least-conn, source), and with the access log
 * off (--no-access-log), all to echo servers on the host's 127.0.0.1, measured in turns so
 * that load from elsewhere falls on every row alike (the rows of the build beside too).
 */
import type { Config } from '../config';
import { connectionRate } from '../measure';
import { type Build, type Daemon, daemon, echoServer, named, port, waitPort } from '../env';

export interface BalanceRow {
  path: string;
  connsPerSec: number;
  /** connsPerSec / the same build's `one tail`. */
  vsOneTail: number;
}

/**
 * Connections per second for each row (median of the rounds), each row of this build
 * followed by the same row of the build beside, if any.
 */
export async function balance(cfg: Config, builds: Build[]): Promise<BalanceRow[]> {
  const backends = [port(), port(), port()];
  for (const p of backends) {
    echoServer('127.0.0.1', p);
    await waitPort('127.0.0.1', p);
  }
  const daemons = builds.map((b) => ({
    b,
    logged: daemon(b),
    quiet: daemon(b, { flags: ['--no-access-log'] }),
  }));
  const three = (policy: string): string[] => [
    'url',
    `:${backends[0]}`,
    'also',
    'url',
    `:${backends[1]}`,
    'also',
    'url',
    `:${backends[2]}`,
    'balance',
    policy,
    'health',
    'off',
  ];
  const kinds: [path: string, quiet: boolean, tail: string[]][] = [
    ['one tail', false, ['url', `:${backends[0]}`]],
    ['three tails, round-robin', false, three('round-robin')],
    ['three tails, least-conn', false, three('least-conn')],
    ['three tails, source', false, three('source')],
    ['one tail, --no-access-log', true, ['url', `:${backends[0]}`]],
  ];
  const rows: { path: string; port: number; one: string }[] = [];
  for (const [path, quiet, tail] of kinds)
    for (const d of daemons) {
      const p = port();
      const wh: Daemon = quiet ? d.quiet : d.logged;
      wh.cli('create', 'url', `:${p}`, 'tail', ...tail);
      rows.push({ path: named(d.b, path), port: p, one: named(d.b, 'one tail') });
    }
  const samples = new Map<string, number[]>(rows.map((r) => [r.path, []]));
  for (let round = 0; round < cfg.repeats; round++)
    for (const r of rows) samples.get(r.path)!.push(await connectionRate('127.0.0.1', r.port, cfg.conns));
  const median = (path: string): number => {
    const s = samples.get(path)!.sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  };
  return rows.map((r) => ({
    path: r.path,
    connsPerSec: median(r.path),
    vsOneTail: median(r.path) / median(r.one),
  }));
}
