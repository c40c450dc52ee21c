import { checkPeerHost } from '../../api/grammar';
import { UsageError } from '../../common/errors';
import { type Command, withDaemon } from '../command';

export const tunnelCreate: Command = {
  name: 'tunnel-create',
  summary: 'build an encrypted L3 tunnel to a peer',
  usage: `usage: wormhole tunnel-create [--udp] HOST

Builds an encrypted tunnel between this machine and the peer HOST (which runs wormholed
with the same key). Prints LOCAL_IP REMOTE_IP, the two ends' overlay addresses. Creating
it again gives the same pair. Tunnels outlive the daemon.

  wormhole tunnel-create myserver
  wormhole tunnel-create --udp myserver`,
  async run(args, ctx) {
    const udp = args.includes('--udp');
    const rest = args.filter((a) => a !== '--udp');
    if (rest.length !== 1 || rest[0].startsWith('-'))
      throw new UsageError('tunnel-create takes one HOST (and optionally --udp)');
    const host = checkPeerHost(rest[0], 'tunnel-create');
    const t = await withDaemon(ctx, (c) => c.call('tunnel-create', { host, udp }));
    ctx.out(`${t.localIp} ${t.remoteIp}`);
    return 0;
  },
};

export const tunnelDelete: Command = {
  name: 'tunnel-delete',
  summary: 'remove the tunnel to a peer, on both sides',
  usage: `usage: wormhole tunnel-delete HOST

  wormhole tunnel-delete myserver`,
  async run(args, ctx) {
    if (args.length !== 1) throw new UsageError('tunnel-delete takes one HOST');
    const host = checkPeerHost(args[0], 'tunnel-delete');
    await withDaemon(ctx, (c) => c.call('tunnel-delete', { host }));
    return 0;
  },
};

export const tunnelList: Command = {
  name: 'tunnel-list',
  summary: 'list tunnels, one line each',
  usage: `usage: wormhole tunnel-list [--json]

One line per tunnel: HOST LOCAL_IP REMOTE_IP ENGINE [udp] INTERFACE.

  wormhole tunnel-list`,
  async run(args, ctx) {
    const json = args.includes('--json');
    const extra = args.filter((a) => a !== '--json');
    if (extra.length > 0) throw new UsageError(`tunnel-list: unexpected "${extra[0]}"`);
    const { tunnels } = await withDaemon(ctx, (c) => c.call('tunnel-list', {}));
    if (json) ctx.out(JSON.stringify(tunnels, null, 2));
    else
      for (const t of tunnels)
        ctx.out(`${t.host} ${t.localIp} ${t.remoteIp} ${t.engine}${t.udp ? ' udp' : ''} ${t.iface}`);
    return 0;
  },
};
