/**
 * Words split as a shell would split them, with nothing of a shell's beyond quotes: "double"
 * quotes take \" and \\ escapes, 'single' quotes take none; no expansion, no globbing, no
 * variable. A plan's text (planwords.ts) and `ready exec "CMD ARGS"`'s command (grammar.ts) are
 * split so; apart from both so that the grammar can use it without importing planwords.
 */
import { UsageError } from '../common/errors';

/** A plan's text -> its words. Throws UsageError on an unclosed quote. */
export function splitPlan(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null; // null: between words
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '"' || c === "'") {
      const end = closingQuote(text, i);
      if (end < 0) throw new UsageError(`an unclosed ${c} quote in "${text}"`);
      const inner = text.slice(i + 1, end);
      word = (word ?? '') + (c === '"' ? inner.replace(/\\(["\\])/g, '$1') : inner);
      i = end;
    } else word = (word ?? '') + c;
  }
  if (word !== null) words.push(word);
  return words;
}

/** Where the quote opened at `start` closes (-1: it does not). */
function closingQuote(text: string, start: number): number {
  const q = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (q === '"' && text[i] === '\\') i++;
    else if (text[i] === q) return i;
  }
  return -1;
}
