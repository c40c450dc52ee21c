import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../../../src/common/log';
import { RateLimitedLog } from '../../../src/common/ratelog';

describe('RateLimitedLog', () => {
  it('logs the first of a burst at once and the rest as one line with a count', async () => {
    const lines: [Record<string, unknown>, string][] = [];
    const log = { warn: (f: Record<string, unknown>, m: string) => lines.push([f, m]) } as unknown as Logger;
    const r = new RateLimitedLog(log, 50);
    for (let i = 0; i < 100; i++) r.warn({ i }, 'connection dropped');
    r.warn({}, 'accept failed');
    assert.deepEqual(
      lines.map(([, m]) => m),
      ['connection dropped', 'accept failed'],
    );
    await new Promise((res) => setTimeout(res, 120));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[2], [{ i: 99, repeated: 99, seconds: 0.05 }, 'connection dropped']);
  });
});
