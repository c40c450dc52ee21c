/**
 * Test services (test/fixtures/server.js) run inside a namespace, and small clients.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Cleanup } from './netns';
import { ROOT } from './daemon';

// (kept here too for the tests that import them from the services)
export { type Created, parseCreate } from './daemon';

const SERVER = path.join(ROOT, 'test/fixtures/server.js');
const CLIENTS = path.join(ROOT, 'test/fixtures/clients.js');

/** Start a fixture server (in `netns`, or the host's namespace for null); resolves when ready. */
export function startService(
  t: Cleanup,
  netns: string | null,
  mode:
    | 'tcp-echo'
    | 'udp-echo'
    | 'udp-whoami'
    | 'udp-port'
    | 'tcp-reset'
    | 'tcp-sha'
    | 'tcp-stall'
    | 'tcp-port'
    | 'tcp-peer'
    | 'udp-peer'
    | 'tcp-flood'
    | 'unix-echo'
    | 'unix-hello',
  host: string,
  port: number | string,
): Promise<void> {
  const [file, args] = netns
    ? ['ip', ['netns', 'exec', netns, process.execPath, SERVER, mode, host, String(port)]]
    : [process.execPath, [SERVER, mode, host, String(port)]];
  const child = spawn(file, args as string[], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
}

/** What a run of steady clients saw (test/fixtures/clients.js). */
export interface ClientCounts {
  ok: number;
  /** The connect failed: nothing listened. */
  refused: number;
  /** Connected, then closed without the answer. */
  dropped: number;
  /** The first few drops' reasons. */
  why: string[];
}

/**
 * A new client every `everyMs` from inside `netns` to a tcp-echo reached at host:port, until
 * stop(), which resolves with what they saw once the last one has ended.
 */
export async function startClients(
  t: Cleanup,
  netns: string,
  host: string,
  port: number,
  everyMs: number,
): Promise<{ stop(): Promise<ClientCounts> }> {
  const args = ['netns', 'exec', netns, process.execPath, CLIENTS, host, String(port), String(everyMs)];
  const child = spawn('ip', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`clients exited with ${code}`)));
  });
  return {
    async stop() {
      child.stdin.end('stop\n');
      await exited;
      return JSON.parse(out.slice(out.indexOf('\n') + 1)) as ClientCounts;
    },
  };
}

/** Connect, send `data`, half-close, and collect everything until the other side closes. */
export function exchange(port: number, data: string | Buffer, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ port, host, allowHalfOpen: true }, () => c.end(data));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', reject);
  });
}

/** A TCP exchange from inside a namespace (socat: send, half-close, read all). */
export function exchangeIn(netns: string, port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      'ip',
      ['netns', 'exec', netns, 'socat', '-t', '3', '-', `TCP:127.0.0.1:${port}`],
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
    p.stdin?.end(data);
  });
}

/** As exchange, to a unix socket at `path` (Node cannot name an abstract one exactly: use socat). */
export function unixExchange(path: string, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ path, allowHalfOpen: true }, () => c.end(data));
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', reject);
  });
}

/** Send one datagram and wait for the answer. */
export function udpExchange(
  port: number,
  data: string,
  host = '127.0.0.1',
  timeoutMs = 3000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('no udp answer'));
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.toString());
    });
    s.send(data, port, host);
  });
}

/** A free TCP port on 127.0.0.1 in the host namespace (also free for UDP most of the time). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A command line of the seed, word by word, exactly as it is written there. */
export function seed(line: string): string[] {
  return line.split(' ');
}

/**
 * Push `total` bytes (a different block each time, so that a lost or repeated block changes
 * the sum) through a tcp-echo service at `port`, with backpressure, then FIN. The sha256 of
 * what was sent and of what came back (the echo's "bye" after our FIN left out).
 */
export function echoChecksums(
  port: number,
  total: number,
  block = 4 * 1024 * 1024,
): Promise<{ received: number; sent: string; got: string }> {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  const base = randomBytes(block);
  let received = 0;
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', reject);
    c.on('data', (d: Buffer) => {
      const take = Math.min(d.length, total - received);
      got.update(d.subarray(0, take));
      received += take;
    });
    c.on('end', () => resolve({ received, sent: sent.digest('hex'), got: got.digest('hex') }));
    let written = 0;
    const pump = (): void => {
      while (written < total) {
        const b = Buffer.from(base);
        b.writeUInt32LE(written / block, 0);
        sent.update(b);
        written += block;
        if (!c.write(b)) return void c.once('drain', pump);
      }
      c.end();
    };
    pump();
  });
}
