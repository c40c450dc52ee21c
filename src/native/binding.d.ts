/** The native addon's surface (native/*.c), typed by hand. Handles are opaque Externals. */
export type EngineHandle = { readonly __brand: 'engine' };
export type GroupHandle = { readonly __brand: 'group' };

export interface NativeBinding {
  // ---- native/nsfactory.c: sockets inside namespaces, made on a long-lived thread ----
  /** A new unbound socket made inside the namespace at nsPath (null: the daemon's own). */
  socketIn(nsPath: string | null, family: 4 | 6, type: 'tcp' | 'udp'): Promise<number>;
  /** A socket made inside the namespace, bound to host:port, listening if TCP: [fd, port]. */
  listenIn(
    nsPath: string | null,
    family: 4 | 6,
    type: 'tcp' | 'udp',
    host: string,
    port: number,
    backlog: number,
  ): Promise<[number, number]>;
  /** An fd of the network namespace at nsPath (checked to be one), for the engine to dial in. */
  openNamespace(nsPath: string | null): Promise<number>;

  // ---- native/engine.c: the splice engine ----
  /** Start the engine thread; events arrive in batches of 6 numbers each. */
  engineStart(onEvents: (events: Float64Array) => void): EngineHandle;
  engineStop(engine: EngineHandle): void;
  /** Keep Node's event loop alive (true) while JavaScript waits on the engine, or not. */
  engineRef(engine: EngineHandle, on: boolean): void;
  /** A group; with reportCloses, every connection's end is an event (else only counted). */
  groupCreate(engine: EngineHandle, id: number, maxOpen: number, reportCloses: boolean): GroupHandle;
  /** The engine owns the listening fd from now on. */
  groupListen(engine: EngineHandle, group: GroupHandle, fd: number): void;
  /** Stop accepting (the listening fd is closed); open connections go on. */
  groupUnlisten(engine: EngineHandle, group: GroupHandle): void;
  /** Set a tail slot the engine dials (nsFd -1: its own namespace; the engine dups nsFd), or empty it. */
  groupTail(
    engine: EngineHandle,
    group: GroupHandle,
    slot: number,
    nsFd: number | null,
    family?: 4 | 6,
    host?: string,
    port?: number,
  ): void;
  /** A slot's health: a failed tail gets no new connection while another is up. */
  groupHealth(engine: EngineHandle, group: GroupHandle, slot: number, up: boolean): void;
  /** 0 round-robin, 1 least-conn, 2 source. */
  groupBalance(engine: EngineHandle, group: GroupHandle, policy: number): void;
  /** [open, total, failed, okAt, failedAt, set] per slot, up to the last slot ever set. */
  groupTailStats(group: GroupHandle): Float64Array;
  /** Dial the tail for a client fd handed back earlier; the engine owns fd until it hands it back. */
  groupDial(engine: EngineHandle, group: GroupHandle, fd: number): void;
  /** Join two connected sockets (the engine dups both fds); the connection's id. */
  groupPair(engine: EngineHandle, group: GroupHandle, fdA: number, fdB: number): number;
  /** Count one more open connection held by JavaScript, if under the cap. */
  groupAcquire(group: GroupHandle): boolean;
  groupRelease(group: GroupHandle): void;
  /** [open, total, refused, bytesUp, bytesDown, dialFailures] */
  groupStats(group: GroupHandle): Float64Array;
  connClose(engine: EngineHandle, group: GroupHandle, id: number): void;
  /** Close the head and every connection; an event says when it is done. */
  groupClose(engine: EngineHandle, group: GroupHandle): void;

  /** A listening unix stream socket at path (close-on-exec, non-blocking); closing it leaves the path. */
  listenUnix(path: string, backlog: number): number;
  /** A blocking unix client socket whose reads and writes give up after timeoutMs (EAGAIN). */
  connectUnix(path: string, timeoutMs: number): number;
  /** One sendmsg: data (not empty) carrying up to 250 descriptors (SCM_RIGHTS). */
  sendFds(fd: number, fds: number[], data: Buffer): void;
  /** One recvmsg: the bytes (empty at the end of the stream) and the descriptors they carried. */
  recvFds(fd: number): [Buffer, number[]];
  // ---- native/notify.c: systemd's notification socket ----
  /**
   * Send one datagram to an AF_UNIX datagram socket: socketPath is absolute, or '@name' for
   * the abstract namespace (as in NOTIFY_SOCKET). Throws with the errno name as `code`.
   */
  notify(socketPath: string, message: string): void;
}
