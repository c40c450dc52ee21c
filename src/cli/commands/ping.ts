import { checkPeerHost } from '../../api/grammar';
import { type Command, commandArgs, printJson, withDaemon } from '../command';

export const ping: Command = {
  name: 'ping',
  summary: 'round trip to the daemon, or through it to a peer',
  json: true,
  usage: `usage: wormhole ping [--json] [HOST]

Prints the round trip in milliseconds. With HOST (host[:port], port 9999 by default; :PORT
is 127.0.0.1:PORT), the local daemon forwards the ping to the daemon on HOST, which must
share our key. --json prints {"ms": N}, with HOST {"host": HOST, "ms": N, "peerMs": N}
(peerMs: the local daemon's round trip to the peer).

  wormhole ping
  wormhole ping myserver
  wormhole ping :9998`,
  async run(args, ctx) {
    const { positional } = commandArgs(this, args, 1);
    const host = positional[0] === undefined ? undefined : checkPeerHost(positional[0], 'ping');
    const { ms, peerMs } = await withDaemon(ctx, async (c) => {
      const started = process.hrtime.bigint();
      const res = await c.call('ping', host ? { host } : {});
      return { ms: Number(process.hrtime.bigint() - started) / 1e6, peerMs: res.peerMs };
    });
    if (ctx.json) printJson(ctx, host ? { host, ms: round(ms), peerMs: peerMs ?? null } : { ms: round(ms) });
    else ctx.out(ms.toFixed(3));
    return 0;
  },
};

/** Milliseconds to the microsecond, as the text form prints them. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
