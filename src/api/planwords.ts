/**
 * A plan written as one string (a line of `apply`'s file, what `export` prints): the create
 * grammar's words, split and joined as a shell would, but with nothing of a shell's beyond
 * quotes. "double" quotes take \" and \\ escapes, 'single' quotes take none; there is no
 * expansion, no globbing, no variable: the words go to the daemon as they are written.
 */
import { type Action, tokenize } from './grammar';
import { splitPlan } from './splitwords';

export { splitPlan };

/** Words -> a plan's text that splitPlan reads back as the same words. */
export function joinPlan(words: readonly string[]): string {
  return words.map((w) => (w !== '' && /^[A-Za-z0-9_@%+=:,./~^-]+$/.test(w) ? w : quote(w))).join(' ');
}

function quote(word: string): string {
  return `"${word.replace(/(["\\])/g, '\\$1')}"`;
}

/** A plan's text -> the actions it sends (tokenize's checks and messages). */
export function planActions(text: string): Action[] {
  return tokenize(splitPlan(text));
}

/**
 * `actions` less the top segment's `id` actions (a child's own id stays with the child): in
 * apply's file the id is the key, so `create id web url :80` and `web: url :80` are one plan.
 */
export function withoutTopId(actions: readonly Action[]): Action[] {
  const firstChild = actions.findIndex((a) => a.verb === 'child' || a.verb === 'chain');
  const top = firstChild < 0 ? actions.length : firstChild;
  return actions.filter((a, i) => !(i < top && a.verb === 'id'));
}

/** Whether two plans are the same, their top ids aside (apply and labels leave such alone). */
export function samePlan(a: readonly Action[], b: readonly Action[]): boolean {
  return JSON.stringify(withoutTopId(a)) === JSON.stringify(withoutTopId(b));
}

/** Actions -> their words (the inverse of tokenize). */
export function actionWords(actions: readonly Action[]): string[] {
  return actions.flatMap((a) => [a.verb, ...a.args]);
}
