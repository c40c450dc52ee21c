/**
 * `node udpprobe.js HOST PORT SECONDS SIZE WINDOW ROUNDS`: UDP through a path to an echo
 * server, measured from where it runs (`ip netns exec NS node udpprobe.js ...`: the sockets
 * scene measures from the first test host). Printed as JSON:
 * - the echoed rate: datagrams of SIZE bytes, WINDOW of them in flight, for SECONDS (a
 *   datagram not back within 200 ms counts as lost and its place in the window is refilled);
 * - the round trip of one 64-byte datagram at a time, ROUNDS times (p50, p99 in µs), after
 *   a warm-up that also waits for the path to answer at all (up to 10 s: a session opening,
 *   a tunnel's first handshake).
 */
import * as dgram from 'node:dgram';

interface Result {
  mbps: number;
  datagramsPerSec: number;
  lost: number;
  p50: number;
  p99: number;
}

const LOSS_MS = 200;

function socketTo(host: string, port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.connect(port, host, () => resolve(s));
  });
}

/** One datagram, its echo; undefined after `ms` without one. */
function roundTrip(s: dgram.Socket, payload: Buffer, ms: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const timer = setTimeout(() => {
      s.off('message', onMessage);
      resolve(undefined);
    }, ms);
    const onMessage = (): void => {
      clearTimeout(timer);
      resolve(Number(process.hrtime.bigint() - started) / 1000);
    };
    s.once('message', onMessage);
    s.send(payload);
  });
}

async function latency(s: dgram.Socket, rounds: number): Promise<{ p50: number; p99: number }> {
  const payload = Buffer.alloc(64, 1);
  const deadline = Date.now() + 10_000;
  while ((await roundTrip(s, payload, 500)) === undefined)
    if (Date.now() > deadline) throw new Error('no echo within 10 s');
  for (let i = 0; i < 50; i++) await roundTrip(s, payload, 500); // warm
  const samples: number[] = [];
  while (samples.length < rounds) {
    const us = await roundTrip(s, payload, 1000);
    if (us !== undefined) samples.push(us);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(rounds * 0.5)], p99: samples[Math.floor(rounds * 0.99)] };
}

function rate(
  s: dgram.Socket,
  seconds: number,
  size: number,
  window: number,
): Promise<Omit<Result, 'p50' | 'p99'>> {
  return new Promise((resolve) => {
    const inFlight = new Map<number, number>(); // sequence -> when sent
    let seq = 0;
    let received = 0;
    let lost = 0;
    const send = (): void => {
      const b = Buffer.alloc(size);
      b.writeUInt32BE(seq, 0);
      inFlight.set(seq++, Date.now());
      s.send(b);
    };
    const started = process.hrtime.bigint();
    s.on('message', (m) => {
      if (m.length < 4 || !inFlight.delete(m.readUInt32BE(0))) return;
      received++;
      if (!done) send();
    });
    let done = false;
    for (let i = 0; i < window; i++) send();
    const tick = setInterval(() => {
      const now = Date.now();
      for (const [k, at] of inFlight)
        if (now - at > LOSS_MS) {
          inFlight.delete(k);
          lost++;
          if (!done) send();
        }
    }, 20);
    setTimeout(() => {
      done = true;
      clearInterval(tick);
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      s.removeAllListeners('message');
      resolve({ mbps: (received * size * 8) / secs / 1e6, datagramsPerSec: received / secs, lost });
    }, seconds * 1000);
  });
}

async function main(): Promise<void> {
  const [host, port, seconds, size, window, rounds] = process.argv.slice(2);
  const s = await socketTo(host, Number(port));
  const lat = await latency(s, Number(rounds));
  const r = await rate(s, Number(seconds), Number(size), Number(window));
  s.close();
  process.stdout.write(JSON.stringify({ ...r, ...lat } satisfies Result));
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
