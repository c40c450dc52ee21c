/**
 * Several tails and the access log (issues 10 and 11): new connections per second through one
 * segment with one tail, with three (round-robin, least-conn, source), and with the access log
 * off (--no-access-log), all to echo servers on the host's 127.0.0.1, measured in turns so
 * that load from elsewhere falls on every row alike.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config';
import { connectionRate } from '../measure';
import { daemon, echoServer, port, waitPort } from '../env';

export interface BalanceRow {
  path: string;
  connsPerSec: number;
}

/** Connections per second for each row (median of the rounds). */
export async function balance(cfg: Config): Promise<BalanceRow[]> {
  const backends = [port(), port(), port()];
  for (const p of backends) {
    echoServer('127.0.0.1', p);
    await waitPort('127.0.0.1', p);
  }
  const logged = daemon(randomBytes(16).toString('hex'));
  const quiet = daemon(randomBytes(16).toString('hex'), undefined, false, ['--no-access-log']);
  const rows: { path: string; port: number }[] = [];
  const add = (d: typeof logged, path: string, ...tail: string[]): void => {
    const p = port();
    d.cli('create', 'url', `:${p}`, 'tail', ...tail);
    rows.push({ path, port: p });
  };
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
  add(logged, 'one tail', 'url', `:${backends[0]}`);
  add(logged, 'three tails, round-robin', ...three('round-robin'));
  add(logged, 'three tails, least-conn', ...three('least-conn'));
  add(logged, 'three tails, source', ...three('source'));
  add(quiet, 'one tail, --no-access-log', 'url', `:${backends[0]}`);
  const samples = new Map<string, number[]>(rows.map((r) => [r.path, []]));
  for (let round = 0; round < cfg.repeats; round++)
    for (const r of rows) samples.get(r.path)!.push(await connectionRate('127.0.0.1', r.port, cfg.conns));
  return rows.map((r) => {
    const s = samples.get(r.path)!.sort((a, b) => a - b);
    return { path: r.path, connsPerSec: s[Math.floor(s.length / 2)] };
  });
}
