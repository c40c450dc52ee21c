/**
 * The channel the engine carries (src/peer/enginechannel.ts, native/chan.c, stream.c): its
 * numbers against frame.ts, its receive path fed garbage, and two ends over a loopback
 * TLS-PSK connection handed to one engine, as two daemons hand theirs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { PSK_CIPHERS, PSK_IDENTITY } from '../../../src/common/key';
import type { Logger } from '../../../src/common/log';
import { native } from '../../../src/native';
import { EngineChannel, takeOver } from '../../../src/peer/enginechannel';
import {
  FrameType,
  HEADER,
  INITIAL_WINDOW,
  MAX_PAYLOAD,
  encode,
  encodeWindow,
} from '../../../src/peer/frame';
import { decodeTarget, encodeTarget } from '../../../src/peer/target';
import { Engine } from '../../../src/proxy/engine';

const quiet = { warn: () => undefined, info: () => undefined } as unknown as Logger;

/** Everything a socket sends until its end, and whether it ended with an error. */
function drain(s: Duplex): Promise<{ data: Buffer; error?: string }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    s.once('end', () => resolve({ data: Buffer.concat(chunks) }));
    s.once('close', () => resolve({ data: Buffer.concat(chunks), error }));
  });
}

describe('the engine channel: its numbers and its parser', () => {
  const keys = randomBytes(88);
  const seal = (plain: Buffer, seq = 0, fromDialer = true): Buffer =>
    native().chanTestSeal(keys, fromDialer, seq, plain);
  const feed = (bytes: Buffer): number => native().chanTestFeed(keys, false, bytes)[0];
  const why = (): Record<string, number> => native().chanConstants.why;

  it('has the frame format of src/peer/frame.ts', () => {
    const c = native().chanConstants;
    assert.equal(c.frameHeader, HEADER);
    assert.equal(c.frameMax, MAX_PAYLOAD);
    assert.equal(c.window, INITIAL_WINDOW);
  });

  it('takes well-formed records whole or cut, and ends on each kind of breach with its reason', () => {
    const good = Buffer.concat([
      seal(Buffer.concat([encode(FrameType.PING, 0, Buffer.alloc(8)), encode(FrameType.OPEN, 1)])),
      seal(Buffer.concat([encode(FrameType.DATA, 1, Buffer.from('hi')), encode(FrameType.FIN, 1)]), 1),
    ]);
    assert.equal(feed(good), -1, 'all taken');
    assert.equal(feed(good.subarray(0, good.length - 3)), -1, 'a record cut short waits for the rest');
    const tampered = Buffer.from(good);
    tampered[8] ^= 1;
    assert.equal(feed(tampered), why().auth);
    assert.equal(feed(seal(encode(FrameType.OPEN, 1), 5)), why().auth, 'a record out of order fails too');
    assert.equal(feed(seal(encode(FrameType.OPEN, 1), 0, false)), why().auth, 'and one sealed the other way');
    assert.equal(feed(Buffer.from([0xff, 0xff, 0xff, 0xff])), why().record);
    assert.equal(feed(seal(Buffer.from([9, 0, 0, 0, 0, 1, 0, 0, 0, 0]))), why().frame, 'unknown type');
    assert.equal(feed(seal(encode(FrameType.OPEN, 2))), why().stream, 'an even id from the dialer');
    assert.equal(feed(seal(encode(FrameType.DATA, 7, Buffer.from('x')))), why().stream, 'never opened');
    const over = [encode(FrameType.OPEN, 1)];
    for (let sent = 0; sent <= INITIAL_WINDOW; sent += MAX_PAYLOAD)
      over.push(encode(FrameType.DATA, 1, Buffer.alloc(MAX_PAYLOAD)));
    const records: Buffer[] = [];
    for (let i = 0; i < over.length; i += 3) records.push(seal(Buffer.concat(over.slice(i, i + 3)), i / 3));
    assert.equal(feed(Buffer.concat(records)), why().window, 'more than the window');
    assert.equal(
      feed(seal(Buffer.concat([encode(FrameType.OPEN, 1), encodeWindow(1, 0)]))),
      why().window,
      'a window of 0',
    );
    assert.equal(
      feed(
        seal(Buffer.concat([encode(FrameType.OPEN, 1), encode(FrameType.FIN, 1), encode(FrameType.FIN, 1)])),
      ),
      why().order,
    );
  });

  it('survives random and truncated input, authenticated or not', () => {
    for (let i = 0; i < 300; i++) {
      const junk = randomBytes(1 + (i % 200));
      assert.notEqual(feed(junk), why().nomem);
      // frames of random bytes in an authentic record: the parser itself meets them
      const r = feed(seal(randomBytes(10 + (i % 300))));
      assert.ok(r === -1 || r >= why().frame, `reason ${r}`);
      const cut = seal(Buffer.concat([encode(FrameType.OPEN, 1), randomBytes(i % 50)]));
      feed(cut.subarray(0, i % cut.length));
      // an OPEN naming a target of random bytes: no such segment, so JavaScript's (the channel goes on)
      assert.equal(feed(seal(encode(FrameType.OPEN, 1, randomBytes(1 + (i % 1024))))), -1);
    }
  });

  it('takes an OPEN naming a segment, up to 1024 bytes of it', () => {
    assert.equal(feed(seal(encode(FrameType.OPEN, 1, encodeTarget('seg', undefined)))), -1);
    assert.equal(feed(seal(encode(FrameType.OPEN, 1, Buffer.alloc(1025, 3)))), why().frame, 'too long');
  });
});

describe('the engine channel between two ends', () => {
  let engine: Engine;
  let dialer: EngineChannel;
  let acceptor: EngineChannel;
  let server: tls.Server;
  const accepted: Duplex[] = [];
  let onAccepted: (s: Duplex) => void = () => undefined;
  let onTarget: (s: Duplex, target: Buffer) => void = () => undefined;

  before(async () => {
    engine = new Engine(() => undefined);
    const psk = randomBytes(32);
    server = tls.createServer({ ciphers: PSK_CIPHERS, pskCallback: () => psk });
    const serverSide = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const client = tls.connect({
      host: '127.0.0.1',
      port,
      ciphers: PSK_CIPHERS,
      pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
      checkServerIdentity: () => undefined,
    });
    // As the `channel` request does: one exchange in TLS first, so that whatever the handshake
    // still had to say (session tickets) is read by Node before the engine takes over.
    const [srv] = await serverSide;
    srv.write('ok');
    await once(client, 'data');
    const common = { peer: 'test', log: quiet };
    acceptor = new EngineChannel(engine, srv, takeOver(srv)!, {
      ...common,
      dialer: false,
      onStream: (s) => {
        accepted.push(s);
        onAccepted(s);
      },
      onTarget: (s, target) => onTarget(s, target),
      // the peer's key: `k`, which may attach (its streams to k's segments are the engine's)
      peerKey: { name: 'k', all: false },
    });
    dialer = new EngineChannel(engine, client, takeOver(client)!, { ...common, dialer: true });
  });

  after(async () => {
    dialer.close();
    acceptor.close();
    server.close();
    // the engine stops before the process exits: a timer left unref'd let the process end
    // with the engine's thread still delivering, which aborted it about once in 50 runs
    await new Promise((resolve) => setTimeout(resolve, 100));
    engine.stop();
  });

  it('answers a keepalive, and counts bytes both ways', async () => {
    const ms = await dialer.ping();
    assert.ok(ms > 0);
    assert.ok(dialer.rttMs !== null);
    assert.ok(dialer.bytesUp > 0 && dialer.bytesDown > 0);
  });

  it('carries 2 MiB each way intact on one stream, with half-close', async () => {
    onAccepted = (s) => {
      // the far end echoes everything, then ends after the sender did
      s.pipe(s);
    };
    const s = dialer.open();
    const up = randomBytes(2 * 1024 * 1024);
    const back = drain(s);
    s.end(up);
    const got = await back;
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(up), `${got.data.length} bytes came back`);
  });

  it('passes a reset both ways', async () => {
    onAccepted = () => undefined;
    const s = dialer.open();
    s.write('x');
    await new Promise<void>((resolve) => (onAccepted = () => resolve()));
    const far = accepted[accepted.length - 1];
    const farEnd = drain(far);
    s.destroy();
    assert.equal((await farEnd).error, 'ECONNRESET', 'the dialer closing with no FIN resets the far end');

    const t = dialer.open();
    t.write('y');
    await new Promise<void>((resolve) => (onAccepted = () => resolve()));
    const far2 = accepted[accepted.length - 1];
    const nearEnd = drain(t);
    far2.destroy();
    assert.equal((await nearEnd).error, 'ECONNRESET', 'and the far end resetting resets the dialer');
  });

  it('holds up only a stream whose reader stalls', async () => {
    onAccepted = (s) => s.pipe(s);
    const stalled = dialer.open();
    stalled.pause(); // never read: its window fills, and the far end stops
    stalled.write(randomBytes(4 * INITIAL_WINDOW));
    const busy = dialer.open();
    for (let i = 0; i < 20; i++) {
      busy.write(`ping ${i}`);
      const [echo] = (await once(busy, 'data')) as [Buffer];
      assert.equal(echo.toString(), `ping ${i}`);
    }
    busy.destroy();
    stalled.destroy();
  });

  /**
   * A TCP service on loopback (an echo unless `serve` says), and a group whose tail it is (or
   * `port`), registered as segment `id` of `owner`.
   */
  async function segment(
    id: string,
    owner: string,
    port?: number,
    serve = (c: net.Socket) => void c.pipe(c),
  ) {
    // (a tail reset by the engine errs: that is what some tests want)
    const echo = net.createServer({ allowHalfOpen: true }, (c) => serve(c.on('error', () => undefined)));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const events = { handoff: () => undefined, dialed: () => undefined, refused: () => undefined };
    const group = engine.group(10, undefined, { ...events, acceptError: () => undefined }, 1000);
    const tailPort = port ?? (echo.address() as net.AddressInfo).port;
    await group.setTail(0, { nsFd: -1, host: '127.0.0.1', port: tailPort });
    group.setAttachable({ id, owner });
    return { group, done: () => (echo.close(), void group.close()) };
  }

  it('dials the segment an OPEN names itself: bytes both ways, half-close, counted in its group', async () => {
    const seg = await segment('seg-a', 'k');
    onTarget = () => assert.fail('the engine dials a segment of the peer key: no JavaScript');
    const s = dialer.openTarget(encodeTarget('seg-a', undefined));
    const up = randomBytes(300_000);
    const back = drain(s);
    s.end(up);
    const got = await back;
    assert.equal(got.error, undefined);
    assert.ok(got.data.equals(up), `${got.data.length} bytes came back`);
    for (let i = 0; i < 50 && seg.group.stats().open > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const stats = seg.group.stats();
    assert.equal(stats.total, 1);
    assert.equal(stats.open, 0, 'the stream ended: nothing open');
    assert.equal(stats.bytesUp, up.length);
    assert.equal(stats.bytesDown, up.length);
    seg.done();
  });

  it('resets a dialed stream when its segment closes, and a reset from the tail crosses too', async () => {
    const seg = await segment('seg-d', 'k');
    const s = dialer.openTarget(encodeTarget('seg-d', undefined));
    s.write('x');
    await once(s, 'data'); // (echoed: the engine has the tail's socket)
    const end = drain(s);
    seg.done();
    assert.equal((await end).error, 'ECONNRESET', 'the segment closed: the stream is reset');

    // a tail that resets its connection: the client's end is reset too
    const rst = await segment('seg-e', 'k', undefined, (c) => void c.once('data', () => c.resetAndDestroy()));
    const t = dialer.openTarget(encodeTarget('seg-e', undefined));
    const tEnd = drain(t);
    t.write('y');
    assert.equal((await tEnd).error, 'ECONNRESET');
    rst.done();
  });

  it('gives JavaScript, bytes in order, what it may not or cannot dial', async () => {
    const other = await segment('seg-b', 'someone-else');
    const down = await segment('seg-c', 'k', 1); // (nothing listens on port 1: refused)
    for (const id of ['no-such', 'seg-b', 'seg-c']) {
      const got = new Promise<{ id: string; data: string }>((resolve) => {
        onTarget = (s, target) => {
          const named = decodeTarget(target);
          s.once('data', (d: Buffer) => resolve({ id: named.id, data: d.toString() }));
        };
      });
      const s = dialer.openTarget(encodeTarget(id, undefined));
      s.write(`early bytes for ${id}`);
      assert.deepEqual(await got, { id, data: `early bytes for ${id}` });
      s.destroy();
    }
    assert.equal(down.group.stats().dialFailures, 1, 'the failed dial counts');
    other.done();
    down.done();
  });
});
