/**
 * Issue 18, hole 7, in the UDP relay itself: what it holds for sessions whose upstream is not
 * there yet is bounded in bytes (per session, per head), and so is the number of sessions
 * being opened at once; what is past a bound is dropped and counted. A real head socket on
 * the loopback, clients from sockets of their own, and upstreams that never come.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import {
  type DatagramUpstream,
  HEAD_QUEUE_BYTES,
  OPENING_MAX,
  SESSION_QUEUE_BYTES,
  UdpRelay,
} from '../../../src/proxy/udp';
import { sleep } from '../../helpers/wait';

/** Send `count` datagrams of `size` bytes from a socket of its own, then close it. */
async function sendFrom(port: number, count: number, size: number): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  for (let i = 0; i < count; i++)
    await new Promise<void>((resolve) => s.send(Buffer.alloc(size), port, '127.0.0.1', () => resolve()));
  s.close();
}

/** Wait until the relay has read what was sent (the head socket is read asynchronously): its counts stay put. */
async function settled(relay: UdpRelay): Promise<void> {
  const seen = (): string => `${relay.datagramsUp} ${relay.dropped} ${relay.size}`;
  for (let last = ''; last !== seen();) {
    last = seen();
    await sleep(100);
  }
}

describe('hole 7: the UDP relay under a flood of new sources', () => {
  let head: dgram.Socket;
  let relay: UdpRelay;
  let port: number;
  const KiB = 1024;

  before(async () => {
    head = dgram.createSocket({ type: 'udp4', recvBufferSize: 16 * 1024 * 1024 });
    await new Promise<void>((resolve) => head.bind(0, '127.0.0.1', resolve));
    port = head.address().port;
    // an upstream that never comes (a trigger that runs long, a peer slow to attach)
    const never = (): Promise<DatagramUpstream> => new Promise<DatagramUpstream>(() => undefined);
    relay = new UdpRelay([head], never, 60_000, () => undefined, 100_000);
  });
  after(() => {
    relay.close();
    head.close();
  });

  it("keeps a session's bytes within its budget, and drops and counts the rest", async () => {
    await sendFrom(port, 16, 32 * KiB); // 512 KiB from one source
    await settled(relay);
    assert.equal(relay.queuedBytes, SESSION_QUEUE_BYTES);
    assert.equal(relay.dropped, 16 - SESSION_QUEUE_BYTES / (32 * KiB));
  });

  it("keeps the head's bytes within its budget, whatever the number of sources", async () => {
    const [up, dropped, queued] = [relay.datagramsUp, relay.dropped, relay.queuedBytes];
    const sources = HEAD_QUEUE_BYTES / SESSION_QUEUE_BYTES + 8;
    for (let i = 0; i < sources; i++) {
      await sendFrom(port, SESSION_QUEUE_BYTES / (32 * KiB), 32 * KiB);
      await sleep(20); // (read by the relay, not dropped by a full socket buffer)
    }
    await settled(relay);
    assert.equal(relay.queuedBytes, HEAD_QUEUE_BYTES);
    // every datagram read was kept or dropped, and some were dropped
    const kept = (relay.queuedBytes - queued) / (32 * KiB);
    assert.equal(relay.dropped - dropped, relay.datagramsUp - up - kept);
    assert.ok(relay.dropped > dropped, 'past the head budget, datagrams were dropped');
  });

  it('opens at most OPENING_MAX sessions at once: a new source past it is dropped', async () => {
    // (the sessions of the tests before are opening still: their upstreams never came)
    const dropped = relay.dropped;
    const sending: Promise<void>[] = [];
    for (let i = 0; i < OPENING_MAX + 16; i++) sending.push(sendFrom(port, 1, 16));
    await Promise.all(sending);
    await settled(relay);
    assert.equal(relay.size, OPENING_MAX, 'no more sessions than OPENING_MAX waiting for their upstream');
    assert.ok(relay.dropped - dropped >= 16, 'the datagrams of the sources past it were dropped and counted');
  });
});
