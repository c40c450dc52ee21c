import * as fs from 'node:fs';
import type { Result } from '../../api/protocol';
import { UsageError, errorMessage } from '../../common/errors';
import { type Command, commandArgs, printJson, withDaemon } from '../command';
import { planOf, readDeclared, writeDeclared } from '../declared';

type Change = Result<'apply'>['changes'][number]['change'];
const KINDS: readonly Change[] = ['created', 'changed', 'deleted', 'unchanged'];

/** The file's text: a path, or `-` for stdin. One line on a file that cannot be read. */
function readInput(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${errorMessage(err)}`);
  }
}

/** `-f FILE` taken out of the words (a value flag among the boolean ones). */
function takeFile(args: readonly string[]): { file: string; rest: string[] } {
  const i = args.indexOf('-f');
  if (i < 0) throw new UsageError('needs -f FILE (or -f - for stdin)');
  if (i + 1 >= args.length) throw new UsageError('-f needs a file (or - for stdin)');
  if (args.indexOf('-f', i + 1) >= 0) throw new UsageError('-f is given twice');
  return { file: args[i + 1], rest: [...args.slice(0, i), ...args.slice(i + 2)] };
}

export const apply: Command = {
  name: 'apply',
  summary: 'make the segments match a YAML file (created, changed, pruned)',
  json: true,
  flags: ['-f', '--dry-run', '--prune'],
  usage: `usage: wormhole apply [--dry-run] [--prune] [--json] -f FILE

FILE (- for stdin) is YAML, "segments:" mapping each id to its plan, the create actions
as one string:
  segments:
    web: url :8080 tail url tcp://blue@:5000
    db: url :3306 idle 10m trigger docker-run wormhole/mysql
What is missing is created, what changed is built again, what is the same is left alone
(its connections stay open). --prune also deletes the segments an earlier apply made that
the file no longer names (never one made by create). Every plan is checked before anything
changes, and a failure undoes what was done: the file applies whole or not at all.
Prints a line per change, then "N created, N changed, N deleted, N unchanged"; --dry-run
prints the same and changes nothing. --json prints {"changes": [{"id", "change"}], and
the four counts}. 'wormhole export' prints the segments in this format.

  wormhole apply -f wiring.yaml
  wormhole apply --dry-run --prune -f wiring.yaml
  wormhole export | wormhole apply -f -`,
  async run(args, ctx) {
    const { file, rest } = takeFile(args);
    const { flags } = commandArgs(this, rest, 0);
    const segments = readDeclared(readInput(file), file === '-' ? 'stdin' : file);
    const dryRun = flags.has('--dry-run');
    const progress = ctx.progress ? { progress: true } : {};
    const { changes } = await withDaemon(ctx, (c) =>
      c.call(
        'apply',
        { segments, prune: flags.has('--prune'), dryRun, ...progress },
        undefined,
        ctx.progress,
      ),
    );
    const counts = Object.fromEntries(KINDS.map((k) => [k, changes.filter((c) => c.change === k).length]));
    if (ctx.json) {
      printJson(ctx, { changes, ...counts, dryRun });
      return 0;
    }
    const would = dryRun ? 'would be ' : '';
    for (const { id, change } of changes) if (change !== 'unchanged') ctx.out(`${would}${change} ${id}`);
    ctx.out(
      `${KINDS.map((k) => `${counts[k]} ${k}`).join(', ')}${dryRun ? ' (dry run: nothing changed)' : ''}`,
    );
    return 0;
  },
};

export const exportCommand: Command = {
  name: 'export',
  summary: "print the segments made by create and apply, in apply's format",
  json: true,
  usage: `usage: wormhole export [--json]

Prints every top segment made here by create or apply (not children, not a peer's) as
apply's YAML: "segments:" mapping each id to its plan. 'wormhole apply -f' of it on a fresh
daemon makes the same segments. --json prints [{"id", "plan", "applied"}] (applied: made by
apply, so that apply --prune may delete it).

  wormhole export > wiring.yaml`,
  async run(args, ctx) {
    commandArgs(this, args, 0);
    const { segments } = await withDaemon(ctx, (c) => c.call('export', {}));
    if (ctx.json) {
      printJson(
        ctx,
        segments.map((s) => ({ id: s.id, plan: planOf(s.actions), applied: s.applied })),
      );
      return 0;
    }
    ctx.out(writeDeclared(segments).trimEnd());
    return 0;
  },
};
