/** What the tunnel tests do on their two test hosts: talk through a tunnel, list its interfaces. */
import { execFile } from 'node:child_process';
import { sh } from '../../helpers/netns';

/** Send `data` from inside `netns` to host:port and read the answer. */
export function exchangeFrom(netns: string, host: string, port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(
      'ip',
      ['netns', 'exec', netns, 'socat', '-t', '3', '-', `TCP:${host}:${port}`],
      (err, out) => (err ? reject(err) : resolve(out)),
    );
    // socat that fails at once (the address unreachable, as asserted) leaves our write an
    // EPIPE: its exit code says so, through the callback
    p.stdin?.on('error', () => undefined);
    p.stdin?.end(data);
  });
}

/** The tunnel interfaces (wh + 10 hex digits) in `netns`. */
export function links(netns: string): string[] {
  return (JSON.parse(sh('ip', '-n', netns, '-j', 'link', 'show')) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => /^wh[0-9a-f]{10}$/.test(n));
}
