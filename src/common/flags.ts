/**
 * A small flag parser shared by the CLI and the daemon: `-H X`, `-H=X`, `--state-dir X`,
 * `--state-dir=X`, repeatable flags, boolean flags, and positional words. Flags stop at the
 * first positional word when `stopAtPositional` is set (so `create url :80` is left alone).
 */
import { UsageError } from './errors';

/** One flag: its names, whether it takes a value, whether it may repeat. */
export interface FlagSpec {
  names: string[];
  value: boolean;
  repeat?: boolean;
}

/** The parsed flags (by first name) and the positional words. */
export interface ParsedFlags {
  values: Map<string, string[]>;
  positional: string[];
}

/** Parse argv against specs; unknown flags are a UsageError naming them. */
export function parseFlags(
  argv: readonly string[],
  specs: FlagSpec[],
  stopAtPositional = false,
): ParsedFlags {
  const values = new Map<string, string[]>();
  const positional: string[] = [];
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) for (const n of s.names) byName.set(n, s);
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-' || /^-\d/.test(word)) {
      if (stopAtPositional) {
        positional.push(...argv.slice(i));
        break;
      }
      positional.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    const name = eq > 0 ? word.slice(0, eq) : word;
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown flag ${name}`);
    let value = 'true';
    if (spec.value) {
      if (eq > 0) value = word.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`${name} needs a value`);
    } else if (eq > 0) {
      throw new UsageError(`${name} takes no value`);
    }
    const key = spec.names[0];
    const list = values.get(key) ?? [];
    if (list.length > 0 && !spec.repeat) throw new UsageError(`${name} is given twice`);
    list.push(value);
    values.set(key, list);
  }
  return { values, positional };
}

/** The single value of a flag, or a default. */
export function flagValue(p: ParsedFlags, name: string, fallback: string): string;
export function flagValue(p: ParsedFlags, name: string): string | undefined;
export function flagValue(p: ParsedFlags, name: string, fallback?: string): string | undefined {
  return p.values.get(name)?.[0] ?? fallback;
}

/** Parse a positive number of seconds into milliseconds. */
export function secondsFlag(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > 86400)
    throw new UsageError(`${name} "${text}" is not a number of seconds`);
  return Math.round(n * 1000);
}

/** Parse a whole number from `min` to `max` (a count, a limit). */
export function countFlag(text: string, name: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max)
    throw new UsageError(`${name} "${text}" is not a whole number from ${min} to ${max}`);
  return Number(text);
}
