/**
 * The only way to talk to a daemon: the CLI uses it, and so does a daemon talking to a peer.
 * TCP connections are TLS 1.3 with the pre-shared key, presenting the key's identity (a hash
 * of it: the daemon finds its rights by it); unix sockets are plain (the socket is mode 0600).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { type DaemonAddress, formatDaemonAddress } from '../common/address';
import { withDeadline } from '../common/deadline';
import { WormholeError, errnoCode, errorMessage } from '../common/errors';
import { PSK_CIPHERS, PSK_IDENTITY, pskIdentity } from '../common/key';
import { encodeFrame, FrameReader } from '../api/frame';
import {
  MAX_REPLY,
  MAX_REQUEST,
  PROTOCOL_VERSION,
  type Method,
  type Params,
  type Progress,
  type Result,
  type SegmentInfo,
  describeIssues,
  methods,
  progressFrameSchema,
  responseSchema,
} from '../api/protocol';

/** How long to wait for a connection (TCP + TLS handshake). */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Open a raw transport to a daemon: TLS-PSK for TCP, plain for unix sockets. A daemon of
 * before --keys knows only the identity `wormhole`: refused with the key's own identity, the
 * client tries once more with that one, so that a new CLI, or a new daemon calling a peer
 * not upgraded yet, still gets in with the shared key (nothing else is tried).
 */
export async function openTransport(addr: DaemonAddress, key: Buffer | null): Promise<Duplex> {
  if (addr.kind === 'unix' || !key) return open(addr, key, '');
  try {
    return await open(addr, key, pskIdentity(key));
  } catch (err) {
    if (!(err instanceof WormholeError) || err.code !== 'AUTH_FAILED') throw err;
    return open(addr, key, PSK_IDENTITY);
  }
}

/**
 * The TLS context every TCP connection to a daemon shares: made once per process. Without it
 * each tls.connect builds an OpenSSL context of its own (0.2 to 0.5 ms of the first call to a
 * peer, measured on the bench's hosts); the key is no part of it (pskCallback is per socket).
 */
let sharedContext: tls.SecureContext | undefined;
function clientContext(): tls.SecureContext {
  sharedContext ??= tls.createSecureContext({
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: PSK_CIPHERS,
  });
  return sharedContext;
}

/** One try of openTransport, presenting `identity` (TCP). */
function open(addr: DaemonAddress, key: Buffer | null, identity: string): Promise<Duplex> {
  const where = formatDaemonAddress(addr);
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    const readyEvent = addr.kind === 'tcp' ? 'secureConnect' : 'connect';
    if (addr.kind === 'unix') {
      socket = net.connect({ path: addr.path });
    } else {
      if (!key) {
        reject(new WormholeError('KEY_MISSING', 'a key is needed for a TCP connection (-K FILE)'));
        return;
      }
      const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
        host: addr.host,
        port: addr.port,
        // (TLS 1.3 only, the PSK suites: the shared context's settings)
        secureContext: clientContext(),
        // the key's own identity: a daemon with --keys knows by it which key connected
        pskCallback: () => ({ psk: key, identity }),
        checkServerIdentity: () => undefined,
        // A peer stream carries one proxied connection: its half-close must pass through.
        allowHalfOpen: true,
      };
      socket = tls.connect(options);
      // Each request is one small frame answered at once: Nagle would hold the next write
      // (the TLS handshake's last flight, a request) for the peer's delayed ACK, ~40 ms.
      socket.setNoDelay(true);
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new WormholeError(
          'TIMEOUT',
          `no answer from the daemon at ${where} within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(transportError(err, where, addr.kind === 'tcp'));
    };
    socket.once('error', onError);
    socket.once('close', () => onError(new Error('closed during handshake')));
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.removeAllListeners('close');
      resolve(socket);
    });
  });
}

/** A connect-time failure, said so that the user knows what to do. */
function transportError(err: Error, where: string, tlsUsed: boolean): WormholeError {
  const code = errnoCode(err);
  if (
    code === 'ECONNREFUSED' ||
    code === 'ENOENT' ||
    code === 'ENOTFOUND' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'EAI_AGAIN'
  ) {
    return new WormholeError(
      'DAEMON_UNREACHABLE',
      `cannot reach the daemon at ${where} (${code}): start it with 'sudo bin/wormholed' or check -H`,
    );
  }
  if (tlsUsed) {
    return new WormholeError(
      'AUTH_FAILED',
      `the daemon at ${where} refused the connection: its key differs from ours and its --keys file does not list ours (check -K), or it is not a wormhole daemon`,
    );
  }
  return new WormholeError(
    'DAEMON_UNREACHABLE',
    `cannot talk to the daemon at ${where}: ${errorMessage(err)}`,
  );
}

/** One connection to a daemon; requests are answered in order. */
export class Connection {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; progress?: (p: Progress) => void }
  >();
  private readonly reader: FrameReader;
  private failure: WormholeError | undefined;

  /** `replyLimit`: the largest reply taken (a daemon talking to a peer keeps MAX_FRAME). */
  constructor(
    readonly stream: Duplex,
    private readonly where: string,
    replyLimit = MAX_REPLY,
  ) {
    this.reader = new FrameReader(
      stream,
      (frame) => this.onFrame(frame),
      (err) => this.fail(err),
      replyLimit, // (the daemon's replies: a list of thousands of segments is several MiB)
    );
    stream.on('error', (err) =>
      this.fail(new WormholeError('CONNECTION_LOST', `connection to ${where} failed: ${err.message}`)),
    );
    stream.on('close', this.onClosed);
    // A TCP stream is half-open (allowHalfOpen, for the peer streams): a daemon that dies
    // sends its FIN and no 'close' follows, and with nothing left to read Node would end the
    // CLI with 0 and nothing printed. The end of the daemon's side is the end of its replies.
    stream.on('end', this.onClosed);
  }

  private readonly onClosed = (): void =>
    this.fail(new WormholeError('CONNECTION_LOST', `the daemon at ${this.where} closed the connection`));

  private onFrame(frame: unknown): void {
    // a progress frame (asked for with `progress: true`) goes before its request's reply;
    // one that does not fit the schema is not shown, and the call goes on
    if (frame && typeof frame === 'object' && 'progress' in frame && !('ok' in frame)) {
      const step = progressFrameSchema.safeParse(frame);
      if (step.success) this.pending.get(step.data.id)?.progress?.(step.data.progress);
      return;
    }
    const parsed = responseSchema.safeParse(frame);
    if (!parsed.success) {
      this.fail(new WormholeError('BAD_RESPONSE', `the daemon at ${this.where} sent a malformed reply`));
      return;
    }
    const res = parsed.data;
    const waiter = this.pending.get(res.id);
    if (!waiter) return;
    this.pending.delete(res.id);
    if (res.ok) waiter.resolve(res.result);
    else waiter.reject(new WormholeError(res.error.code, res.error.message));
  }

  private fail(err: WormholeError): void {
    if (!this.failure) this.failure = err;
    for (const w of this.pending.values()) w.reject(err);
    this.pending.clear();
  }

  /**
   * Send a request and wait for its reply; the reply is checked against the schema. With
   * `timeoutMs`, a reply that does not come in time is a TIMEOUT error naming the method.
   * `progress` hears the progress frames that come before the reply (a request that asks for
   * them: create's and apply's `progress: true`).
   */
  async call<M extends Method>(
    method: M,
    params: Params<M>,
    timeoutMs?: number,
    progress?: (p: Progress) => void,
  ): Promise<Result<M>> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    let reply = new Promise<unknown>((resolve, reject) =>
      this.pending.set(id, { resolve, reject, progress }),
    );
    if (timeoutMs !== undefined) {
      reply = withDeadline(reply, timeoutMs, () => {
        this.pending.delete(id);
        return new WormholeError(
          'NO_REPLY',
          `the daemon at ${this.where} did not answer ${method} within ${timeoutMs / 1000} s: its log says why`,
        );
      });
    }
    this.stream.write(encodeFrame({ v: PROTOCOL_VERSION, id, method, params }, 'the request', MAX_REQUEST));
    const result = await reply;
    const checked = methods[method].result.safeParse(result);
    if (!checked.success) {
      throw new WormholeError(
        'BAD_RESPONSE',
        `the daemon at ${this.where} sent a malformed ${method} reply: ${describeIssues(checked.error)}`,
      );
    }
    return checked.data as Result<M>;
  }

  /**
   * Ask the daemon to connect this stream to a segment's tail; once it says yes, the stream
   * carries the segment's bytes both ways and is no longer a request channel.
   */
  async attach(id: string, origin?: Params<'attach'>['origin']): Promise<Duplex> {
    await this.call('attach', origin ? { id, origin } : { id });
    return this.handOver();
  }

  /**
   * Ask the daemon (a peer) to make this connection a channel between the two daemons
   * (src/peer): once it says yes, the connection carries the channel's frames.
   */
  async channel(): Promise<Duplex> {
    return (await this.channelWith(false)).stream;
  }

  /**
   * The same, offering the engine's format (`engine`): the reply says whether the peer took
   * it, in which case the caller hands the connection to the engine (src/peer/enginechannel.ts).
   */
  async channelWith(engine: boolean): Promise<{ stream: Duplex; engine: boolean; dial: boolean }> {
    const result = await this.call('channel', engine ? { engine, dial: true } : {});
    return { stream: this.handOver(), engine: result.engine === true, dial: result.dial === true };
  }

  /** The connection is no longer a request channel: its bytes are the caller's. */
  private handOver(): Duplex {
    this.reader.detach();
    this.stream.removeAllListeners('error');
    this.stream.removeAllListeners('close');
    this.stream.off('end', this.onClosed); // (not all: a socket has its own)
    return this.stream;
  }

  /** Close the connection. */
  close(): void {
    this.stream.end();
    this.stream.destroy();
  }
}

/** Connect to a daemon. */
export async function connect(addr: DaemonAddress, key: Buffer | null): Promise<Connection> {
  const stream = await openTransport(addr, key);
  return new Connection(stream, formatDaemonAddress(addr));
}

/** Connect, make one call, close. */
export async function callOnce<M extends Method>(
  addr: DaemonAddress,
  key: Buffer | null,
  method: M,
  params: Params<M>,
): Promise<Result<M>> {
  const conn = await connect(addr, key);
  try {
    return await conn.call(method, params);
  } finally {
    conn.close();
  }
}

/**
 * Every segment, a page (one reply) at a time, in the daemon's order: `list` never answers
 * with all of them at once (10,000 segments are about 7 MiB). Each call may take `timeoutMs`.
 */
export async function* listPages(conn: Connection, timeoutMs?: number): AsyncGenerator<SegmentInfo[]> {
  let from: number | undefined = 0;
  while (from !== undefined) {
    const page: Result<'list'> = await conn.call('list', { from }, timeoutMs);
    yield page.segments;
    from = page.next;
  }
}

/** Every segment, the pages of listPages put together. */
export async function listAll(conn: Connection, timeoutMs?: number): Promise<SegmentInfo[]> {
  const all: SegmentInfo[] = [];
  for await (const page of listPages(conn, timeoutMs)) all.push(...page);
  return all;
}
