/**
 * The daemon's API listeners: TLS 1.3 with a pre-shared key on TCP, plain on a unix socket
 * (mode 0600). A TCP client's PSK identity names its key among the daemon's (src/trust/keys.ts:
 * -K's, admin, and those of --keys); a unix client is admin. Each connection carries framed
 * requests; every request is checked against the schema and its method against the key's
 * rights (src/trust/rights.ts) before its handler runs, and a handler's failure is an error
 * reply, never a crash.
 *
 * Limits, because the port faces the network and the daemon is root: the number of open
 * authenticated connections is capped (the excess closed at once); connections still in their
 * TLS handshake have a budget of their own, per source address and overall, and a short wait
 * for their first bytes (src/daemon/pending.ts), so that a flood of them never locks out a
 * client that has the key; a connection that sends no request for a while is closed, frames
 * are bounded in size and depth (src/api/frame.ts), and every connection, even one still in
 * its TLS handshake, is cut when the daemon stops.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { encodeFrame, FrameReader } from '../api/frame';
import {
  MAX_REPLY,
  MAX_REQUEST,
  PROTOCOL_VERSION,
  type Method,
  type Params,
  type Progress,
  type Result,
  describeIssues,
  isMethod,
  methods,
  requestSchema,
} from '../api/protocol';
import { type DaemonAddress, formatDaemonAddress } from '../common/address';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import { PSK_CIPHERS } from '../common/key';
import type { Logger } from '../common/log';
import { RateLimitedLog } from '../common/ratelog';
import { listenFailure, listenUnixPrivately, removeStaleSocket } from './apisocket';
import { PENDING_LIMITS, PendingBudget, type PendingLimits } from './pending';
import { engineKey, serveTarget } from './peerstreams';
import { Channel, type ChannelOptions, type PeerChannel } from '../peer/channel';
import { EngineChannel, isEngineStream, takeOver } from '../peer/enginechannel';
import type { Engine } from '../proxy/engine';
import type { Key, KeyRing } from '../trust/keys';
import { type KeyRights, changes, methodRefusal } from '../trust/rights';

/**
 * A method's handler: its params, the key the request came with (its name and rights), and
 * where to send progress frames before the reply (for a request that asked for them: a pull's
 * steps, an apply's segments done of all).
 */
export type Handler<M extends Method> = (
  params: Params<M>,
  key: KeyRights,
  progress: (p: Progress) => void,
) => Promise<Result<M>>;

/**
 * The daemon's routing table: one handler per method, except attach and channel (the
 * connection is handed over: to a segment, or to a channel from a peer).
 */
export type HandlerTable = { [M in Exclude<Method, 'attach' | 'channel'>]: Handler<M> };

/**
 * Called for an attach: answer with `ready()` once the tail is connected, then bytes flow.
 * `origin`: the proxied connection's client and head, as the peer said; `key`: the peer's.
 */
export type AttachHandler = (
  id: string,
  stream: Duplex,
  ready: (err?: unknown) => void,
  origin: Params<'attach'>['origin'] | undefined,
  key: KeyRights,
) => void;

const HANDSHAKE_TIMEOUT_MS = 5000;

/** How many connections the API serves at once, and how long one may sit idle. */
export interface ApiLimits {
  /**
   * Open authenticated connections (through the TLS handshake, or on a unix socket), not
   * counting attached streams (those are the segments' to cap).
   */
  maxConnections: number;
  /** A connection with no request in flight and none arriving for this long is closed. */
  idleMs: number;
  /** Connections still in their TLS handshake (PENDING_LIMITS unless given). */
  pending?: PendingLimits;
}

/** Listens on every -H address and serves requests. */
export class ApiServer {
  private readonly servers: { address: string; server: net.Server; path?: string }[] = [];
  /** Every accepted socket, in a TLS handshake or not: all are cut at close(). */
  private readonly sockets = new Set<net.Socket>();
  /** Those still in their TLS handshake, under a budget of their own. */
  private readonly pending: PendingBudget;
  /** Those authenticated (the TLS socket over a TCP one; a unix socket as it is). */
  private readonly authed = new Set<Duplex>();
  /** Peers' channels accepted: told to go away when a successor takes over. */
  private readonly channels = new Set<PeerChannel>();
  /** The key each TLS socket presented, from its handshake (src/trust/keys.ts). */
  private readonly keyOf = new WeakMap<object, Key>();
  /** The engine, when it runs: a peer's channel may be handed to it (enginechannel.ts). */
  private engine: Engine | null = null;
  /** How many of them are attached streams (outside the cap). */
  private attached = 0;
  private closing = false;
  private readonly warn: RateLimitedLog;

  constructor(
    private readonly handlers: HandlerTable,
    private readonly onAttach: AttachHandler,
    private readonly keys: KeyRing,
    private readonly log: Logger,
    private readonly limits: ApiLimits,
  ) {
    this.warn = new RateLimitedLog(log);
    this.pending = new PendingBudget(limits.pending ?? PENDING_LIMITS, (socket, why) =>
      this.warn.warn(
        { from: socket.remoteAddress, why },
        'API connection refused: too many still in their TLS handshake',
      ),
    );
  }

  /** Accept peers' channels in the engine's format from now on (null: JavaScript's only). */
  useEngine(engine: Engine | null): void {
    this.engine = engine;
  }

  /**
   * A socket was accepted (before any TLS): a TCP one joins the budget of those in their
   * handshake, a unix one (the file's mode let it in) is authenticated; kept for close().
   */
  private admit(socket: net.Socket, handshake: boolean): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (handshake ? !this.pending.admit(socket) : !this.authenticated(socket)) return;
    // Requests are small frames answered at once: Nagle would hold each reply for an ACK.
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** A connection proved it may talk: count it under --max-api-connections, or close it. */
  private authenticated(socket: Duplex & { remoteAddress?: string }): boolean {
    if (this.authed.size - this.attached >= this.limits.maxConnections) {
      socket.destroy();
      this.warn.warn(
        { from: socket.remoteAddress ?? 'unix', limit: this.limits.maxConnections },
        'API connection refused: too many open (--max-api-connections)',
      );
      return false;
    }
    this.authed.add(socket);
    socket.once('close', () => this.authed.delete(socket));
    return true;
  }

  /**
   * Start listening on one address; on `fd`, a listening socket a daemon handed over at
   * takeover, when given.
   */
  async listen(addr: DaemonAddress, fd?: number): Promise<void> {
    let server: net.Server;
    if (addr.kind === 'tcp') {
      server = tls.createServer(
        {
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
          ciphers: PSK_CIPHERS,
          // A resumed session would skip the key check: no stateless tickets. OpenSSL still
          // sends a stateful TLS 1.3 ticket, but Node keeps no server-side session cache
          // (no newSession handler), so it resumes nothing (tested in test/e2e).
          secureOptions: crypto.constants.SSL_OP_NO_TICKET,
          handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
          // The identity names the key (src/trust/keys.ts), looked up in the ring as it is now
          // (SIGHUP changes it for new connections only); the handshake proves the client has it.
          pskCallback: (socket, identity) => {
            const key = this.keys.find(identity);
            if (key) this.keyOf.set(socket, key);
            return key?.psk ?? null;
          },
          // Not half-open: a client that leaves during the handshake (a port scan) is closed
          // at once, not after the handshake timeout. An attached stream, which carries a
          // proxied connection's half-close, is made half-open when it attaches.
          allowHalfOpen: false,
        } as tls.TlsOptions & { allowHalfOpen: boolean },
        (socket) => {
          this.pending.done(socket);
          const key = this.keyOf.get(socket);
          if (!key) socket.destroy();
          else if (this.authenticated(socket))
            this.serve(socket, `${socket.remoteAddress}:${socket.remotePort}`, key);
        },
      );
      server.on('tlsClientError', (err, socket) => {
        socket.destroy();
        // A hang-up before the handshake ends is a port scan, or a socket we cut (at the cap,
        // at stop): not news. A failed handshake is (a wrong key), once per burst.
        if (errnoCode(err) === 'ECONNRESET') {
          this.log.debug({ from: socket.remoteAddress }, 'client left during the TLS handshake');
          return;
        }
        this.warn.warn(
          { from: socket.remoteAddress, err: errorMessage(err) },
          'client refused: bad key or not TLS',
        );
      });
    } else {
      if (fd === undefined) await removeStaleSocket(addr.path);
      // Whoever may connect to the socket (mode 0600: root) may read -K's key file: admin.
      server = net.createServer({ allowHalfOpen: true }, (socket) =>
        this.serve(socket, 'unix', this.keys.adminKey),
      );
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new WormholeError(
            err.code === 'EADDRINUSE' ? 'ADDR_IN_USE' : 'LISTEN_FAILED',
            `cannot listen on ${formatDaemonAddress(addr)}: ${listenFailure(err)}`,
          ),
        ),
      );
      if (fd !== undefined) server.listen({ fd }, resolve);
      else if (addr.kind === 'tcp') server.listen({ host: addr.host, port: addr.port }, resolve);
      else {
        try {
          server.listen({ fd: listenUnixPrivately(addr.path) }, resolve);
        } catch (err) {
          reject(err);
        }
      }
    });
    server.on('error', (err) => this.warn.warn({ err: errorMessage(err) }, 'API listener error'));
    // Registered after the TLS server's own listener, so a refused socket is cut before any
    // handshake byte is read.
    server.on('connection', (socket: net.Socket) => this.admit(socket, addr.kind === 'tcp'));
    this.servers.push({
      address: formatDaemonAddress(addr),
      server,
      path: addr.kind === 'unix' ? addr.path : undefined,
    });
    this.log.info({ address: formatDaemonAddress(addr), handedOver: fd !== undefined }, 'listening');
  }

  /** Serve requests on an authenticated connection, each with the rights of its `key`. */
  private serve(stream: Duplex, remote: string, key: Key): void {
    stream.on('error', () => undefined);
    // Idle: no request in flight and none arriving for limits.idleMs. A request that takes
    // long (a pull) is not idleness; an attached stream is not a request channel any more.
    let inFlight = 0;
    let idle: NodeJS.Timeout | undefined;
    let detached = false;
    const arm = (): void => {
      clearTimeout(idle);
      if (inFlight > 0 || detached || stream.destroyed) return;
      idle = setTimeout(() => {
        this.warn.warn({ from: remote, seconds: this.limits.idleMs / 1000 }, 'API connection idle, closed');
        stream.destroy();
      }, this.limits.idleMs);
    };
    stream.once('close', () => clearTimeout(idle));
    arm();
    const send = (value: unknown): void => {
      if (!stream.destroyed && stream.writable) stream.write(encodeFrame(value));
    };
    // A result that cannot be encoded (over the frame limit: `list` of thousands of
    // segments) is an error reply: thrown here, it would leave the client waiting.
    const reply = (id: number, method: string, result: unknown): void => {
      let frame: Buffer;
      try {
        frame = encodeFrame({ v: PROTOCOL_VERSION, id, ok: true, result }, `the ${method} reply`, MAX_REPLY);
      } catch (err) {
        fail(id, replyFailure(err));
        return;
      }
      if (!stream.destroyed && stream.writable) stream.write(frame);
    };
    const fail = (id: number, err: unknown): void => {
      // a key's refusal is news to whoever reads the log: who tried what
      if (err instanceof WormholeError && err.code === 'FORBIDDEN')
        this.warn.warn({ from: remote, key: key.name, why: err.message }, 'request refused: FORBIDDEN');
      const e =
        err instanceof WormholeError
          ? err
          : new WormholeError('INTERNAL', `internal error: ${errorMessage(err)}`);
      if (!(err instanceof WormholeError))
        this.log.error({ err: err instanceof Error ? err.stack : err }, 'handler failed');
      send({ v: PROTOCOL_VERSION, id, ok: false, error: e.toJSON() });
      // A refused frame starts the idle clock again (a handler's refusal re-arms when it settles).
      arm();
    };
    // A request channel ends when the client's side does (the unix listener allows half-open
    // connections only for the sake of attached streams).
    const endWithClient = (): void => {
      stream.end();
    };
    stream.on('end', endWithClient);
    // No longer a request channel (an attach, a peer's channel): a socket of ours leaves the
    // cap; a stream on a peer's channel never was in it, and must not lower it.
    const handOver = (): void => {
      reader.detach();
      detached = true;
      stream.off('end', endWithClient);
      if (!this.sockets.has(stream as net.Socket)) return;
      this.attached++;
      stream.once('close', () => this.attached--);
    };
    const reader = new FrameReader(
      stream,
      (frame) => {
        clearTimeout(idle);
        const env = requestSchema.safeParse(frame);
        if (!env.success) {
          fail(0, new WormholeError('BAD_REQUEST', `malformed request: ${describeIssues(env.error)}`));
          return;
        }
        const req = env.data;
        if (req.v !== PROTOCOL_VERSION) {
          fail(
            req.id,
            new WormholeError(
              'VERSION_MISMATCH',
              `protocol version ${req.v} is not ${PROTOCOL_VERSION}: use the same wormhole version on both ends`,
            ),
          );
          return;
        }
        if (!isMethod(req.method)) {
          fail(req.id, new WormholeError('UNKNOWN_METHOD', `unknown method "${req.method}"`));
          return;
        }
        const params = methods[req.method].params.safeParse(req.params);
        if (!params.success) {
          fail(
            req.id,
            new WormholeError('BAD_REQUEST', `bad ${req.method} request: ${describeIssues(params.error)}`),
          );
          return;
        }
        // The key's rights, checked here for every method (a create's plan, in its handler).
        const refusal = methodRefusal(key, req.method);
        if (refusal) {
          fail(req.id, new WormholeError('FORBIDDEN', refusal));
          return;
        }
        if (changes(req.method))
          this.log.info(
            {
              from: remote,
              key: key.name,
              method: req.method,
              params: JSON.stringify(params.data).slice(0, 300),
            },
            'request',
          );
        if (req.method === 'channel') {
          // A peer's channel: each stream on it is served as a connection of its own.
          handOver();
          const opts: ChannelOptions<Duplex> = {
            dialer: false,
            peer: remote,
            log: this.log,
            onStream: (s: Duplex) =>
              this.serve(s, `${remote} stream ${(s as { id?: number }).id ?? ''}`.trim(), key),
            onTarget: (s: Duplex, target: Buffer) => serveTarget(s, target, key, this.onAttach, this.warn),
            onClose: () => this.channels.delete(channel),
            // (a key that may not attach: every stream naming a segment comes to JavaScript)
            peerKey: methodRefusal(key, 'attach') === undefined ? engineKey(key) : null,
          };
          // The engine's format when both sides run the engine: Node reads no more of the
          // connection from here (takeOver) and the engine takes it at once, but sends nothing
          // before the dialer's first record, which comes only once the dialer has read this
          // answer (written by Node's TLS, below).
          const taken =
            this.engine && (params.data as Params<'channel'>).engine
              ? takeOver(stream as tls.TLSSocket)
              : undefined;
          const channel: PeerChannel =
            taken && this.engine
              ? new EngineChannel(this.engine, stream as tls.TLSSocket, taken, opts)
              : new Channel(stream, opts);
          // (dial: the engine dials the segments streams name, native/streamdial.c)
          const dial = taken && (params.data as Params<'channel'>).dial ? { dial: true } : {};
          reply(req.id, 'channel', taken ? { engine: true, ...dial } : {});
          this.channels.add(channel);
          if (this.closing) channel.goAway();
          return;
        }
        if (req.method === 'attach') {
          // From here on the stream belongs to the segment (and to its --max-connections).
          handOver();
          (stream as net.Socket).allowHalfOpen = true;
          const { id, origin } = params.data as Params<'attach'>;
          this.onAttach(
            id,
            stream,
            (err) => {
              if (err) {
                fail(req.id, err);
                // (on an engine channel the dialer drops the reply unread: a reset says no)
                if (isEngineStream(stream)) stream.destroy();
                else stream.end();
              } else reply(req.id, 'attach', {});
            },
            origin,
            key,
          );
          return;
        }
        const handler = this.handlers[req.method] as Handler<Method>;
        inFlight++;
        handler(params.data as Params<Method>, key, (progress) =>
          send({ v: PROTOCOL_VERSION, id: req.id, progress }),
        )
          .then(
            (result) => reply(req.id, req.method, result),
            (err: unknown) => fail(req.id, err),
          )
          .finally(() => {
            inFlight--;
            arm();
          });
      },
      (err) => {
        this.log.warn({ from: remote, err: err.message }, 'bad frame, closing connection');
        fail(0, err);
        stream.end();
      },
      MAX_REQUEST, // (an apply of 10,000 plans is over MAX_FRAME)
    );
  }

  /** The listening sockets, by address, for a daemon taking over (this one keeps them). */
  listeningFds(): { address: string; fd: number }[] {
    // (libuv holds each listener's fd on its handle; Node has no public way to read it)
    return this.servers.map(({ address, server }) => ({
      address,
      fd: (server as unknown as { _handle: { fd: number } })._handle.fd,
    }));
  }

  /**
   * Stop accepting; open API connections and attached streams go on (a daemon that handed
   * over drains them). The unix paths stay: the successor serves there.
   */
  stopAccepting(): void {
    this.closing = true;
    for (const { server } of this.servers) server.close();
    // peers open their next streams on a channel to the successor
    for (const channel of this.channels) channel.goAway();
  }

  /**
   * Stop listening and drop every API connection at once, those still in a TLS handshake
   * included (server.close() waits for every open socket, so each is cut first); remove the
   * unix socket files.
   */
  async close(): Promise<void> {
    this.closing = true;
    const closed = Promise.all(
      this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    for (const s of this.sockets) s.destroy();
    await closed;
    for (const { path } of this.servers) if (path) fs.rmSync(path, { force: true });
  }
}

/** A result too large for a frame, said as such (any other encoding failure is internal). */
function replyFailure(err: unknown): unknown {
  if (!(err instanceof WormholeError) || err.code !== 'FRAME_TOO_LARGE') return err;
  return new WormholeError(
    'REPLY_TOO_LARGE',
    `${err.message}: too much for one reply (for list: too many segments)`,
  );
}
