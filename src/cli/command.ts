/** What every subcommand file exports, and what the commands share. */
import type { PullProgress } from '../api/protocol';
import type { Connection } from '../client';
import { UsageError, WormholeError } from '../common/errors';
import type { TerminalStreams } from './terminal';

/** How a command reaches the daemon and prints. */
export interface CliContext {
  /** Connect to the daemon named by -H (or WORMHOLE_HOST, or the default). */
  connect(): Promise<Connection>;
  out(line: string): void;
  /** --json was given: print one JSON document (see `printJson`) instead of lines. */
  json: boolean;
  /** The daemon's address as the user gave it (or the default), for a view's header. */
  address: string;
  /** Set when the output is a terminal (a full-screen view may take it: see `top`). */
  terminal?: TerminalStreams;
  /** Shows an image's pull while a `create` or `apply` waits for it (pullview.ts). */
  progress?: (p: PullProgress) => void;
}

/** One subcommand: its usage and how to run it. Returns the exit code. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** It takes --json (every command that prints something takes it). */
  json: boolean;
  /** Its other flags (all of them booleans), e.g. ['--udp']; for shell completion too. */
  flags?: string[];
  /**
   * Its flags come only before its other words: create's actions may hold words like `-e`
   * (docker-run's), so only a flag right after the command name is one.
   */
  flagsFirst?: boolean;
  /** Its word is a segment id, or a unique prefix of one (for shell completion). */
  takesId?: boolean;
  /** Run with the words after the command name (its flags among them). */
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** The words of a command's own flags section: all of them, or only the leading ones. */
function flagWords(command: Command, args: readonly string[]): string[] {
  const end = args.indexOf('--');
  const words = end < 0 ? [...args] : args.slice(0, end);
  if (!command.flagsFirst) return words;
  const first = words.findIndex((w) => !w.startsWith('-'));
  return first < 0 ? words : words.slice(0, first);
}

/**
 * What main must know before a command runs, even when its words are wrong: whether it was
 * asked for its help, and whether it answers in JSON (its errors then too).
 */
export function scanArgs(command: Command, args: readonly string[]): { help: boolean; json: boolean } {
  const words = flagWords(command, args);
  return {
    help: words.includes('-h') || words.includes('--help'),
    json: command.json && words.includes('--json'),
  };
}

/** A command's words: its flags (as given) and the others. */
export interface CommandArgs {
  flags: Set<string>;
  positional: string[];
}

/**
 * Split a command's words into its flags and the others; any other word starting with `-`
 * is refused as `unexpected "WORD"`. `max` refuses words past that many the same way.
 */
export function commandArgs(command: Command, args: readonly string[], max = Infinity): CommandArgs {
  const known = new Set(['-h', '--help', ...(command.json ? ['--json'] : []), ...(command.flags ?? [])]);
  const flags = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const word = args[i];
    if (word === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (word.startsWith('-') && word !== '-' && !(command.flagsFirst && positional.length > 0)) {
      if (!known.has(word)) throw new UsageError(`unexpected "${word}"`);
      flags.add(word);
      continue;
    }
    positional.push(word);
  }
  if (positional.length > max) throw new UsageError(`unexpected "${positional[max]}"`);
  return { flags, positional };
}

/** Print a --json answer: one document, an object or an array, with stable field names. */
export function printJson(ctx: CliContext, doc: object): void {
  ctx.out(JSON.stringify(doc, null, 2));
}

/** Connect, make one call, close. */
export async function withDaemon<T>(ctx: CliContext, fn: (c: Connection) => Promise<T>): Promise<T> {
  const conn = await ctx.connect();
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}

/** At most this many candidates are named when a prefix is ambiguous. */
const NAMED = 5;

/**
 * The segment id that `text` names among `ids`, as docker does: the id itself, else the one
 * id that starts with it. Several is AMBIGUOUS_ID (naming them), none is NOT_FOUND.
 */
export function matchId(ids: readonly string[], text: string): string {
  if (text === '') throw new UsageError('an empty segment id');
  if (ids.includes(text)) return text;
  const hits = ids.filter((id) => id.startsWith(text)).sort();
  if (hits.length === 1) return hits[0];
  if (hits.length === 0)
    throw new WormholeError(
      'NOT_FOUND',
      `no segment with id or prefix "${text}": 'wormhole list' shows them`,
    );
  const named = hits.slice(0, NAMED).join(', ') + (hits.length > NAMED ? ', ...' : '');
  throw new WormholeError(
    'AMBIGUOUS_ID',
    `"${text}" matches ${hits.length} segments: ${named}: give more of the id`,
  );
}

/** The id of the segment `text` names (an id or a unique prefix), from the daemon's list. */
export async function resolveSegmentId(conn: Connection, text: string): Promise<string> {
  if (text === '') throw new UsageError('an empty segment id');
  const { segments } = await conn.call('list', {});
  return matchId(
    segments.map((s) => s.id),
    text,
  );
}
