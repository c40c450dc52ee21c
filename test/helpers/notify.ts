/**
 * A stand-in for systemd's notification socket: an AF_UNIX datagram socket that records what
 * is sent to it. Node cannot bind one (dgram is UDP only), so socat does, as a child process
 * (argv, no shell) writing every datagram it receives to its stdout. socat puts nothing
 * between datagrams: tests match the concatenated text (each message ends where the next
 * KEY= begins).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { Cleanup } from './netns';

/** A running receiver. */
export interface NotifyReceiver {
  /** What to put in NOTIFY_SOCKET: the path, or '@name' for an abstract address. */
  address: string;
  /** Everything received so far, datagrams back to back. */
  text(): string;
  /** Wait until text() matches `re` (up to `ms`); its match, or an error showing the text. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

/** Whether a unix socket is bound at `address` (as /proc/net/unix shows it: '@' = abstract). */
function bound(address: string): boolean {
  return fs
    .readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .some((line) => line.endsWith(` ${address}`));
}

/** Start receiving at `address` (an absolute path, or '@name'); resolves once it is bound. */
export async function startNotifyReceiver(t: Cleanup, address: string): Promise<NotifyReceiver> {
  const abstract = address.startsWith('@');
  const listen = abstract ? `ABSTRACT-RECV:${address.slice(1)}` : `UNIX-RECV:${address}`;
  const child = spawn('socat', ['-u', listen, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let stderr = '';
  let exited: number | null | undefined;
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', (code) => (exited = code));
  t.after(() => {
    if (exited === undefined) child.kill('SIGKILL');
    if (!abstract) fs.rmSync(address, { force: true });
  });
  for (let i = 0; !bound(address); i++) {
    if (exited !== undefined || i >= 100) throw new Error(`socat did not bind ${address}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address,
    text: () => text,
    async waitFor(re, ms = 10_000) {
      const until = Date.now() + ms;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() > until)
          throw new Error(`no ${re} in what ${address} received: ${JSON.stringify(text)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
