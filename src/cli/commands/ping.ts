import { checkPeerHost } from '../../api/grammar';
import { UsageError } from '../../common/errors';
import { type Command, withDaemon } from '../command';

export const ping: Command = {
  name: 'ping',
  summary: 'round trip to the daemon, or through it to a peer',
  usage: `usage: wormhole ping [HOST]

Prints the round trip in milliseconds. With HOST (host[:port], port 9999 by default; :PORT
is 127.0.0.1:PORT), the local daemon forwards the ping to the daemon on HOST, which must
share our key.

  wormhole ping
  wormhole ping myserver
  wormhole ping :9998`,
  async run(args, ctx) {
    if (args.length > 1) throw new UsageError('ping takes at most one HOST');
    const host = args[0] === undefined ? undefined : checkPeerHost(args[0], 'ping');
    const ms = await withDaemon(ctx, async (c) => {
      const started = process.hrtime.bigint();
      await c.call('ping', host ? { host } : {});
      return Number(process.hrtime.bigint() - started) / 1e6;
    });
    ctx.out(ms.toFixed(3));
    return 0;
  },
};
