/**
 * The method -> handler table: what each request does. Input has been checked against the
 * schema, and the method against the key's rights (src/daemon/server.ts), before a handler
 * runs; a create's plan is checked here, against the same key, before anything is made.
 */
import { LABEL_PREFIX, type LabelSegments } from '../segment/labels';
import { parsePlan } from '../api/grammar';
import type { Params, SegmentInfo } from '../api/protocol';
import { WormholeError } from '../common/errors';
import { parseRunArgs } from '../docker/args';
import { withPullProgress } from '../docker/progress';
import type { SegmentManager } from '../segment/manager';
import type { Peers } from '../peer';
import { checkPeer, checkPlan } from '../trust/plan';
import { type KeyRights, mayManage } from '../trust/rights';
import type { AttachHandler, HandlerTable } from './server';
import type { TunnelService } from '../tunnel';

/** Everything the handlers reach. */
export interface Services {
  manager: SegmentManager;
  peers: Peers;
  tunnels: TunnelService;
  /** Segments from containers' labels, once followed (after the records are built again). */
  labels?: LabelSegments;
  /** The web view's address (null: no --ui) and the token of a key, by its name. */
  ui: { address: string | null; token(keyName: string): string };
}

/** Every segment as `list` shows it: the manager's, and the labels' that could not be made. */
export function segmentInfos(services: Services): SegmentInfo[] {
  return [...services.manager.list(), ...(services.labels?.failedInfos() ?? [])];
}

/** Refuse deleting (or attaching to) a segment another key made (its owner, and admin, may). */
function checkOwner(manager: SegmentManager, key: KeyRights, id: string, what: string): void {
  const owner = manager.ownerOf(id);
  if (owner !== undefined && !mayManage(key, owner))
    throw new WormholeError(
      'FORBIDDEN',
      `key "${key.name}" may not ${what} segment ${id}: key "${owner}" made it`,
    );
}

/**
 * A peer's attach: to a segment its key made (a child it asked for), so that a peer bounded
 * by permit-open cannot reach the tails of other keys' segments.
 */
export function makeAttach(manager: SegmentManager): AttachHandler {
  return (id, stream, ready, origin, key) => {
    try {
      checkOwner(manager, key, id, 'attach to');
    } catch (err) {
      ready(err);
      return;
    }
    manager.attach(id, stream, ready, origin);
  };
}

/** Build the routing table. */
export function makeHandlers(services: Services): HandlerTable {
  const { manager, peers, tunnels } = services;
  return {
    ping: async ({ host }) => (host ? { peerMs: await peers.ping(host) } : {}),
    create: async ({ actions, progress }, key, tell) => {
      checkPlan(key, parsePlan(actions), parseRunArgs);
      const make = () => manager.create(actions, { owner: key.name });
      // the pulls the build waits for are told to the client, when it asked
      const segments = await (progress ? withPullProgress(tell, make) : make());
      return { segments: segments.map((s) => ({ id: s.id, url: s.url })) };
    },
    delete: async ({ id }, key) => {
      const container = manager.labelOf(id);
      if (container !== undefined)
        throw new WormholeError(
          'LABEL_OWNED',
          `segment ${id} belongs to container ${container} (its label ${LABEL_PREFIX}${id.slice(container.length + 1)}): remove the label or the container`,
        );
      checkOwner(manager, key, id, 'delete');
      return { deleted: await manager.delete(id) };
    },
    list: async () => ({ segments: segmentInfos(services) }),
    apply: async (params, key, tell) => {
      // every plan within the key's rights, and nothing replaced or pruned that another key
      // made, before anything changes (a dry run says what would)
      for (const { id, actions } of params.segments)
        try {
          checkPlan(key, parsePlan(actions), parseRunArgs);
        } catch (err) {
          if (err instanceof WormholeError)
            throw new WormholeError(err.code, `segment ${id}: ${err.message}`);
          throw err;
        }
      const preview = await manager.apply({ ...params, dryRun: true }, key.name);
      for (const { id, change } of preview.changes)
        if (change === 'changed' || change === 'deleted') checkOwner(manager, key, id, 'change');
      const apply = () => manager.apply(params, key.name);
      return params.progress ? withPullProgress(tell, apply) : apply();
    },
    export: async () => ({
      segments: manager
        .localRecords()
        .sort((a, b) => a.createdAt - b.createdAt) // (the order they were made in)
        .map((r) => ({ id: r.id, actions: r.actions, applied: r.applied === true })),
    }),
    peers: async () => ({ peers: peers.list() }),
    'peer-create': async (params: Params<'peer-create'>, key) => {
      // a peer's permit-open bounds the tails of the children it asks for
      checkPlan(key, parsePlan(params.actions), parseRunArgs, params.head);
      return manager.createForPeer(params, key.name);
    },
    'tunnel-create': async ({ host, udp }, key) => {
      checkPeer(key, host);
      return tunnels.create(host, udp);
    },
    'tunnel-delete': async ({ host }) => ({ deleted: await tunnels.delete(host) }),
    'tunnel-list': async () => ({ tunnels: await tunnels.list() }),
    ui: async (_params, key) => ({ address: services.ui.address, token: services.ui.token(key.name) }),
    'peer-tunnel': ({ op, data }) => tunnels.fromPeer(op, data),
  };
}
