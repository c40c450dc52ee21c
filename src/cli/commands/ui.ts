import { spawn } from 'node:child_process';
import { UsageError, WormholeError } from '../../common/errors';
import { type Command, commandArgs, printJson, withDaemon } from '../command';

/** Where a browser opens the page: the bound address (a wildcard one as 127.0.0.1), with the token. */
export function pageUrl(address: string, token: string): string | undefined {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(address);
  if (!m) return undefined;
  const host = m[1] === '0.0.0.0' || m[1] === '[::]' ? '127.0.0.1' : m[1];
  return `http://${host}:${m[2]}/?token=${token}`;
}

/** Hand the address to the desktop's browser (xdg-open, an argv: never a shell). */
function openUrl(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new WormholeError(
          err.code === 'ENOENT' ? 'TOOL_MISSING' : 'TOOL_FAILED',
          err.code === 'ENOENT'
            ? 'xdg-open is not installed (Debian package xdg-utils): open the address above yourself'
            : `xdg-open failed (${err.message}): open the address above yourself`,
        ),
      ),
    );
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}

export const ui: Command = {
  name: 'ui',
  summary: "print the web view's address, with its token (--open: open it)",
  json: true,
  flags: ['--open'],
  usage: `usage: wormhole ui [--open] [--json]

Prints the address of the daemon's web view (wormholed --ui ADDR): a live drawing of every
segment, its ends grouped by host, namespace and container, with states and rates. The
address carries a token made from the key that asked (each key its own; a read-only key's
is enough to view); the key itself never goes to a browser. The page trades the token for a
cookie at once. A view on a unix socket is reached through a forward of it (an SSH -L, for
one): the address to open is then the forward's, with the token.
--open hands the address to the desktop's browser (xdg-open).
--json prints {"address", "url", "token"} (url: null for a unix socket).

  wormhole ui
  wormhole ui --open`,
  async run(args, ctx) {
    const { flags } = commandArgs(this, args, 0);
    const res = await withDaemon(ctx, (c) => c.call('ui', {}));
    if (res.address === null)
      throw new WormholeError(
        'UI_OFF',
        'this daemon serves no web view: start wormholed with --ui tcp://127.0.0.1:PORT (or unix:///PATH)',
      );
    const url = pageUrl(res.address, res.token);
    if (flags.has('--open') && !url)
      throw new UsageError(
        `--open: the web view is on ${res.address}, which a browser cannot open: forward it first (ssh -L 8080:${res.address.slice('unix://'.length)} HOST)`,
      );
    if (ctx.json) printJson(ctx, { address: res.address, url: url ?? null, token: res.token });
    else if (url) ctx.out(url);
    else {
      const p = res.address.slice('unix://'.length);
      ctx.out(res.address);
      ctx.out(`forward it (e.g. ssh -L 8080:${p} HOST), then open http://localhost:8080/?token=${res.token}`);
    }
    if (flags.has('--open') && url) await openUrl(url);
    return 0;
  },
};
