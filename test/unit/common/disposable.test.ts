import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DisposableStack } from '../../../src/common/disposable';
import { placed } from '../../../src/common/slots';

describe('placed (arrays at their size)', () => {
  it('sets within the array in place, and past its end in a copy that keeps the holes', () => {
    const a = ['x'];
    assert.equal(placed(a, 0, 'y'), a);
    assert.deepEqual(a, ['y']);
    const b = placed(a, 3, 'z');
    assert.notEqual(b, a);
    assert.equal(b.length, 4);
    assert.equal(b[0], 'y');
    assert.equal(b[3], 'z');
    assert.ok(!(1 in b) && !(2 in b), 'slots never set stay holes');
  });
});

describe('DisposableStack', () => {
  it('releases resources and functions last added first, past its small size too', async () => {
    const order: number[] = [];
    const s = new DisposableStack();
    for (let i = 0; i < 12; i++) {
      if (i % 2) s.defer(() => void order.push(i));
      else s.add({ dispose: () => void order.push(i) });
    }
    await s.dispose();
    assert.deepEqual(order, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    await s.dispose();
    assert.equal(order.length, 12, 'a second dispose releases nothing again');
  });

  it('releases at once what is added after it was disposed, and gathers errors', async () => {
    const s = new DisposableStack();
    s.defer(() => {
      throw new Error('first');
    });
    s.defer(() => Promise.reject(new Error('second')));
    await assert.rejects(s.dispose(), (e: unknown) => e instanceof AggregateError && e.errors.length === 2);
    let late = false;
    s.defer(() => {
      late = true;
    });
    assert.ok(late, 'added after dispose: released at once');
  });
});
