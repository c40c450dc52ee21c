/**
 * wormhole, the CLI: parses global flags, picks the subcommand, prints results. Exit codes:
 * 0 success, 1 the daemon refused (its message on one line), 2 a usage error (usage on stderr).
 */
import { connect } from '../client';
import { parseDaemonAddress } from '../common/address';
import { UsageError, WormholeError, errorMessage } from '../common/errors';
import { type FlagSpec, flagValue, parseFlags } from '../common/flags';
import { DEFAULT_KEY_FILE, readKey } from '../common/key';
import type { CliContext, Command } from './command';
import { create } from './commands/create';
import { del } from './commands/delete';
import { list } from './commands/list';
import { ping } from './commands/ping';
import { tunnelCreate, tunnelDelete, tunnelList } from './commands/tunnel';

const COMMANDS: Command[] = [ping, create, del, list, tunnelCreate, tunnelDelete, tunnelList];

const GLOBAL: FlagSpec[] = [
  { names: ['-H', '--host'], value: true },
  { names: ['-K', '--key'], value: true },
  { names: ['-h', '--help'], value: false },
];

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `usage: wormhole [-H ADDR] [-K FILE] COMMAND [ARGS]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}
  ${'help'.padEnd(width)}usage of a command: wormhole help COMMAND

Flags:
  -H ADDR   the daemon: tcp://HOST:PORT (default tcp://127.0.0.1:9999) or unix:///PATH
  -K FILE   the pre-shared key for TCP (default ${DEFAULT_KEY_FILE})`;
}

/** Run the CLI with argv (without node and script); returns the exit code. */
export async function run(
  argv: string[],
  out = (l: string) => process.stdout.write(`${l}\n`),
  err = (l: string) => process.stderr.write(`${l}\n`),
): Promise<number> {
  let command: Command | undefined;
  try {
    const g = parseFlags(argv, GLOBAL, true);
    const [name, ...args] = g.positional;
    if (name === undefined || name === 'help' || g.values.has('-h')) {
      const topic = name === 'help' ? args[0] : undefined;
      if (topic === undefined) {
        (name === undefined && !g.values.has('-h') ? err : out)(mainUsage());
        return name === undefined && !g.values.has('-h') ? 2 : 0;
      }
      const c = COMMANDS.find((x) => x.name === topic);
      if (!c) throw new UsageError(`no command "${topic}"`);
      out(c.usage);
      return 0;
    }
    const addr = parseDaemonAddress(flagValue(g, '-H', 'tcp://127.0.0.1:9999'));
    command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${name}"`);
    const keyFile = flagValue(g, '-K', DEFAULT_KEY_FILE);
    const ctx: CliContext = {
      connect: () => connect(addr, addr.kind === 'tcp' ? readKey(keyFile) : null),
      out,
    };
    return await command.run(args, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`wormhole: ${e.message}`);
      err(command ? command.usage : mainUsage());
      return 2;
    }
    if (e instanceof WormholeError) {
      err(`wormhole: ${e.message}`);
      return 1;
    }
    err(`wormhole: unexpected error: ${errorMessage(e)}`);
    return 1;
  }
}

/** Entry point for bin/wormhole. */
export function main(): void {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    () => process.exit(1),
  );
}
