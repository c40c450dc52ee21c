import { checkPeerHost } from '../../api/grammar';
import { UsageError } from '../../common/errors';
import { type Command, commandArgs, printJson, withDaemon } from '../command';

export const tunnelCreate: Command = {
  name: 'tunnel-create',
  summary: 'build an encrypted L3 tunnel to a peer',
  json: true,
  flags: ['--udp'],
  usage: `usage: wormhole tunnel-create [--udp] [--json] HOST

Builds an encrypted tunnel between this machine and the peer HOST (which runs wormholed
with the same key). Prints LOCAL_IP REMOTE_IP, the two ends' overlay addresses. Creating
it again gives the same pair. Tunnels outlive the daemon. --json prints the tunnel as
tunnel-list --json does: {"host", "localIp", "remoteIp", "engine", "udp", "iface"}.

  wormhole tunnel-create myserver
  wormhole tunnel-create --udp myserver`,
  async run(args, ctx) {
    const { flags, positional } = commandArgs(this, args, 1);
    if (positional.length === 0) throw new UsageError('needs a HOST');
    const host = checkPeerHost(positional[0], 'tunnel-create');
    const t = await withDaemon(ctx, (c) => c.call('tunnel-create', { host, udp: flags.has('--udp') }));
    if (ctx.json) printJson(ctx, t);
    else ctx.out(`${t.localIp} ${t.remoteIp}`);
    return 0;
  },
};

export const tunnelDelete: Command = {
  name: 'tunnel-delete',
  summary: 'remove the tunnel to a peer, on both sides',
  json: true,
  usage: `usage: wormhole tunnel-delete [--json] HOST

--json prints {"host": HOST, "deleted": true}.

  wormhole tunnel-delete myserver`,
  async run(args, ctx) {
    const { positional } = commandArgs(this, args, 1);
    if (positional.length === 0) throw new UsageError('needs a HOST');
    const host = checkPeerHost(positional[0], 'tunnel-delete');
    const res = await withDaemon(ctx, (c) => c.call('tunnel-delete', { host }));
    if (ctx.json) printJson(ctx, { host, deleted: res.deleted });
    return 0;
  },
};

export const tunnelList: Command = {
  name: 'tunnel-list',
  summary: 'list tunnels, one line each',
  json: true,
  usage: `usage: wormhole tunnel-list [--json]

One line per tunnel: HOST LOCAL_IP REMOTE_IP ENGINE [udp] INTERFACE. --json prints an
array of {"host", "localIp", "remoteIp", "engine", "udp", "iface"}.

  wormhole tunnel-list
  wormhole tunnel-list --json`,
  async run(args, ctx) {
    commandArgs(this, args, 0);
    const { tunnels } = await withDaemon(ctx, (c) => c.call('tunnel-list', {}));
    if (ctx.json) printJson(ctx, tunnels);
    else
      for (const t of tunnels)
        ctx.out(`${t.host} ${t.localIp} ${t.remoteIp} ${t.engine}${t.udp ? ' udp' : ''} ${t.iface}`);
    return 0;
  },
};
