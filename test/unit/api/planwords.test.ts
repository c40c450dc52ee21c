import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinPlan, splitPlan, withoutTopId } from '../../../src/api/planwords';
import { tokenize } from '../../../src/api/grammar';

describe('plans as one string (apply, export)', () => {
  it('splits words as a shell would, quotes and all, with nothing else of a shell', () => {
    assert.deepEqual(splitPlan('  url :80   tail url :81 '), ['url', ':80', 'tail', 'url', ':81']);
    assert.deepEqual(splitPlan(`docker-run img sh -c "echo \\"hi\\" \\\\ there" 'a "b"' x""y`), [
      'docker-run',
      'img',
      'sh',
      '-c',
      'echo "hi" \\ there',
      'a "b"',
      'xy',
    ]);
    assert.deepEqual(splitPlan('a $HOME * `id`'), ['a', '$HOME', '*', '`id`']);
    assert.deepEqual(splitPlan(`a ''`), ['a', '']);
    assert.throws(() => splitPlan('url "open'), /an unclosed " quote/);
    assert.throws(() => splitPlan(`url 'open`), /an unclosed ' quote/);
  });

  it('joins words into a string that splits back to the same words', () => {
    const samples = [
      ['url', ':8080', 'tail', 'url', 'tcp://blue@127.0.0.1:80'],
      ['docker-run', 'img', 'sh', '-c', 'echo "a b" \\ $x', '', "it's", 'tab\there', 'new\nline'],
    ];
    // and words of random characters, quotes and backslashes among them
    const chars = `ab :"'\\ $\t-_`;
    for (let n = 0; n < 200; n++)
      samples.push(
        Array.from({ length: 1 + (n % 5) }, (_, i) =>
          Array.from(
            { length: (n * 7 + i) % 9 },
            (_, j) => chars[(n * 31 + i * 17 + j * 13) % chars.length],
          ).join(''),
        ),
      );
    for (const words of samples) assert.deepEqual(splitPlan(joinPlan(words)), words, JSON.stringify(words));
    assert.equal(
      joinPlan(['url', ':80', 'tail', 'url', 'unix:///run/a.sock']),
      'url :80 tail url unix:///run/a.sock',
    );
  });

  it("leaves out the top segment's id, never a child's", () => {
    const actions = tokenize([
      'url',
      ':80',
      'id',
      'web',
      'tail',
      'url',
      ':81',
      'child',
      'id',
      'kid',
      'url',
      ':82',
    ]);
    assert.deepEqual(
      withoutTopId(actions).flatMap((a) => [a.verb, ...a.args]),
      ['url', ':80', 'tail', 'url', ':81', 'child', 'id', 'kid', 'url', ':82'],
    );
  });
});
