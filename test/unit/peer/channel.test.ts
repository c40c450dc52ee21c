/**
 * The channel between daemons (src/peer): its frame parser fed whole, cut and random input,
 * and two channel ends over a loopback TCP connection (no TLS: the frames are the same).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import type { Logger } from '../../../src/common/log';
import { Channel, type PeerStream } from '../../../src/peer/channel';
import {
  type Frame,
  FrameError,
  FrameParser,
  FrameType,
  HEADER,
  INITIAL_WINDOW,
  MAX_PAYLOAD,
  encode,
  encodeWindow,
} from '../../../src/peer/frame';
import { eventually } from '../../helpers/wait';

/** Every frame of `bytes`, or the FrameError that stopped the parse. */
function parseAll(bytes: Buffer, cut = bytes.length): { frames: Frame[]; error?: Error } {
  const frames: Frame[] = [];
  const parser = new FrameParser((f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
  try {
    for (let i = 0; i < bytes.length; i += cut) parser.push(bytes.subarray(i, i + cut));
  } catch (err) {
    return { frames, error: err as Error };
  }
  return { frames };
}

const SAMPLE = Buffer.concat([
  encode(FrameType.OPEN, 1),
  encode(FrameType.DATA, 1, Buffer.from('hello')),
  encode(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD, 7)),
  encodeWindow(1, 4096),
  encode(FrameType.PING, 0, Buffer.alloc(8, 1)),
  encode(FrameType.PONG, 0, Buffer.alloc(8, 1)),
  encode(FrameType.FIN, 1),
  encode(FrameType.RST, 3),
  encode(FrameType.GOAWAY, 0),
]);

describe('channel frames', () => {
  it('reads back what was encoded, however the bytes are cut', () => {
    const whole = parseAll(SAMPLE);
    assert.equal(whole.error, undefined);
    assert.deepEqual(
      whole.frames.map((f) => [f.type, f.stream, f.payload.length]),
      [
        [FrameType.OPEN, 1, 0],
        [FrameType.DATA, 1, 5],
        [FrameType.DATA, 1, MAX_PAYLOAD],
        [FrameType.WINDOW, 1, 4],
        [FrameType.PING, 0, 8],
        [FrameType.PONG, 0, 8],
        [FrameType.FIN, 1, 0],
        [FrameType.RST, 3, 0],
        [FrameType.GOAWAY, 0, 0],
      ],
    );
    assert.equal(whole.frames[1].payload.toString(), 'hello');
    assert.equal(whole.frames[3].payload.readUInt32BE(0), 4096);
    for (const cut of [1, 2, 3, 9, 10, 11, 4097])
      assert.deepEqual(parseAll(SAMPLE, cut), whole, `cut ${cut}`);
  });

  it('gives nothing for a truncated frame, and waits for the rest', () => {
    for (let end = 0; end < SAMPLE.length; end += 97) {
      const { frames, error } = parseAll(SAMPLE.subarray(0, end));
      assert.equal(error, undefined);
      const whole = parseAll(SAMPLE).frames;
      assert.deepEqual(frames, whole.slice(0, frames.length), 'only whole frames, in order');
    }
  });

  it('refuses what the format forbids', () => {
    const header = (type: number, flags: number, stream: number, len: number): Buffer => {
      const b = Buffer.alloc(HEADER);
      b.writeUInt8(type, 0);
      b.writeUInt8(flags, 1);
      b.writeUInt32BE(stream, 2);
      b.writeUInt32BE(len, 6);
      return b;
    };
    const bad = [
      header(8, 0, 0, 0), // unknown type
      header(FrameType.DATA, 1, 1, 1), // flags
      header(FrameType.DATA, 0, 1, MAX_PAYLOAD + 1), // oversized
      header(FrameType.DATA, 0, 1, 0), // empty data
      header(FrameType.DATA, 0, 0, 1), // data on stream 0
      header(FrameType.WINDOW, 0, 1, 8), // wrong length
      header(FrameType.PING, 0, 3, 8), // ping on a stream
      header(FrameType.OPEN, 0, 1, 0xffffffff), // a length meant to make us wait for 4 GiB
    ];
    for (const b of bad) assert.ok(parseAll(b).error instanceof FrameError, b.toString('hex'));
  });

  it('survives random input: frames, or a FrameError, never anything else', () => {
    for (let i = 0; i < 2000; i++) {
      // half the time a valid header type and small length, so that parsing goes deeper
      const bytes = randomBytes(1 + (i % 200));
      if (i % 2 === 0 && bytes.length >= HEADER) {
        bytes[0] %= 8;
        bytes[1] = 0;
        bytes.writeUInt32BE(bytes.readUInt32BE(6) % 64, 6);
      }
      const { error } = parseAll(bytes, 1 + (i % 13));
      assert.ok(error === undefined || error instanceof FrameError, String(error));
    }
  });
});

/** Wait until `cond` holds (polled every 10 ms, within the tests' patience). */
function waitFor(what: string, cond: () => boolean): Promise<true> {
  return eventually(what, async () => (cond() ? true : undefined), 10);
}

/** The warnings a channel logged. */
function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = {
    warn: (f: Record<string, unknown>, m: string) => lines.push(`${m}: ${String(f.err)}`),
  } as unknown as Logger;
  return { log, lines };
}

/** Two channel ends over loopback TCP; the accepting end's streams are handed to `onStream`. */
async function pair(
  onStream: (s: PeerStream) => void,
  onGoAway?: () => void,
): Promise<{ dialer: Channel; acceptor: Channel; raw: net.Socket; lines: string[] }> {
  const { log, lines } = recorder();
  let acceptor: Channel | undefined;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    acceptor = new Channel(s, { dialer: false, peer: 'test', log, onStream });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const raw = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  await once(raw, 'connect');
  server.close();
  const dialer = new Channel(raw, { dialer: true, peer: 'test', log, onGoAway });
  await waitFor('accepted', () => acceptor !== undefined);
  return { dialer, acceptor: acceptor!, raw, lines };
}

/** The error a stream ended with, once it has closed. */
function closed(s: PeerStream): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => s.once('close', () => resolve(s.errored)));
}

/** Everything a stream gives until its end (the stream stays open for writing). */
function readAll(s: PeerStream): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks).toString());
}

describe('channel streams', () => {
  it('carries half-close both ways: each side ends, the other goes on writing', async () => {
    const served: Promise<string>[] = [];
    const { dialer } = await pair((s) => {
      // the far side answers after the near side's FIN, then ends
      served.push(
        readAll(s).then((got) => {
          s.end(`got ${got}`);
          return got;
        }),
      );
    });
    const s = dialer.open();
    s.end('ping');
    assert.equal(await readAll(s), 'got ping');
    assert.equal(await served[0], 'ping');

    // and the other way: the far side ends first, the near side still writes after it
    let far: PeerStream | undefined;
    const { dialer: d2 } = await pair((x) => {
      far = x;
      x.end('early');
    });
    const s2 = d2.open();
    assert.equal(await readAll(s2), 'early');
    s2.end('late');
    assert.equal(await readAll(far!), 'late');
    dialer.close();
    d2.close();
  });

  it('turns a reset on either side into a reset (ECONNRESET) on the other', async () => {
    let far: PeerStream | undefined;
    const { dialer } = await pair((x) => (far = x));
    const near = dialer.open();
    near.write('x');
    await waitFor('opened', () => far !== undefined);
    const farError = closed(far!);
    near.destroy();
    assert.equal((await farError)?.code, 'ECONNRESET');

    const near2 = dialer.open();
    near2.write('y');
    await waitFor('opened', () => far?.id === near2.id);
    const nearError = closed(near2);
    far!.destroy();
    assert.equal((await nearError)?.code, 'ECONNRESET');
    dialer.close();
  });

  it('hands the reader only what follows the preface, and resets a stream ended before it', async () => {
    // the far side answers "OK" and then echoes what it reads (sent by the near side at once)
    const { dialer } = await pair((x) => {
      x.write('OK');
      x.pipe(x);
    });
    const near = dialer.open();
    let taken = '';
    near.expectPreface((p) => {
      taken += p.toString();
      return taken.length < 2 ? undefined : Buffer.from(taken.slice(2));
    });
    near.end('hello');
    assert.equal(await readAll(near), 'hello');
    assert.equal(taken.slice(0, 2), 'OK');

    // the far side ends at once: no preface came, the near stream is reset
    const { dialer: d2 } = await pair((x) => x.end());
    const s2 = d2.open();
    s2.expectPreface(() => undefined);
    s2.write('x');
    assert.equal((await closed(s2))?.code, 'ECONNRESET');
    dialer.close();
    d2.close();
  });

  it('holds up only the stream whose reader stalls', async () => {
    const far = new Map<number, PeerStream>();
    const { dialer } = await pair((x) => {
      far.set(x.id, x);
      if (x.id === 3) x.on('data', (d: Buffer) => x.write(d)); // an echo; stream 1 is never read
    });
    const stalled = dialer.open();
    const busy = dialer.open();
    // write to the stalled one far more than its window
    const block = Buffer.alloc(64 * 1024, 1);
    const sent = 32 * block.length;
    for (let i = 0; i < 32; i++) stalled.write(block);
    await waitFor('the far side holds its window', () => far.get(1)?.readableLength === INITIAL_WINDOW);
    for (let i = 0; i < 50; i++) {
      busy.write(String(i % 10));
      const [d] = (await once(busy, 'data')) as [Buffer];
      assert.equal(d.toString(), String(i % 10));
    }
    assert.ok(stalled.writableLength > 0, 'the stalled stream still holds bytes it could not send');
    // the stalled reader starts again: everything arrives
    let got = 0;
    far.get(1)!.on('data', (d: Buffer) => (got += d.length));
    stalled.end();
    await waitFor('all arrived', () => got === sent);
    dialer.close();
  });

  it('goes away when told: open streams finish, then the channel closes', async () => {
    let far: PeerStream | undefined;
    let told = false;
    const { dialer, acceptor } = await pair(
      (x) => (far = x),
      () => (told = true),
    );
    const near = dialer.open();
    near.write('before');
    await waitFor('opened', () => far !== undefined);
    acceptor.goAway();
    await waitFor('the dialer is told', () => told && dialer.draining);
    const got = readAll(far!);
    near.end(' after');
    assert.equal(await got, 'before after', 'the open stream goes on');
    far!.end();
    await waitFor('both ends closed once it ended', () => acceptor.closed && dialer.closed);
  });

  it('closes a channel that breaks the rules, with one log line, and resets its streams', async () => {
    const cases: [string, (raw: net.Socket) => void][] = [
      ['garbage', (raw) => raw.write(Buffer.concat([Buffer.from([0xff]), randomBytes(63)]))],
      ['unknown stream', (raw) => raw.write(encode(FrameType.DATA, 99, Buffer.from('x')))],
      ['out of order', (raw) => raw.write(encode(FrameType.OPEN, 1))],
      [
        'over the window',
        (raw) => {
          for (let sent = 0; sent <= INITIAL_WINDOW; sent += MAX_PAYLOAD)
            raw.write(encode(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD)));
        },
      ],
    ];
    for (const [what, send] of cases) {
      let far: PeerStream | undefined;
      const { dialer, acceptor, raw, lines } = await pair((x) => (far = x));
      dialer.open(); // stream 1, opened properly
      await waitFor('opened', () => far !== undefined);
      send(raw); // then the dialer's socket sends what it must not
      await waitFor(what, () => acceptor.closed);
      assert.equal(lines.length, 1, `${what}: ${lines.join(' | ')}`);
      assert.match(lines[0], /broke the channel protocol/);
      assert.equal(far!.destroyed, true, `${what}: its stream is gone`);
      dialer.close();
    }
  });
});
