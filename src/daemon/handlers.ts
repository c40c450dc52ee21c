/**
 * The method -> handler table: what each request does. Input has been checked against the
 * schema before a handler runs.
 */
import type { Params } from '../api/protocol';
import type { SegmentManager } from '../segment/manager';
import type { Peers } from '../peer';
import type { HandlerTable } from './server';
import type { TunnelService } from '../tunnel';

/** Everything the handlers reach. */
export interface Services {
  manager: SegmentManager;
  peers: Peers;
  tunnels: TunnelService;
}

/** Build the routing table. */
export function makeHandlers({ manager, peers, tunnels }: Services): HandlerTable {
  return {
    ping: async ({ host }) => (host ? { peerMs: await peers.ping(host) } : {}),
    create: async ({ actions }) => {
      const segments = await manager.create(actions);
      return { segments: segments.map((s) => ({ id: s.id, url: s.url })) };
    },
    delete: async ({ id }) => ({ deleted: await manager.delete(id) }),
    list: async () => ({ segments: manager.list() }),
    apply: (params) => manager.apply(params),
    export: async () => ({
      segments: manager
        .localRecords()
        .sort((a, b) => a.createdAt - b.createdAt) // (the order they were made in)
        .map((r) => ({ id: r.id, actions: r.actions, applied: r.applied === true })),
    }),
    peers: async () => ({ peers: peers.list() }),
    'peer-create': (params: Params<'peer-create'>) => manager.createForPeer(params),
    'tunnel-create': ({ host, udp }) => tunnels.create(host, udp),
    'tunnel-delete': async ({ host }) => ({ deleted: await tunnels.delete(host) }),
    'tunnel-list': async () => ({ tunnels: await tunnels.list() }),
    'peer-tunnel': ({ op, data }) => tunnels.fromPeer(op, data),
  };
}
