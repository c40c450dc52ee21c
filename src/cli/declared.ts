/**
 * The file `apply` reads and `export` prints: YAML, `segments:` mapping each id to its plan,
 * the create grammar as one string (src/api/planwords.ts):
 *
 *   segments:
 *     web: url :8080 tail url tcp://blue@:5000
 *     db: url :3306 idle 10m trigger docker-run wormhole/mysql
 *
 * Read with the `yaml` package (duplicate keys are errors there); every problem is one line
 * naming the file and the line, and the id when there is one.
 */
import { LineCounter, parseDocument, isMap, isScalar, stringify } from 'yaml';
import { type Action, ID_PATTERN, parsePlan } from '../api/grammar';
import { actionWords, joinPlan, planActions, withoutTopId } from '../api/planwords';
import { UsageError, errorMessage } from '../common/errors';

/** One declared segment. */
export interface Declared {
  id: string;
  actions: Action[];
}

/** Read a declared set from `text` (`file` names it in errors: a path, or "stdin"). */
export function readDeclared(text: string, file: string): Declared[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined): string =>
    `${file}:${offset === undefined ? 1 : lines.linePos(offset).line}`;
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new UsageError(`${at(e.pos[0])}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root) || !root.has('segments'))
    throw new UsageError(`${at(root?.range?.[0])}: expected "segments:" mapping each id to its plan`);
  for (const pair of root.items)
    if (isScalar(pair.key) && pair.key.value !== 'segments')
      throw new UsageError(
        `${at(pair.key.range?.[0])}: unknown key "${String(pair.key.value)}": only "segments:" is read`,
      );
  const segments = root.get('segments', true);
  if (segments === null || segments === undefined || (isScalar(segments) && segments.value === null))
    return [];
  if (!isMap(segments))
    throw new UsageError(`${at(root.range?.[0])}: "segments:" must map each id to its plan`);
  const out: Declared[] = [];
  for (const pair of segments.items) {
    const key = pair.key;
    const where = at(isScalar(key) ? key.range?.[0] : undefined);
    const id = isScalar(key) ? String(key.value) : '';
    if (!ID_PATTERN.test(id))
      throw new UsageError(
        `${where}: "${id}" is not a valid id: use letters, digits, "-", "_" or ".", at most 64`,
      );
    const value = pair.value;
    if (!isScalar(value) || typeof value.value !== 'string' || value.value.trim() === '')
      throw new UsageError(`${where}: segment ${id}: its plan must be one string of create actions`);
    try {
      const actions = planActions(value.value);
      // the grammar's checks, before anything reaches the daemon
      const named = parsePlan(actions).id;
      if (named !== undefined && named !== id)
        throw new UsageError(`its plan names another id (${named}): the id is the key in the file`);
      out.push({ id, actions });
    } catch (err) {
      throw new UsageError(`${where}: segment ${id}: ${errorMessage(err)}`);
    }
  }
  return out;
}

/** A segment's plan as the file writes it: its top `id` left to the key. */
export function planOf(actions: readonly Action[]): string {
  return joinPlan(actionWords(withoutTopId(actions)));
}

/** A declared set as `export` prints it. */
export function writeDeclared(segments: readonly Declared[]): string {
  const map: Record<string, string> = {};
  for (const { id, actions } of segments) map[id] = planOf(actions);
  return stringify({ segments: map }, { lineWidth: 0 });
}
