/** The native addon's surface (native/*.c), typed by hand. Handles are opaque Externals. */
export type EngineHandle = { readonly __brand: 'engine' };
export type GroupHandle = { readonly __brand: 'group' };
export type ChanHandle = { readonly __brand: 'chan' };

/** The channel's numbers (native/engine.h), each defined there once; src/peer/frame.ts's must match. */
export interface ChanConstants {
  /** Bytes of a frame's header, the most a DATA frame carries, a new stream's window. */
  readonly frameHeader: number;
  readonly frameMax: number;
  readonly window: number;
  /** A window may not grow past this; streams one channel carries at most. */
  readonly maxWindow: number;
  readonly maxStreams: number;
  /** Bytes of the TLS exporter chanCreate takes. */
  readonly keys: number;
  /** A record's most plaintext, and what a record adds to it (length and tag). */
  readonly recordMax: number;
  readonly recordOverhead: number;
  /** Why a channel ended (a chanClosed event's number). */
  readonly why: Readonly<
    Record<
      | 'asked'
      | 'eof'
      | 'io'
      | 'auth'
      | 'record'
      | 'frame'
      | 'stream'
      | 'window'
      | 'order'
      | 'drained'
      | 'nomem'
      | 'worn',
      number
    >
  >;
}

/** The engine's numbers (native/engine.h), each defined there once. */
export interface EngineConstants {
  /** Event kinds: an event's first number. */
  readonly events: Readonly<
    Record<
      | 'closed'
      | 'handoff'
      | 'dialed'
      | 'refused'
      | 'acceptError'
      | 'groupClosed'
      | 'dialBroken'
      | 'tailSet'
      | 'chanClosed'
      | 'chanStream'
      | 'chanReset'
      | 'chanPong'
      | 'chanGoAway'
      | 'chanStreamEnd',
      number
    >
  >;
  /** The numbers of one event: [type, group, a, b, c, d, e, f], then 16 bytes of address. */
  readonly eventDoubles: number;
  /** The number at which an event's address bytes start. */
  readonly eventAddress: number;
  /** Where each group counter is in groupStats' numbers. */
  readonly groupStats: Readonly<
    Record<
      | 'open'
      | 'total'
      | 'refused'
      | 'bytesUp'
      | 'bytesDown'
      | 'dialFailures'
      | 'lastActive'
      | 'dialOkAt'
      | 'dialFailedAt',
      number
    >
  >;
  readonly groupStatCount: number;
  /** Where each tail counter is in one slot's groupTailStats numbers (set: 1 if the slot holds a tail). */
  readonly tailStats: Readonly<Record<'open' | 'total' | 'failed' | 'okAt' | 'failedAt' | 'set', number>>;
  readonly tailStatCount: number;
  /** The balancing policies' numbers. */
  readonly policies: Readonly<Record<'round-robin' | 'least-conn' | 'source', number>>;
  /** Tail slots per group. */
  readonly maxTails: number;
}

/** A tail for groupTail: a TCP address, or a unix one (`path`). */
export interface NativeTail {
  /** The namespace to dial in (-1, the default: the daemon's own); the engine dups it. */
  nsFd?: number;
  /** A numeric IPv4 or IPv6 address, and a port 1-65535. */
  host?: string;
  port?: number;
  /** A unix tail: `@name` (abstract, in nsFd's namespace) or `/path`, looked up at each dial in rootFd. */
  path?: string;
  rootFd?: number;
  /** The PROXY protocol version each connection starts with (0, the default: none). */
  proxy?: 0 | 1 | 2;
  /** Transparent: each dial is from the client's own address, its packets marked so (0, the default: no). */
  mark?: number;
  /** The name source affinity hashes (the default: the address); pickTail hashes the same. */
  key?: string;
  /** 1: a port range's tail: a client of the head's port i is dialed at port + i (0, the default: port). */
  span?: 0 | 1;
}

/** One slot as pickTail sees it (null: empty). */
export interface PickSlot {
  /** The name source affinity hashes. */
  key: string;
  /** Healthy (the default). */
  up?: boolean;
  /** Connections open to it now (least-conn). */
  open?: number;
  /** Already dialed for this connection: skipped. */
  tried?: boolean;
}

/** pickTail's question. */
export interface PickArgs {
  /** An engineConstants.policies number. */
  policy: number;
  /** The client's address (`1.2.3.4`, `::1`, `[::1]`); absent: unknown. */
  client?: string;
  /** The cursor the last call gave (0 at first). */
  cursor: number;
  tails: (PickSlot | null)[];
}

/** One end of a connection, for a PROXY header: an IP address and port, or a unix socket. */
export type NativeSockAddr = { host: string; port: number } | { path: string };
/** Who connected (src) to what (dst). */
export interface NativeOrigin {
  src: NativeSockAddr;
  dst: NativeSockAddr;
}

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
  /**
   * A listening unix stream socket at address: "/path" inside the filesystem root (null: the
   * host's; "/proc/PID/root": a container's; symlinks never lead out of it), made with that
   * file mode (a stale socket replaced; a live one, or any other file, refused: ADDR_IN_USE,
   * NOT_A_SOCKET), or "@name" in nsPath's namespace. [fd, identity of the file ("" for @)].
   */
  listenUnixIn(
    nsPath: string | null,
    root: string | null,
    address: string,
    mode: number,
    backlog: number,
  ): Promise<[number, string]>;
  /** A unix stream socket connected to address (as for listenUnixIn), non-blocking. */
  connectUnixIn(nsPath: string | null, root: string | null, address: string): Promise<number>;
  /** Remove the socket file at "/path" inside root if it is still the one listenUnixIn made. */
  removeUnixIn(root: string | null, address: string, identity: string): Promise<void>;
  /** An fd of a filesystem root (null: the host's), for the engine to dial unix paths in. */
  openRoot(root: string | null): Promise<number>;

  // ---- native/engine*.c, conn.c, pipes.c, pick.c, listen.c: the splice engine ----
  /** The numbers the engine's events and counters are read with (native/engine.h). */
  readonly engineConstants: EngineConstants;
  /**
   * Start the engine thread; events arrive in batches, engineConstants.eventDoubles numbers
   * each. pipeBudget: the bytes grown pipes may hold beyond their first size (64 MiB by default).
   */
  engineStart(onEvents: (events: Float64Array) => void, pipeBudget?: number): EngineHandle;
  /** The pipe budget's use: bytes grown pipes may hold now beyond their first size, the budget, grows refused. */
  engineStats(engine: EngineHandle): { pipeGrown: number; pipeBudget: number; pipeDenied: number };
  engineStop(engine: EngineHandle): void;
  /** Keep Node's event loop alive (true) while JavaScript waits on the engine, or not. */
  engineRef(engine: EngineHandle, on: boolean): void;
  /**
   * A group; with reportCloses, every connection's end is an event (else only counted).
   * headName: a unix head's address as the user named it, for a PROXY v2 header. dialMs: how
   * long a tail may take to answer a connect before the next is tried (0: the kernel's ~2 min).
   * allow: the only networks clients are taken from, 18 bytes each (src/api/cidr.ts packCidrs);
   * null or empty: any. wakeOnData: each client is held unread until its first byte, and
   * only then counted and dialed (one that closes first is forgotten).
   */
  groupCreate(
    engine: EngineHandle,
    id: number,
    maxOpen: number,
    reportCloses: boolean,
    headName?: string | null,
    dialMs?: number,
    allow?: Buffer | null,
    wakeOnData?: boolean,
  ): GroupHandle;
  /**
   * The engine owns the listening fd from now on, or every fd of an array: a port range's, in
   * port order (a client's place in it is its port less the first's: a `span` tail adds it).
   */
  groupListen(engine: EngineHandle, group: GroupHandle, fd: number | number[]): void;
  /** Stop accepting (the listening fd is closed); open connections go on. */
  groupUnlisten(engine: EngineHandle, group: GroupHandle): void;
  /**
   * Set a tail slot the engine dials (slot 0..maxTails-1), or empty it (null). Returns the
   * command's number (one more per call on the group), which a `tailSet` event gives back
   * once the engine thread has applied it.
   */
  groupTail(engine: EngineHandle, group: GroupHandle, slot: number, tail: NativeTail | null): number;
  /** A slot's health: a failed tail gets no new connection while another is up. */
  groupHealth(engine: EngineHandle, group: GroupHandle, slot: number, up: boolean): void;
  /** How the group picks among its tails: an engineConstants.policies number. */
  groupBalance(engine: EngineHandle, group: GroupHandle, policy: number): void;
  /**
   * A peer's stream whose OPEN names `id` is dialed to the group's tails by the engine itself
   * when the peer's key is `owner`'s or has every right (native/streamdial.c); null: no more.
   */
  groupAttachable(engine: EngineHandle, group: GroupHandle, at: { id: string; owner: string } | null): void;
  /** engineConstants.tailStatCount numbers per slot (tailStats names them), up to the last slot ever set. */
  groupTailStats(group: GroupHandle): Float64Array;
  /** A connection JavaScript carries to a slot's tail opened (+1) or closed (-1): least-conn counts it. */
  groupTailCount(engine: EngineHandle, group: GroupHandle, slot: number, delta: 1 | -1): void;
  /**
   * Dial the tail for a client fd handed back earlier; the engine owns fd until it hands it
   * back. dialMs: how long each tail may take to answer (0: the group's).
   */
  groupDial(engine: EngineHandle, group: GroupHandle, fd: number, dialMs?: number): void;
  /** Count one more open connection held by JavaScript, if under the cap. */
  groupAcquire(group: GroupHandle): boolean;
  groupRelease(group: GroupHandle): void;
  /** engineConstants.groupStatCount numbers (groupStats names them). */
  groupStats(group: GroupHandle): Float64Array;
  /** Close the head and every connection; an event says when it is done. */
  groupClose(engine: EngineHandle, group: GroupHandle): void;
  /**
   * The engine's pick of a tail (native/pick.c), for what JavaScript carries: the slot
   * (-1: every tail tried) and the cursor to give the next call.
   */
  pickTail(args: PickArgs): { slot: number; cursor: number };

  // ---- native/chan*.c, stream.c: a channel to a peer daemon, carried by the engine ----
  readonly chanConstants: ChanConstants;
  /**
   * Carry a channel: fd is its raw TCP connection (dup'ed; Node's own stays paused), keys
   * the TLS exporter's bytes; the dialer speaks first. Events name it by `id`.
   */
  chanCreate(
    engine: EngineHandle,
    id: number,
    fd: number,
    keys: Buffer,
    dialer: boolean,
    /** The accepting side: the key the peer came with, when it may attach (streamdial.c). */
    peerKey?: { name: string; all: boolean } | null,
  ): ChanHandle;
  /**
   * The dialer opens a stream on fd (the engine owns it), or with fd -1 on a socketpair whose
   * other end is returned: [stream id, JavaScript's fd (-1 when fd was given)]. `first` leaves
   * with the OPEN; skipReply: the peer's first API frame is dropped (an attach's reply).
   */
  chanOpen(
    engine: EngineHandle,
    chan: ChanHandle,
    fd: number,
    first: Buffer | null,
    skipReply: boolean,
    /** What the OPEN carries: a segment the peer's engine dials itself (streamdial.c). */
    target?: Buffer | null,
  ): [number, number];
  /** A keepalive (a chanPong event gives its round trip). */
  chanPing(engine: EngineHandle, chan: ChanHandle): void;
  /** Take no new streams; close once the last one ends. */
  chanGoAway(engine: EngineHandle, chan: ChanHandle): void;
  /** Close now: its streams are reset. */
  chanClose(engine: EngineHandle, chan: ChanHandle): void;
  /** [streams, bytesUp, bytesDown, rttMs (0: none yet), heardAt (ms since the epoch)]. */
  chanStats(chan: ChanHandle): Float64Array;
  /**
   * An accepted stream's local end becomes `tailFd` (a connected socket, copied): what its
   * socketpair holds for JavaScript (jsFd: JavaScript's end, copied; then `first`, what
   * JavaScript read of it already) goes to the tail first. The socketpair is closed;
   * chanStreamEnd tells the stream's end. JavaScript closes its own fds after.
   */
  chanRebind(
    engine: EngineHandle,
    chan: ChanHandle,
    id: number,
    jsFd: number,
    tailFd: number,
    first: Buffer | null,
  ): void;
  /** Tests: one record as a peer seals it (fromDialer: with the dialer's key), its seq'th. */
  chanTestSeal(keys: Buffer, fromDialer: boolean, seq: number, plaintext: Buffer): Buffer;
  /** Tests: bytes through a channel's receive path, no connection: [why (-1: all taken), detail, stream]. */
  chanTestFeed(keys: Buffer, dialer: boolean, bytes: Buffer): [number, number, number];

  /** A listening unix stream socket at path (close-on-exec, non-blocking); closing it leaves the path. */
  listenUnix(path: string, backlog: number): number;
  /** A blocking unix client socket whose reads and writes give up after timeoutMs (EAGAIN). */
  connectUnix(path: string, timeoutMs: number): number;
  /** One sendmsg: data (not empty) carrying up to 250 descriptors (SCM_RIGHTS). */
  sendFds(fd: number, fds: number[], data: Buffer): void;
  /** One recvmsg: the bytes (empty at the end of the stream) and the descriptors they carried. */
  recvFds(fd: number): [Buffer, number[]];
  // ---- native/proxyproto.c ----
  /**
   * A connected socket's two ends: [family (4, 6, 0 unix, -1 unknown), client address, its
   * port, the head's address, its port]; a unix address is a path, or "@name" when abstract.
   */
  fdOrigin(fd: number): [number, string, number, string, number];
  /**
   * The PROXY protocol header (version 1 or 2) for a connection from origin.src (the
   * client) to origin.dst (the head); null: an origin nobody said (UNKNOWN, unspecified).
   */
  proxyHeader(version: 1 | 2, origin: NativeOrigin | null): Buffer;

  // ---- native/transparent.c ----
  /**
   * Bind fd (a socket of host's family, made in a tail's namespace, not bound yet) to
   * host:port, a client's, with IP_TRANSPARENT and SO_MARK `mark`. Throws the errno.
   */
  bindTransparent(fd: number, host: string, port: number, mark: number): void;
  // ---- native/notify.c: systemd's notification socket ----
  /**
   * Send one datagram to an AF_UNIX datagram socket: socketPath is absolute, or '@name' for
   * the abstract namespace (as in NOTIFY_SOCKET). Throws with the errno name as `code`.
   */
  notify(socketPath: string, message: string): void;
  // ---- native/syncfs.c ----
  /** syncfs(2): every file of the file system fd is on, written to disk (throws with the errno name). */
  syncFs(fd: number): void;
  // ---- native/sockbuf.c ----
  /**
   * SO_RCVBUFFORCE `bytes` on socket `fd` of process `pid` (through pidfd_getfd: the same
   * socket); returns its size after (SO_RCVBUF: twice `bytes`). Throws with the errno name.
   */
  raiseRcvbuf(pid: number, fd: number, bytes: number): number;
  // ---- native/heap.cc ----
  /**
   * V8's LowMemoryNotification, then malloc_trim: the heap collected and compacted, its young
   * generation shrunk, freed pages given back to the system. Blocks the event loop meanwhile.
   */
  reduceMemory(): void;
}
