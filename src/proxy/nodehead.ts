/**
 * A TCP head for where the engine could not start: Node accepts and pipe() moves (tcp.ts).
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
  private server: net.Server | undefined;
  /** Clients held for their first byte (`wake-on-data`). */
  private waiting = 0;

  constructor(fd: number, opts: HeadOptions) {
    super(opts, fd);
  }

  protected listenOn(fd: number): void {
    this.server = this.serverOn(fd);
  }

  protected unlistenMover(): void {
    if (this.server?.listening) this.server.close();
    this.server = undefined;
  }

  private serverOn(fd: number): net.Server {
    const allowed = this.opts.allow && cidrMatcher(this.opts.allow);
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      socket.on('error', () => undefined);
      if (allowed && !allowed(socket.remoteAddress ?? '')) {
        // from elsewhere: refused at once, as the engine does, and nothing else happens
        this.js.refused++;
        socket.resetAndDestroy();
        return;
      }
      if (this.opts.wakeOnData) this.firstByte(socket);
      else this.take(socket);
    });
    server.on('error', (err) => this.opts.onWarning('accept-error', errnoCode(err) ?? err.message));
    server.listen({ fd });
    return server;
  }

  /** A client accepted: counted and served, or refused over the cap. */
  private take(socket: net.Socket): void {
    const client = this.adopt(socket);
    if (!client) socket.resetAndDestroy();
    else this.opts.onClient(client);
  }

  /**
   * `wake-on-data`: the client is taken at its first byte (put back in front for the tail),
   * as the engine does; one that ends first is closed, never counted. Held ones are capped
   * on their own, as the engine's are.
   */
  private firstByte(socket: net.Socket): void {
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
      this.take(socket);
    });
    socket.resume();
  }

  adopt(stream: Duplex, origin?: Origin): Client | undefined {
    if (this.closed || this.js.open >= this.opts.maxConnections) {
      this.js.refused++;
      this.opts.onWarning('refused');
      return undefined;
    }
    this.js.open++;
    this.js.total++;
    if (stream instanceof net.Socket) stream.setNoDelay(true);
    return this.streamClient(stream, () => this.js.open--, origin);
  }

  stats(): GroupStats {
    return { ...this.js };
  }

  relisten(fd: number): void {
    this.swapFd(fd);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const server = this.server;
    this.server = undefined;
    if (!this.moverListens) this.letGo();
    this.fd = -1;
    const closed = new Promise<void>((resolve) => {
      if (server?.listening) server.close(() => resolve());
      else resolve();
    });
    this.destroyStreams();
    await closed;
  }
}
