/** What every subcommand file exports. */
import type { Connection } from '../client';

/** How a command reaches the daemon and prints. */
export interface CliContext {
  /** Connect to the daemon named by -H (or the default). */
  connect(): Promise<Connection>;
  out(line: string): void;
}

/** One subcommand: its usage and how to run it. Returns the exit code. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
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
