/**
 * wormhole, the CLI: parses global flags, picks the subcommand, prints results. Exit codes:
 * 0 success, 1 refused (by the daemon, or the daemon cannot be reached; its message on one
 * line), 2 a usage error (one line and where the usage is). With --json, the error is one
 * line of JSON on stdout instead: {"code": "...", "message": "..."}.
 */
import { PROTOCOL_VERSION, type PullProgress } from '../api/protocol';
import { connect } from '../client';
import { type DaemonAddress, formatDaemonAddress, parseDaemonAddress } from '../common/address';
import { type ErrorCode, UsageError, WormholeError, errorMessage } from '../common/errors';
import { type FlagSpec, type ParsedFlags, flagValue, parseFlags } from '../common/flags';
import { DEFAULT_KEY_FILE, readKey } from '../common/key';
import { packageVersion } from '../common/version';
import { type CliContext, type Command, scanArgs } from './command';
import { PullView } from './pullview';
import { apply, exportCommand } from './commands/apply';
import { completionCommand } from './commands/completion';
import { create } from './commands/create';
import { del } from './commands/delete';
import { list } from './commands/list';
import { peers } from './commands/peers';
import { ping } from './commands/ping';
import { top } from './commands/top';
import { tunnelCreate, tunnelDelete, tunnelList } from './commands/tunnel';
import { ui } from './commands/ui';

const GLOBAL: FlagSpec[] = [
  { names: ['-H', '--host'], value: true },
  { names: ['-K', '--key'], value: true },
  { names: ['-h', '--help'], value: false },
  { names: ['--version'], value: false },
];

const COMMANDS: Command[] = [
  ping,
  create,
  del,
  list,
  apply,
  exportCommand,
  peers,
  top,
  ui,
  tunnelCreate,
  tunnelDelete,
  tunnelList,
  completionCommand(
    () => COMMANDS,
    GLOBAL.flatMap((f) => f.names),
  ),
];

/** The daemon unless -H says otherwise (or WORMHOLE_HOST). */
const DEFAULT_HOST = 'tcp://127.0.0.1:9999';

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `usage: wormhole [-H ADDR] [-K FILE] COMMAND [--json] [ARGS]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}
  ${'help'.padEnd(width)}usage of a command: wormhole help COMMAND (or wormhole COMMAND --help)

Flags:
  -H ADDR     the daemon: tcp://HOST:PORT or unix:///PATH
              (default: $WORMHOLE_HOST, else ${DEFAULT_HOST})
  -K FILE     the pre-shared key for TCP
              (default: $WORMHOLE_KEY_FILE, else ${DEFAULT_KEY_FILE})
  --version   print wormhole's version
  --json      (after a command that prints) one JSON document on stdout; errors too

Exit codes: 0 done, 1 refused (by the daemon, or it cannot be reached), 2 a usage error.`;
}

/** A global setting: its flag, else its environment variable (set and not empty), else the default. */
function setting(g: ParsedFlags, flag: string, env: NodeJS.ProcessEnv, name: string, fallback: string) {
  const given = flagValue(g, flag);
  if (given !== undefined) return { value: given, from: flag };
  const fromEnv = env[name];
  return fromEnv ? { value: fromEnv, from: name } : { value: fallback, from: flag };
}

/** -H (or WORMHOLE_HOST) parsed; a bad one says which of the two it came from. */
function daemonAddress(g: ParsedFlags, env: NodeJS.ProcessEnv): DaemonAddress {
  const { value, from } = setting(g, '-H', env, 'WORMHOLE_HOST', DEFAULT_HOST);
  try {
    return parseDaemonAddress(value);
  } catch (e) {
    throw e instanceof UsageError ? new UsageError(`${from} ${e.message}`) : e;
  }
}

/** The streams and environment the CLI runs with (tests give their own). */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
}

const PROCESS_IO: CliIo = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  env: process.env,
};

/**
 * The view of an image's pull, on stderr: redrawn in place where stdout and stderr are the
 * process's terminal, plain lines elsewhere (pullview.ts).
 */
function pullProgress(io: CliIo): (p: PullProgress) => void {
  const live = io === PROCESS_IO && process.stdout.isTTY === true && process.stderr.isTTY === true;
  const view = new PullView({ write: (text) => io.err(text.replace(/\n$/, '')), live });
  return (p) => view.show(p);
}

/** Run the CLI with argv (without node and script); returns the exit code. */
export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const { out, err, env } = io;
  // Whose usage a usage error points to (set once the command's own words are read), and
  // whether errors are JSON (before the command is known: any --json on the line).
  let scope: Command | undefined;
  let json = argv.includes('--json');
  try {
    const g = parseFlags(argv, GLOBAL, true);
    const [name, ...args] = g.positional;
    if (g.values.has('--version')) {
      out(`wormhole ${packageVersion()} (protocol ${PROTOCOL_VERSION})`);
      return 0;
    }
    if (name === undefined || name === 'help' || g.values.has('-h')) {
      const topics = name === 'help' ? args : name === undefined ? [] : [name];
      if (topics.length === 0) {
        const asked = name !== undefined || g.values.has('-h');
        (asked ? out : err)(mainUsage());
        return asked ? 0 : 2;
      }
      if (topics.length > 1) throw new UsageError(`help: unexpected "${topics[1]}"`);
      const c = COMMANDS.find((x) => x.name === topics[0]);
      if (!c) throw new UsageError(`no command "${topics[0]}"`);
      out(c.usage);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${name}"`);
    const asked = scanArgs(command, args);
    json = asked.json;
    if (asked.help) {
      out(command.usage);
      return 0;
    }
    const addr = daemonAddress(g, env);
    const keyFile = setting(g, '-K', env, 'WORMHOLE_KEY_FILE', DEFAULT_KEY_FILE).value;
    const ctx: CliContext = {
      connect: () => connect(addr, addr.kind === 'tcp' ? readKey(keyFile) : null),
      out,
      json,
      address: formatDaemonAddress(addr),
      progress: pullProgress(io),
      // a full-screen view only where the CLI writes to the process's own terminal
      terminal:
        io === PROCESS_IO && process.stdout.isTTY
          ? { output: process.stdout, input: process.stdin }
          : undefined,
    };
    scope = command;
    return await command.run(args, ctx);
  } catch (e) {
    const code = e instanceof UsageError ? 2 : 1;
    let message = e instanceof WormholeError ? e.message : `unexpected error: ${errorMessage(e)}`;
    let pointer = '';
    if (e instanceof UsageError) {
      // "list: unexpected "x"": the command's name once, then where its usage is
      const named = scope && (message.startsWith(`${scope.name} `) || message.startsWith(`${scope.name}:`));
      if (scope && !named) message = `${scope.name}: ${message}`;
      pointer = ` (see 'wormhole help${scope ? ` ${scope.name}` : ''}')`;
    }
    if (json) {
      const wireCode: ErrorCode = e instanceof WormholeError ? e.code : 'UNEXPECTED';
      out(JSON.stringify({ code: wireCode, message }));
    } else err(`wormhole: ${message}${pointer}`);
    return code;
  }
}

/**
 * Exit once stdout and stderr have taken everything written: to a pipe, Node writes what the
 * pipe takes at once and queues the rest, which process.exit() would drop (`list --json | jq`
 * read 64 KiB of it). A reader that went away (`| head`) is no reason to wait, nor an error.
 */
function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', () => undefined); // EPIPE: the reader is gone, nothing left to flush
    stream.write('', done); // called after every write before it is out
  }
}

/** Entry point for bin/wormhole. */
export function main(): void {
  run(process.argv.slice(2)).then(exitWhenFlushed, () => exitWhenFlushed(1));
}
