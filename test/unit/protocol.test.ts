import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FrameReader, encodeFrame } from '../../src/api/frame';
import { MAX_FRAME, methods, requestSchema, responseSchema } from '../../src/api/protocol';
import { Connection } from '../../src/client';
import { WormholeError } from '../../src/common/errors';

describe('wire schema', () => {
  it('accepts well-formed params and refuses unknown fields and bad types', () => {
    assert.ok(methods.create.params.safeParse({ actions: [{ verb: 'url', args: [':80'] }] }).success);
    assert.ok(!methods.create.params.safeParse({ actions: [] }).success, 'no action');
    assert.ok(
      !methods.create.params.safeParse({ actions: [{ verb: 'rm', args: [] }] }).success,
      'unknown verb',
    );
    assert.ok(
      !methods.create.params.safeParse({ actions: [{ verb: 'url', args: [':80'], x: 1 }] }).success,
      'extra field',
    );
    assert.ok(!methods.create.params.safeParse({ actions: 'url :80' }).success, 'not an array');
    const many = Array.from({ length: 257 }, () => ({ verb: 'tail', args: [] }));
    assert.ok(!methods.create.params.safeParse({ actions: many }).success, 'too many actions');
    assert.ok(methods.ping.params.safeParse({}).success);
    assert.ok(methods.ping.params.safeParse({ host: 'myserver' }).success);
    assert.ok(!methods.ping.params.safeParse({ host: '' }).success);
    assert.ok(!methods.delete.params.safeParse({ id: 'x'.repeat(65) }).success);
    assert.ok(!methods.list.params.safeParse({ all: true }).success);
    assert.ok(methods['tunnel-create'].params.safeParse({ host: 'h', udp: false }).success);
    assert.ok(!methods['tunnel-create'].params.safeParse({ host: 'h' }).success);
  });
  it('checks request and response envelopes', () => {
    assert.ok(requestSchema.safeParse({ v: 1, id: 1, method: 'ping', params: {} }).success);
    assert.ok(!requestSchema.safeParse({ v: 1, id: -1, method: 'ping', params: {} }).success);
    assert.ok(!requestSchema.safeParse({ v: 1, method: 'ping' }).success);
    assert.ok(responseSchema.safeParse({ v: 1, id: 1, ok: true, result: {} }).success);
    assert.ok(
      responseSchema.safeParse({ v: 1, id: 1, ok: false, error: { code: 'X', message: 'm' } }).success,
    );
    assert.ok(!responseSchema.safeParse({ v: 1, id: 1, ok: false }).success);
  });

  it('keeps a known error code and makes an unknown one readable (a daemon of another version)', () => {
    const error = (code: string, message: string): unknown => {
      const r = responseSchema.parse({ v: 1, id: 1, ok: false, error: { code, message } });
      return r.ok ? undefined : r.error;
    };
    assert.deepEqual(error('NS_NOT_FOUND', 'no blue'), { code: 'NS_NOT_FOUND', message: 'no blue' });
    assert.deepEqual(error('RIGHTS_DENIED', 'key may not create'), {
      code: 'UNKNOWN_CODE',
      message:
        'key may not create (code RIGHTS_DENIED unknown to this wormhole: is the daemon another version?)',
    });
    // a code that is not code-shaped (terminal escapes, a sentence) is not repeated
    assert.deepEqual(error('\u001b[2Jx', 'odd'), {
      code: 'UNKNOWN_CODE',
      message: 'odd (a code unknown to this wormhole: is the daemon another version?)',
    });
    assert.ok(
      !responseSchema.safeParse({ v: 1, id: 1, ok: false, error: { code: 1, message: 'm' } }).success,
    );
  });

  it('gives the client a WormholeError for an unknown code, not a malformed reply', async () => {
    const fromDaemon = new PassThrough();
    const stream = Duplex.from({ readable: fromDaemon, writable: new PassThrough() });
    const conn = new Connection(stream, 'unix:///fake.sock');
    const reply = conn.call('list', {});
    fromDaemon.write(
      encodeFrame({ v: 1, id: 1, ok: false, error: { code: 'FROM_THE_FUTURE', message: 'not today' } }),
    );
    await assert.rejects(reply, (err: unknown) => {
      assert.ok(err instanceof WormholeError);
      assert.equal(err.code, 'UNKNOWN_CODE');
      assert.match(err.message, /^not today \(code FROM_THE_FUTURE unknown to this wormhole/);
      return true;
    });
    conn.close();
  });
});

describe('frames', () => {
  function reader(): { stream: PassThrough; frames: unknown[]; errors: WormholeError[]; r: FrameReader } {
    const stream = new PassThrough();
    const frames: unknown[] = [];
    const errors: WormholeError[] = [];
    const r = new FrameReader(
      stream,
      (f) => frames.push(f),
      (e) => errors.push(e),
    );
    return { stream, frames, errors, r };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('reads frames split across chunks and several in one chunk', async () => {
    const { stream, frames } = reader();
    const a = encodeFrame({ a: 1 });
    const b = encodeFrame({ b: 'two' });
    stream.write(a.subarray(0, 2));
    stream.write(Buffer.concat([a.subarray(2), b.subarray(0, 5)]));
    await tick();
    assert.deepEqual(frames, [{ a: 1 }]);
    stream.write(Buffer.concat([b.subarray(5), encodeFrame([3])]));
    await tick();
    assert.deepEqual(frames, [{ a: 1 }, { b: 'two' }, [3]]);
  });

  it('refuses an oversized length and non-JSON, and stops reading', async () => {
    const big = reader();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME + 1);
    big.stream.write(head);
    await tick();
    assert.equal(big.errors[0]?.code, 'FRAME_TOO_LARGE');
    const junk = reader();
    junk.stream.write(
      Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{'), encodeFrame({ later: 1 })]),
    );
    await tick();
    assert.equal(junk.errors[0]?.code, 'BAD_FRAME');
    assert.deepEqual(junk.frames, [], 'nothing after the bad frame');
  });

  it('puts unread bytes back into the stream on detach', async () => {
    const { stream, frames, r } = reader();
    stream.write(Buffer.concat([encodeFrame({ attach: 1 }), Buffer.from('raw bytes')]));
    await tick();
    assert.deepEqual(frames, [{ attach: 1 }]);
    r.detach();
    assert.equal(String(stream.read()), 'raw bytes');
  });

  it('refuses to encode a value over the limit', () => {
    assert.throws(() => encodeFrame('x'.repeat(MAX_FRAME + 10)), /too large/);
  });
});
