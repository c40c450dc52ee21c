/**
 * A TCP head for where the engine could not start: Node accepts and pipe() moves (tcp.ts).
 * A port range costs more here than in the engine: one net.Server per port (a libuv handle
 * and its listeners each), where the engine holds a small struct per port.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { cidrMatcher } from '../api/cidr';
import { errnoCode } from '../common/errors';
import type { GroupStats } from './engine';
import type { Client, HeadOptions } from './head';
import { HeadBase } from './headbase';
import type { Origin } from './proxyproto';

/** The fallback: Node accepts and pipe() moves, as before the engine. */
export class NodeHead extends HeadBase {
  /** One per listening fd (a port range: one per port, in port order). */
  private servers: net.Server[] = [];
  /** Clients held for their first byte (`wake-on-data`). */
  private waiting = 0;

  constructor(fds: readonly number[], opts: HeadOptions) {
    super(opts, fds);
  }

  protected listenOn(fds: readonly number[]): void {
    this.servers = fds.map((fd, i) => this.serverOn(fd, i));
  }

  protected unlistenMover(): void {
    for (const server of this.servers) if (server.listening) server.close();
    this.servers = [];
  }

  /** A server on one listening fd; `offset`: its place in a port range (0: the first, or the only). */
  private serverOn(fd: number, offset: number): net.Server {
    const allowed = this.opts.allow && cidrMatcher(this.opts.allow);
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      socket.on('error', () => undefined);
      if (allowed && !allowed(socket.remoteAddress ?? '')) {
        // from elsewhere: refused at once, as the engine does, and nothing else happens
        this.js.refused++;
        socket.resetAndDestroy();
        return;
      }
      if (this.opts.wakeOnData) this.firstByte(socket, offset);
      else this.take(socket, offset);
    });
    server.on('error', (err) => this.opts.onWarning('accept-error', errnoCode(err) ?? err.message));
    server.listen({ fd });
    return server;
  }

  /** A client accepted: counted and served, or refused over the cap. */
  private take(socket: net.Socket, offset: number): void {
    const client = this.admit(socket, undefined, offset);
    if (!client) socket.resetAndDestroy();
    else this.opts.onClient(client);
  }

  /**
   * `wake-on-data`: the client is taken at its first byte (put back in front for the tail),
   * as the engine does; one that ends first is closed, never counted. Held ones are capped
   * on their own, as the engine's are.
   */
  private firstByte(socket: net.Socket, offset: number): void {
    if (this.waiting >= this.opts.maxConnections) {
      this.js.refused++;
      this.opts.onWarning('refused');
      socket.resetAndDestroy();
      return;
    }
    this.waiting++;
    (this.streams ??= new Set()).add(socket); // (closed with the head, as any client)
    let held = true;
    const letGo = (): void => {
      if (held) this.waiting--;
      held = false;
      this.streams?.delete(socket);
    };
    const silent = (): void => {
      letGo();
      socket.destroy();
    };
    socket.once('end', silent);
    socket.once('close', letGo);
    socket.once('data', (chunk: Buffer) => {
      socket.off('end', silent);
      socket.pause();
      socket.unshift(chunk);
      letGo();
      this.take(socket, offset);
    });
    socket.resume();
  }

  adopt(stream: Duplex, origin?: Origin): Client | undefined {
    return this.admit(stream, origin, 0);
  }

  /** A client counted (or refused over the cap); `offset`: its place in a port range head. */
  private admit(stream: Duplex, origin: Origin | undefined, offset: number): Client | undefined {
    if (this.closed || this.js.open >= this.opts.maxConnections) {
      this.js.refused++;
      this.opts.onWarning('refused');
      return undefined;
    }
    this.js.open++;
    this.js.total++;
    if (stream instanceof net.Socket) stream.setNoDelay(true);
    return this.streamClient(stream, () => this.js.open--, origin, offset);
  }

  stats(): GroupStats {
    return { ...this.js };
  }

  relisten(fds: readonly number[]): void {
    this.swapFd(fds);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const servers = this.servers;
    this.servers = [];
    if (!this.moverListens) this.letGo();
    this.fds = [];
    const closed = Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            if (server.listening) server.close(() => resolve());
            else resolve();
          }),
      ),
    );
    this.destroyStreams();
    await closed;
  }
}
