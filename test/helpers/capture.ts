/**
 * Packet captures for "never in clear text" checks: tcpdump on a test host's link, read
 * back as raw bytes.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Cleanup } from './netns';

/** A running capture; stop() returns every captured byte. */
export interface Capture {
  stop(): Promise<Buffer>;
}

/** Start tcpdump on `iface` inside `netns`; resolves once it is listening. */
export async function startCapture(t: Cleanup, netns: string, iface: string): Promise<Capture> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'whcap-')), 'cap.pcap');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'tcpdump',
      '--immediate-mode',
      '-Z',
      'root',
      '-i',
      iface,
      '-U',
      '-s',
      '0',
      '-w',
      file,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let exited = false;
  const done = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    }),
  );
  t.after(() => {
    if (!exited) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      if (d.toString().includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tcpdump exited with ${code}`)));
  });
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGINT');
      await done;
      return fs.readFileSync(file);
    },
  };
}
