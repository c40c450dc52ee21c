/**
 * TCP heads on loopback, with no daemon and no namespace (the engine dials tails in its own):
 * tails that answer with their name, a head on a fresh port, and a client asking who answers.
 */
import * as net from 'node:net';
import { native } from '../../src/native';
import type { Engine } from '../../src/proxy/engine';
import { type TailTarget, type TcpHead, openTcpHead } from '../../src/proxy/head';

/** A tail that answers every connection with its name, then closes. */
export async function nameServer(name: string): Promise<{ name: string; port: number; server: net.Server }> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined); // (a client gone first resets: nothing to answer)
    s.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { name, port: (server.address() as net.AddressInfo).port, server };
}

/** A loopback tail at `port`, as a segment would give it to its head. */
export function loopbackTarget(name: string, port: number): TailTarget {
  return {
    host: '127.0.0.1',
    port,
    what: `tail ${name}`,
    connect: () =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
  };
}

/** Connect to the head (from `from`, a loopback address, when given), and read which tail answered. */
export function whoAnswers(port: number, from?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    c.on('data', (d: Buffer) => (text += d.toString()));
    c.on('end', () => {
      c.end();
      resolve(text);
    });
    c.on('error', reject);
  });
}

/**
 * A head on a fresh loopback port, with the engine or (null) the JavaScript mover; it takes
 * each client to its tail. Not accepting yet: the test sets the tails, then calls accept().
 */
export async function loopbackHead(engine: Engine | null): Promise<{ head: TcpHead; port: number }> {
  const [fd, port] = await native().listenIn(null, 4, 'tcp', '127.0.0.1', 0, 128);
  const head = openTcpHead(engine, fd, {
    maxConnections: 100,
    dialTimeoutMs: 2000,
    onClient: (c) => void c.toTail().catch(() => c.drop()),
    onWarning: () => undefined,
  });
  return { head, port };
}
