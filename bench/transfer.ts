/**
 * A transfer in flight across a restart (bench/scenes/restart.ts): numbered blocks through an
 * echo server, sha256 of what went and of what came back. It runs in a worker thread, so that
 * hashing and writing 64 MiB never holds up the client loop timed on the main thread.
 *
 * `inFlight(port, total)` starts it and sends the first half; `half` resolves when that half
 * has come back; `finish()` sends the rest, half-closes and resolves with the outcome.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const BLOCK = 1024 * 1024;
/** How long the transfer may stand still (no drain, no echo) before it counts as cut. */
const STALL_MS = 5000;

/** Did it end intact, and in words what happened. */
export interface Outcome {
  survived: boolean;
  note: string;
}

export interface InFlight {
  /** The first half has come back (or the transfer failed before it did). */
  half: Promise<void>;
  /** Send the rest, half-close, wait for the echo server's end. */
  finish(): Promise<Outcome>;
  /** Stop the worker (its socket closes with it). */
  stop(): Promise<void>;
}

export function inFlight(port: number, total: number): InFlight {
  const w = new Worker(__filename, { workerData: { port, total } });
  const message = <T>(key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const on = (m: Record<string, unknown>): void => {
        if (!(key in m)) return;
        w.off('message', on);
        resolve(m[key] as T);
      };
      w.on('message', on);
      w.once('error', reject);
    });
  const half = message<true>('half').then(() => undefined);
  const outcome = message<Outcome>('outcome');
  return {
    half,
    finish: () => {
      w.postMessage('finish');
      return outcome;
    },
    stop: async () => void (await w.terminate()),
  };
}

/** The worker's side. */
function run(port: number, total: number): void {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const sent = createHash('sha256');
  const got = createHash('sha256');
  const base = randomBytes(BLOCK);
  let written = 0;
  let received = 0;
  let ended = false;
  let closed = false;
  let why: string | undefined;
  let wake = (): void => undefined;
  s.on('data', (d: Buffer) => {
    const take = Math.min(d.length, total - received);
    if (take > 0) got.update(d.subarray(0, take));
    received += d.length;
    wake();
  });
  s.on('end', () => ((ended = true), wake()));
  s.on('error', (e: NodeJS.ErrnoException) => (why ??= e.code ?? e.message));
  s.on('close', () => ((closed = true), wake()));
  s.on('drain', () => wake());

  /** Until cond holds, the socket closes, or STALL_MS with nothing: whether cond holds. */
  const until = (cond: () => boolean): Promise<boolean> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (!cond() && !closed) return;
        clearTimeout(timer);
        wake = () => undefined;
        resolve(cond());
      };
      const timer = setTimeout(() => ((wake = () => undefined), resolve(cond())), STALL_MS);
      wake = check;
      check();
    });

  const send = async (upTo: number): Promise<void> => {
    while (written < upTo && !closed && !s.writableEnded) {
      const b = Buffer.from(base);
      b.writeUInt32LE(written / BLOCK, 0);
      sent.update(b);
      written += BLOCK;
      if (!s.write(b) && !(await until(() => !s.writableNeedDrain))) {
        why ??= closed ? undefined : `stalled ${STALL_MS / 1000} s`;
        return;
      }
    }
    const back = Math.min(upTo, total);
    if (!(await until(() => received >= back)) && !closed) why ??= `no echo for ${STALL_MS / 1000} s`;
  };

  const finish = async (): Promise<Outcome> => {
    await send(total);
    if (!closed && !s.writableEnded) s.end();
    await until(() => ended);
    s.destroy();
    const mib = (n: number): string => (n / 1048576).toFixed(0);
    const same = sent.digest('hex') === got.digest('hex');
    if (received >= total && ended)
      return same
        ? { survived: true, note: `intact (${mib(total)} MiB, sha256 equal)` }
        : { survived: false, note: 'all bytes back but the sha256 differs' };
    const how = why ?? (ended ? 'closed by the proxy' : 'no end');
    return {
      survived: false,
      note: `cut: ${mib(Math.min(received, total))} of ${mib(total)} MiB came back (${how})`,
    };
  };

  void send(total / 2).then(() => parentPort!.postMessage({ half: true }));
  parentPort!.once('message', () => void finish().then((outcome) => parentPort!.postMessage({ outcome })));
}

if (!isMainThread && parentPort) {
  const { port, total } = workerData as { port: number; total: number };
  run(port, total);
}
