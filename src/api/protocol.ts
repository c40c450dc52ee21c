/**
 * The wire: one versioned request/response schema shared by the CLI, the daemon and peers.
 *
 * A connection carries frames (a 4-byte big-endian length, then that many bytes of UTF-8
 * JSON). The client sends a Request, the daemon answers with a Response of the same `id`.
 * An `attach` request, once answered, turns the connection into a raw byte stream.
 */
import { z } from 'zod';
import { type ErrorCode, isErrorCode } from '../common/codes';
import { ID_PATTERN, VERBS } from './grammar';

/** Bump on any incompatible change; a mismatch is refused with VERSION_MISMATCH. */
export const PROTOCOL_VERSION = 2;

/** Largest frame between daemons (a peer's reply, an engine channel's first frame). */
export const MAX_FRAME = 1024 * 1024;
/**
 * Largest request frame a daemon accepts: a key holder's input, held whole before it is read.
 * `apply` of 10,000 segments is over 1 MiB (about 120 bytes a plan); 4 MiB leaves plans of
 * 400 bytes room, and bounds what --max-api-connections clients may make the daemon hold.
 */
export const MAX_REQUEST = 4 * 1024 * 1024;
/**
 * Largest reply frame the CLI accepts from its daemon: `list` of 10,000 segments is about
 * 7 MiB. Only the direction a client trusts gets it; a daemon reads requests at MAX_REQUEST.
 */
export const MAX_REPLY = 64 * 1024 * 1024;

/** Rows of `list` in one reply, unless the request asks for fewer (about 350 KiB of JSON). */
export const LIST_PAGE = 500;
/** The most a `list` request may ask for at once. */
export const LIST_PAGE_MAX = 2000;

const action = z
  .object({
    verb: z.enum(VERBS),
    args: z.array(z.string().max(4096)).max(256),
  })
  .strict();

const protocol = z.enum(['tcp', 'udp', 'unix']);

/** One end of a proxied connection: an IP address and port, or a unix socket's path. */
const sockAddr = z.union([
  z.object({ host: z.string().max(64), port: z.number().int().min(0).max(65535) }).strict(),
  z.object({ path: z.string().max(108) }).strict(),
]);

/** A fully resolved endpoint, as the daemon reports it (unix: `path`, host '' and port 0). */
export const endpointSchema = z.object({
  proto: protocol,
  ns: z.string().nullable(),
  host: z.string(),
  port: z.number().int(),
  /** A port range's last port (`port` is its first). */
  portEnd: z.number().int().optional(),
  path: z.string().optional(),
  container: z.string().optional(),
  peer: z.string().optional(),
});
export type EndpointInfo = z.infer<typeof endpointSchema>;

/** One segment in `list`. */
export const segmentInfoSchema = z.object({
  id: z.string(),
  url: z.string(),
  head: endpointSchema,
  tail: endpointSchema.nullable(),
  state: z.enum([
    'ready',
    'not-ready',
    'waiting',
    'triggering',
    'idle',
    'container-down',
    'closed',
    'failed',
  ]),
  /** Why a segment is `failed` (it could not be built again when the daemon started). */
  error: z.string().optional(),
  parent: z.string().nullable(),
  /** A peer's child (made for a peer by peer-create), not a remote segment (name kept for scripts). */
  remote: z.boolean(),
  /** `transparent`: the tail sees the client's own address and port (absent: no). */
  transparent: z.boolean().optional(),
  /**
   * `ready MODE`: whether the tail is ready (state `not-ready` until it is): waiting, with why
   * (`health: starting`, `banner: no bytes yet`, `exec: exit 1`), or failed (it never can be).
   */
  ready: z
    .object({
      mode: z.enum(['health', 'banner', 'exec']),
      state: z.enum(['ready', 'waiting', 'failed']),
      why: z.string().optional(),
    })
    .optional(),
  /** The name of the key that made it (its top segment): admin is -K's (optional: older daemons). */
  owner: z.string().optional(),
  connections: z.number().int(),
  /**
   * The segment's counters, kept where the bytes move (the engine, or the JavaScript mover;
   * for UDP the relay): connections (UDP: sessions, one per client address) open and in all,
   * refused (at the cap, or from outside `allow`), bytes each way (up: client to tail), dial failures, and when a byte
   * last moved (ms since the epoch; null: never). UDP adds datagrams each way, those dropped
   * for want of queue room, and the bytes of datagrams held now (waiting for a session's
   * upstream, or kept to be sent again).
   */
  traffic: z
    .object({
      open: z.number().int(),
      total: z.number().int(),
      refused: z.number().int(),
      bytesUp: z.number(),
      bytesDown: z.number(),
      dialFailures: z.number().int(),
      lastActive: z.number().nullable(),
      datagramsUp: z.number().int().optional(),
      datagramsDown: z.number().int().optional(),
      datagramsDropped: z.number().int().optional(),
      queuedBytes: z.number().int().optional(),
    })
    .optional(),
  /**
   * A segment with a trigger: armed (not run, or armed again by idle), running, ran, failed;
   * its runs and the last one; with `idle`, its idle time and when it last idled.
   */
  trigger: z
    .object({
      state: z.enum(['armed', 'running', 'ran', 'failed']),
      runs: z.number().int(),
      failures: z.number().int(),
      /** How long the last run took (ms), failed or not. */
      lastMs: z.number().optional(),
      /** When the last run ended (ms since the epoch). */
      lastAt: z.number().optional(),
      lastError: z.string().optional(),
      /** `idle DURATION`, in ms: after that long unused, what the trigger made is released. */
      idleMs: z.number().optional(),
      /** When it last did (state idle until the next run), ms since the epoch. */
      idledAt: z.number().optional(),
      /** `idle-action pause`: its containers are paused, not stopped, when it idles. */
      idleAction: z.enum(['stop', 'pause']).optional(),
    })
    .optional(),
  /**
   * Each tail and its health: up (the last dial to it succeeded), down (the last failed, with
   * why when known), unknown (never dialed yet).
   */
  tails: z
    .array(
      z.object({
        url: z.string(),
        health: z.enum(['up', 'down', 'unknown']),
        lastError: z.string().optional(),
        /** With several tails: this one's connections open and in all, and failed dials. */
        open: z.number().int().optional(),
        total: z.number().int().optional(),
        dialFailures: z.number().int().optional(),
      }),
    )
    .optional(),
  /** Connections (TCP) and new sessions (UDP) refused at the daemon's per-segment caps or by `allow`. */
  refused: z.number().int().optional(),
  containers: z.array(z.string()),
  /** Made from a `wormhole.NAME` label of this container: it goes with the container. */
  label: z.string().optional(),
  /** The ends whose container is not running (state container-down), and that container. */
  down: z.array(z.object({ end: z.enum(['head', 'tail']), container: z.string() })).optional(),
});
export type SegmentInfo = z.infer<typeof segmentInfoSchema>;

/** One tunnel in `tunnel-list`. */
export const tunnelInfoSchema = z.object({
  host: z.string(),
  localIp: z.string(),
  remoteIp: z.string(),
  engine: z.string(),
  udp: z.boolean(),
  iface: z.string(),
});
export type TunnelInfo = z.infer<typeof tunnelInfoSchema>;

/** One channel to a peer in `peers`. */
export const peerInfoSchema = z.object({
  /** The peer as segments name it (host[:port]). */
  host: z.string(),
  state: z.enum(['up', 'connecting', 'down']),
  /** The last keepalive's round trip (null: none answered yet). */
  rttMs: z.number().nullable(),
  /** Streams open on the channel now (proxied connections, UDP sessions, calls). */
  streams: z.number().int(),
  /** Bytes sent to and received from the peer, over every channel to it since the start. */
  bytesUp: z.number(),
  bytesDown: z.number(),
  /** When the state last changed (ms since the epoch). */
  since: z.number(),
  /** Why the last channel or dial failed, while not up. */
  lastError: z.string().optional(),
});
export type PeerInfo = z.infer<typeof peerInfoSchema>;

const hostParam = z.string().min(1).max(300);

/** A segment id as a user may name one (it is also its record's file name). */
const segmentId = z.string().regex(ID_PATTERN);

/** Each method: its params and its result. */
export const methods = {
  ping: {
    params: z.object({ host: hostParam.optional() }).strict(),
    result: z.object({ peerMs: z.number().optional() }),
  },
  create: {
    /** `progress`: send progress frames (an image's pull) before the reply. */
    params: z.object({ actions: z.array(action).min(1).max(256), progress: z.boolean().optional() }).strict(),
    result: z.object({ segments: z.array(z.object({ id: z.string(), url: z.string() })) }),
  },
  delete: {
    params: z.object({ id: z.string().min(1).max(64) }).strict(),
    result: z.object({ deleted: z.array(z.string()) }),
  },
  /**
   * A page of the segments: `limit` (default LIST_PAGE) from row `from` (default 0), and the
   * row the next page starts at while there are more. Never all of them in one reply: 10,000
   * segments are about 7 MiB. Rows made or deleted while the pages are read shift the rest.
   */
  list: {
    params: z
      .object({
        from: z.number().int().min(0).optional(),
        limit: z.number().int().min(1).max(LIST_PAGE_MAX).optional(),
      })
      .strict(),
    result: z.object({ segments: z.array(segmentInfoSchema), next: z.number().int().optional() }),
  },
  /** Peer to peer: create a child segment here, on behalf of a peer's segment. */
  'peer-create': {
    params: z
      .object({
        actions: z.array(action).max(256),
        head: z
          .object({
            // (a stream head asked of a peer is tcp; the child's own actions may make it unix)
            proto: z.enum(['tcp', 'udp']),
            host: z.string().max(255).optional(),
            port: z.number().int().min(0).max(65535),
          })
          .strict(),
        /**
         * Who asks (the parent daemon and segment), the same when it asks again after a
         * restart: the peer then answers with the child it has instead of making a second.
         */
        key: z.string().max(300).optional(),
      })
      .strict(),
    result: z.object({
      id: z.string(),
      url: z.string(),
      proto: protocol,
      host: z.string(),
      port: z.number(),
    }),
  },
  /**
   * Peer to peer: after the reply, this connection is a byte stream to the segment's tail
   * (for a UDP segment: datagrams, each after its 2-byte length). `origin`: the proxied
   * connection's client and head addresses, for a tail that wants a PROXY protocol header.
   */
  attach: {
    params: z
      .object({
        id: z.string().min(1).max(64),
        origin: z.object({ src: sockAddr, dst: sockAddr }).optional(),
      })
      .strict(),
    result: z.object({}),
  },
  /**
   * Peer to peer: after the reply, this connection is the channel between the two daemons,
   * in the frames of src/peer/frame.ts (each stream on it is served as a connection is).
   */
  channel: {
    /**
     * engine: the dialer can speak the engine's sealed records (src/peer/enginechannel.ts);
     * the reply's engine says whether both will (else the frames go in TLS, as before).
     * dial: the dialer may name a segment in a stream's OPEN; the reply's dial says the
     * accepting engine dials such a segment itself (native/streamdial.c).
     */
    params: z.object({ engine: z.boolean().optional(), dial: z.boolean().optional() }).strict(),
    result: z.object({ engine: z.boolean().optional(), dial: z.boolean().optional() }),
  },
  /** The channels to peers, one row each (`wormhole peers`). */
  peers: {
    params: z.object({}).strict(),
    result: z.object({ peers: z.array(peerInfoSchema) }),
  },
  /**
   * Make the daemon's top segments match a declared set (`wormhole apply`): each id's plan
   * created, built again when it changed, left alone when it is the same; with `prune`, the
   * segments an earlier apply made that the set no longer names are deleted. Every plan is
   * checked before anything changes; a failure undoes what the call did. `dryRun` only says.
   */
  apply: {
    params: z
      .object({
        segments: z
          .array(z.object({ id: segmentId, actions: z.array(action).min(1).max(256) }).strict())
          .max(10_000),
        prune: z.boolean(),
        dryRun: z.boolean(),
        /** As create's: progress frames before the reply (an image's pull; steps done of all). */
        progress: z.boolean().optional(),
      })
      .strict(),
    result: z.object({
      changes: z.array(
        z.object({ id: z.string(), change: z.enum(['created', 'changed', 'deleted', 'unchanged']) }),
      ),
    }),
  },
  /** Every top segment made here by `create` or `apply`, with its actions (`wormhole export`). */
  export: {
    params: z.object({}).strict(),
    result: z.object({
      segments: z.array(z.object({ id: z.string(), actions: z.array(action), applied: z.boolean() })),
    }),
  },
  'tunnel-create': {
    params: z.object({ host: hostParam, udp: z.boolean() }).strict(),
    result: tunnelInfoSchema,
  },
  'tunnel-delete': {
    params: z.object({ host: hostParam }).strict(),
    result: z.object({ deleted: z.boolean() }),
  },
  'tunnel-list': {
    params: z.object({}).strict(),
    result: z.object({ tunnels: z.array(tunnelInfoSchema) }),
  },
  /**
   * The web view (`wormhole ui`): where the daemon serves it (null: no --ui) and the token of
   * the key that asks (each key its own; the key itself never goes to a browser).
   */
  ui: {
    params: z.object({}).strict(),
    result: z.object({ address: z.string().nullable(), token: z.string() }),
  },
  /** Peer to peer tunnel negotiation (see src/tunnel). */
  'peer-tunnel': {
    params: z.object({ op: z.enum(['create', 'delete']), data: z.record(z.unknown()) }).strict(),
    result: z.record(z.unknown()),
  },
} as const;

export type Method = keyof typeof methods;
export type Params<M extends Method> = z.infer<(typeof methods)[M]['params']>;
export type Result<M extends Method> = z.infer<(typeof methods)[M]['result']>;

/** Is this string a method name? */
export function isMethod(name: string): name is Method {
  return Object.prototype.hasOwnProperty.call(methods, name);
}

/** A request frame's envelope; params are checked per method. */
export const requestSchema = z
  .object({
    v: z.number().int(),
    id: z.number().int().nonnegative(),
    method: z.string().max(64),
    params: z.unknown(),
  })
  .strict();
export type Request = z.infer<typeof requestSchema>;

/**
 * An error reply's `{code, message}`, its code one of ERROR_CODES. A code this side does not
 * know (a daemon of another version) is not a malformed reply: it arrives as UNKNOWN_CODE,
 * the daemon's message kept and its code named after it (if it looks like one), so that the
 * user still reads what went wrong.
 */
export const wireErrorSchema = z
  .object({ code: z.string(), message: z.string() })
  .transform(({ code, message }): { code: ErrorCode; message: string } => {
    if (isErrorCode(code)) return { code, message };
    const named = /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? `code ${code}` : 'a code';
    return {
      code: 'UNKNOWN_CODE',
      message: `${message} (${named} unknown to this wormhole: is the daemon another version?)`,
    };
  });

/** A response frame. */
export const responseSchema = z.union([
  z.object({ v: z.number().int(), id: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.object({
    v: z.number().int(),
    id: z.number().int(),
    ok: z.literal(false),
    error: wireErrorSchema,
  }),
]);
export type Response = z.infer<typeof responseSchema>;

/** One step of an image's pull (src/docker/progress.ts), as a progress frame carries it. */
export const pullProgressSchema = z.object({
  image: z.string().max(1024),
  layer: z.string().max(256).optional(),
  status: z.string().max(1024),
  current: z.number().nonnegative().optional(),
  total: z.number().nonnegative().optional(),
});
export type PullProgress = z.infer<typeof pullProgressSchema>;

/** A long call's steps (apply's segments): so many done, of `total`. */
export const stepsProgressSchema = z.object({ done: z.number().int(), total: z.number().int() }).strict();
export type StepsProgress = z.infer<typeof stepsProgressSchema>;

/** What a progress frame tells: a pull's step, or steps done of all. */
export type Progress = PullProgress | StepsProgress;

/**
 * A progress frame: sent before the reply to a request that asked for it (`progress: true`),
 * with the request's id and no `ok`; any number of them, the reply last.
 */
export const progressFrameSchema = z.object({
  v: z.number().int(),
  id: z.number().int(),
  progress: z.union([stepsProgressSchema, pullProgressSchema]),
});

/** Turn a zod failure into one line a user can act on. */
export function describeIssues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : 'request'}: ${i.message}`)
    .join('; ');
}
