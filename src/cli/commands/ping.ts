import { checkPeerHost } from '../../api/grammar';
import { type Command, commandArgs, printJson, withDaemon } from '../command';

export const ping: Command = {
  name: 'ping',
  summary: 'round trip to the daemon, or between it and a peer',
  json: true,
  usage: `usage: wormhole ping [--json] [HOST]

Prints a round trip in milliseconds: to the daemon, or with HOST (host[:port], port 9999 by
default; :PORT is 127.0.0.1:PORT) between the daemon and the daemon on HOST, which must share
our key (a keepalive on their channel, opened first if it is not open). --json prints
{"ms": N}, with HOST {"host": HOST, "ms": N, "peerMs": N} (ms: this command's round trip
through the local daemon to the peer; peerMs: the one printed without --json).

  wormhole ping
  wormhole ping myserver
  wormhole ping :9998`,
  async run(args, ctx) {
    const { positional } = commandArgs(this, args, 1);
    const host = positional[0] === undefined ? undefined : checkPeerHost(positional[0], 'ping');
    const { ms, peerMs } = await withDaemon(ctx, async (c) => {
      // A new process's first call costs it milliseconds of its own (code compiled on first
      // use): that call is not timed, so the figure is the round trip, not this process's start.
      await c.call('ping', {});
      const started = process.hrtime.bigint();
      const res = await c.call('ping', host ? { host } : {});
      return { ms: Number(process.hrtime.bigint() - started) / 1e6, peerMs: res.peerMs };
    });
    if (ctx.json) printJson(ctx, host ? { host, ms: round(ms), peerMs: peerMs ?? null } : { ms: round(ms) });
    else ctx.out((host && peerMs !== undefined ? peerMs : ms).toFixed(3));
    return 0;
  },
};

/** Milliseconds to the microsecond, as the text form prints them. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
