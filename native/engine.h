/*
 * engine.h: what the engine's rooms share. The engine is the data path: one thread, one epoll
 * set, every plain TCP connection of every segment; bytes move socket -> pipe -> socket with
 * splice(2) and never enter user space. Its rooms:
 *   engine.c       the loop, its command queue and the events it sends JavaScript;
 *   conn.c         a connection: dial, pump, end, handoff (its state machine at the top);
 *   pipes.c        the pool of pipes connections borrow while bytes move;
 *   pick.c         which tail a connection dials (round-robin, least-conn, source);
 *   listen.c       accepting on a group's head, the cap, pausing when out of fds;
 *   group_js.c     a tail and a head's listening fds, read from JavaScript and checked;
 *   chan.c         a channel to a peer daemon: sealed records, frames, its streams' table;
 *   stream.c       one stream of a channel, pumped to and from a local socket;
 *   streamdial.c   a peer's stream dialed to a segment's tail by the engine (OPEN with a target);
 *   engine_napi.c  the JavaScript face: commands in, constants and counters out;
 *   chan_napi.c    and the channels' part of it.
 *
 * Shape (after passt's tcp_splice.c and HAProxy's pipe.c / raw_sock.c, rewritten here):
 * - A *group* is one segment's share of the engine: its listening sockets (the head: one, or
 *   one per port of a port range, held in one array; a connection's port says its tail port), its
 *   tails (address, and the namespace to make dialing sockets in), its connections, and its
 *   counters, which JavaScript reads at any time with atomic loads.
 * - A *connection* joins a client socket (side 0) and an upstream socket (side 1); see conn.c.
 * - JavaScript talks to the engine through commands (a queue and an eventfd) and hears from
 *   it through events, batched once per loop turn on a thread-safe function. Epoll is
 *   edge-triggered for connections: every pump runs until EAGAIN.
 *
 * Every number JavaScript reads (event kinds and size, counter slots, policies) is defined
 * here and nowhere else: engine_napi.c exports them as `engineConstants`.
 */
#ifndef WORMHOLE_ENGINE_H
#define WORMHOLE_ENGINE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

/* Pipes kept for reuse (pipes.c). */
#define PIPE_POOL 64
/* The size a pipe grows to once a read fills it (bulk data). */
#define PIPE_BIG (1 << 20)
/* What grown pipes may hold in all, beyond their first size, unless engineStart says (pipes.c). */
#define PIPE_BUDGET (64 << 20)
/* A grown pipe whose writer has been blocked this long (ms) is shrunk when the budget is short. */
#define PIPE_STUCK_MS 1000
/* Connections accepted per readiness of a listener, before other work gets a turn. */
#define ACCEPT_BATCH 64
/* Descriptors the engine leaves to the daemon (its API, Docker, logs) below the fd limit. */
#define FD_RESERVE 64
/* Epoll events taken per loop turn. */
#define EVENTS 256
/* Buckets of the table of groups a peer's stream may be dialed to (streamdial.c). */
#define ATTACH_BUCKETS 1024
/* A group has up to MAX_TAILS tails, in slots JavaScript assigns. */
/* A group listens on up to MAX_LISTENERS ports: a port range (SPEC.md "Port ranges"). */
#define MAX_LISTENERS 10000
#define MAX_TAILS 64

/*
 * Events, as JavaScript sees them: EV_DOUBLES doubles [type, group, a, b, c, d, e, f], the
 * last two of them (bytes 64..79) holding 16 bytes of address (EV_CLOSED's client).
 */
enum ev_type {
  EV_CLOSED = 1,       /* a = conn id, b = bytes up, c = bytes down, d = errno (0: clean), e = ms
                          open, f = client port + 65536 * family (4, 6; 0: unknown), address */
  EV_HANDOFF = 2,      /* a = client fd (now JavaScript's), b = errno of the failed dial (0: no tail;
                          ETIMEDOUT: no answer within the dial timeout), c = ms spent dialing */
  EV_DIALED = 3,       /* a = client fd JavaScript gave with groupDial, b = conn id */
  EV_REFUSED = 4,      /* a connection over the group's cap was refused */
  EV_ACCEPT_ERROR = 5, /* b = errno (EMFILE...): accepting paused for a moment */
  EV_GROUP_CLOSED = 6, /* the group is gone: JavaScript may forget it */
  EV_DIAL_BROKEN = 7,  /* b = errno: the engine could not come back from a namespace */
  EV_TAIL_SET = 8,     /* a = the number groupTail gave its command: the slot holds what it said,
                          and every connection accepted from now on is picked with it */
  /* channels (group id 0): */
  EV_CHAN_CLOSED = 9,  /* a = chan id, b = why (enum chan_why), c = errno or frame type, d = stream */
  EV_CHAN_STREAM = 10, /* a = chan id, b = stream id the peer opened, c = JavaScript's end (an fd),
                          d = 1: an OPEN with a target the engine did not dial (streamdial.c): its
                          payload comes first on the fd, after its 4-byte length */
  EV_CHAN_RESET = 11,  /* a = chan id, b = stream id: the peer reset a stream JavaScript holds */
  EV_CHAN_PONG = 12,   /* a = chan id, b = the keepalive's round trip in ms */
  EV_CHAN_GOAWAY = 13, /* a = chan id: the peer takes no new streams (open them on a new channel) */
  EV_CHAN_STREAM_END = 14, /* a = chan id, b = stream id, c = bytes sent, d = bytes delivered + 2^50 *
                              (1: it was reset): a stream on an fd JavaScript gave (chanOpen) ended */
};
/* The numbers of an event before its address, and all of it in doubles. */
#define EV_NUMBERS 8
#define EV_DOUBLES 10

/* One event. */
struct ev {
  double v[EV_NUMBERS]; /* type, group id, then a..f as enum ev_type says */
  uint8_t addr[16];     /* EV_CLOSED: the client's address (4 bytes for IPv4, 16 for IPv6) */
};
_Static_assert(sizeof(struct ev) == EV_DOUBLES * sizeof(double), "an event is EV_DOUBLES doubles");

/* A group's counters, in the order groupStats gives them. */
enum group_stat {
  GS_OPEN,           /* connections open now (the engine's and those JavaScript holds) */
  GS_TOTAL,          /* connections ever accepted or acquired */
  GS_REFUSED,        /* connections refused: over the cap, or from outside `allow` */
  GS_UP,             /* bytes client -> tail */
  GS_DOWN,           /* bytes tail -> client */
  GS_DIAL_FAILED,    /* dials that failed */
  GS_LAST,           /* ms since the epoch of the last byte moved or connection accepted */
  GS_DIAL_OK_AT,     /* ms since the epoch of the last dial that succeeded (0: never) */
  GS_DIAL_FAILED_AT, /* and of the last that failed */
  GS_COUNT
};

/* A tail's counters, in the order groupTailStats gives them for each slot. */
enum tail_stat {
  TS_OPEN,      /* connections to the tail open now */
  TS_TOTAL,     /* connections to the tail ever made */
  TS_FAILED,    /* dials to the tail that failed */
  TS_OK_AT,     /* ms since the epoch of the last dial that succeeded (0: never) */
  TS_FAILED_AT, /* and of the last that failed */
  TS_SET,       /* 1: the slot holds a tail; 0: empty (the other numbers mean nothing) */
  TS_COUNT
};

/* How a group picks among its tails (groupBalance, pickTail). */
enum balance { B_ROUND_ROBIN = 0, B_LEAST_CONN = 1, B_SOURCE = 2 };

/* What an epoll event's data points at, so the loop knows whose it is. */
enum kind { W_WAKE, W_LISTEN, W_CONN0, W_CONN1, W_CHAN, W_STREAM };
struct watch {
  uint8_t kind; /* enum kind */
};

/* A pipe (pipes.c). */
struct pipe_buf {
  int r, w;                        /* its read and write ends (non-blocking) */
  uint32_t cap;                    /* its size: what one splice into it may take */
  uint32_t base;                   /* its size when made: what it shrinks back to */
  bool pooled;                     /* in the engine's pool (empty), not a connection's */
  int64_t stuck_at;                /* ms since the epoch its writer blocked (0: it is not) */
  struct pipe_buf *gprev, *gnext;  /* the engine's list of grown pipes (cap > base) */
};

/* A connection's state (conn.c: the machine). */
enum cstate { C_DIALING, C_OPEN, C_DEAD, C_WAITING };

/*
 * One tail: where to dial, its health (set by JavaScript's checks, through a command) and its
 * counters (atomics, read by JavaScript at any time). A slot given a new tail gets a new
 * generation, so that a connection to the old one does not count against the new.
 */
struct tail {
  bool set;                     /* the slot holds a tail */
  bool up;                      /* its last health check passed (true until one fails) */
  int ns;                       /* the namespace to make sockets in (-1: the engine's own) */
  struct sockaddr_storage addr; /* where to connect (TCP, or a unix abstract name) */
  socklen_t len;                /* addr's length */
  int root;                     /* a unix path tail: the filesystem root it is looked up in (else -1) */
  char *path;                   /* and the path, looked up at each dial (else NULL) */
  uint8_t proxy;                /* the PROXY protocol version each connection starts with (0: none) */
  uint32_t mark;                /* transparent: dial from the client's address, packets marked so (0: no) */
  bool span;                    /* a port range's tail: a connection to head port i goes to port + i */
  uint32_t gen;                 /* the slot's generation: one more at each new tail */
  uint64_t key;                 /* the tail's hash for source affinity (pick.c) */
  int64_t open;                 /* connections to it open now (atomic) */
  int64_t total;                /* connections to it ever made (atomic) */
  int64_t failed;               /* dials to it that failed (atomic) */
  int64_t ok_at, failed_at;     /* ms since the epoch of the last dial that worked, failed (atomic) */
};

/* One network of a group's `allow` list (groupCreate's allow, 18 bytes each). */
struct allow_net {
  uint8_t family;   /* 4 or 6 */
  uint8_t prefix;   /* how many leading bits must match */
  uint8_t addr[16]; /* the network's address (IPv4 in the first 4 bytes) */
};
/* The packed size of one, as JavaScript sends it. */
#define ALLOW_NET_BYTES 18

struct group;
struct chan;

/* One connection: a client and, once dialed, its upstream (conn.c). */
struct conn {
  struct watch w[2];     /* epoll data: &w[side] */
  int fd[2];             /* 0: client, 1: upstream (-1: none) */
  struct pipe_buf *p[2]; /* p[d] carries fd[d] -> fd[!d] (NULL: none borrowed) */
  uint32_t inpipe[2];    /* bytes waiting in p[d] */
  uint64_t bytes[2];     /* bytes moved each way, for the access log */
  struct timespec t0;    /* when it began (only when the group reports ends) */
  uint8_t client[16];    /* the client's address (4 bytes for IPv4) */
  uint16_t client_port;  /* and port */
  uint8_t client_family; /* 4, 6, or 0: unknown (a unix client, or not read) */
  uint8_t state;         /* enum cstate */
  uint8_t eof[2];        /* fd[d] said EOF */
  uint8_t shut[2];       /* fd[!d] was shut down for writing (EOF passed on) */
  bool from_js;          /* given by groupDial: JavaScript is told when it is connected */
  bool for_stream;       /* a dial for a peer's stream (no client fd): never reported itself */
  struct stream *st;     /* that stream while the dial is under way (NULL once it let go) */
  uint32_t id;           /* its number, for events */
  struct group *g;       /* the group it belongs to */
  int8_t tail;           /* the slot dialed (-1: none) */
  uint16_t port_off;     /* a range's head: the client's port in it (0: its first), for a span tail */
  uint32_t tail_gen;     /* that slot's generation then */
  uint64_t tried;        /* slots dialed for this connection, one bit each */
  uint8_t *hdr;          /* the PROXY header still to send upstream first (NULL: none, or sent) */
  uint16_t hdr_len;      /* its length */
  uint16_t hdr_off;      /* and how much of it went */
  uint64_t src;          /* a hash of the client's address (source affinity; 0: unknown) */
  uint32_t dial_ms;      /* how long each tail may take to answer its connect (ms; 0: the kernel's) */
  int64_t dial_t0;       /* when its dialing began (CLOCK_MONOTONIC ms), for EV_HANDOFF */
  int64_t dial_by;       /* the deadline of the connect in flight (CLOCK_MONOTONIC ms; 0: none) */
  struct conn *dial_prev, *dial_next; /* the engine's list of connects with a deadline */
  struct conn *prev, *next; /* the group's list */
  struct conn *dead_next;   /* the engine's list of connections to free after this turn */
};

/*
 * One listening socket of a group. A head has one; a port range (SPEC.md "Port ranges") one
 * per port, all in one array of the group (not one JavaScript object per port), in port order.
 */
struct listener {
  struct watch w;   /* epoll data (W_LISTEN) */
  int fd;           /* the listening socket */
  struct group *g;  /* whose */
};

/* One segment's head: its listeners, tails, connections and counters. */
struct group {
  int32_t id;     /* JavaScript's number for it, in events */
  int32_t max;    /* the cap on open connections */
  int32_t dial_ms; /* how long a tail may take to answer a connect (ms; 0: the kernel's ~2 min) */
  bool report;    /* tell JavaScript of every connection's end (else only the counters) */
  /* counters read by JavaScript at any time (atomics), as enum group_stat says */
  int64_t open, total, refused, up, down, dial_failed, last, dial_ok_at, dial_failed_at;
  /* the rest: engine thread only */
  struct listener *ls;          /* the listening sockets (NULL: none), in port order */
  int nls;                      /* how many */
  uint16_t base_port;           /* a range's first port (0: not a range): a client's port less it is
                                   its place in the range (conn_new, for a span tail) */
  bool paused;                  /* accepting paused (out of fds) until the engine's resume_at */
  bool closing;                 /* closed: freed once JavaScript has its last event */
  struct conn *conns;           /* its connections */
  /* its tail slots, each allocated when first set and kept until the group is freed (so that
     JavaScript's reads of its counters never meet freed memory): 64 slots inline were 14 KiB
     a group, most of an idle segment's memory with 10,000 of them. Slot 0 is here; the others
     in `more`, allocated whole when the first of them is set (a group of one tail, nearly
     every segment, has none: 64 pointers inline were another 0.5 KiB a group). Read them
     with slot_tail() */
  struct tail *tail0;
  struct tail **more;           /* slots 1 .. MAX_TAILS - 1 (NULL: none set yet) */
  int ntails;                   /* one past the highest slot ever set */
  uint32_t rr;                  /* the pick's cursor: round-robin's next slot */
  uint8_t policy;               /* enum balance */
  char *head_name;              /* a unix head's address as the user named it (PROXY v2), or NULL */
  struct allow_net *allow;      /* `allow`: the only networks clients are taken from (set at create) */
  int nallow;                   /* how many (0: any client) */
  bool wake_on_data;            /* `wake-on-data`: a client is held unread until its first byte */
  int32_t waiting;              /* clients held so (not yet open: capped by max on their own) */
  struct group *paused_next;    /* the engine's list of paused groups */
  char *attach_id;              /* the segment id a peer's OPEN names to be dialed here (NULL: none) */
  char *owner;                  /* and the key that made the segment (who may, streamdial.c) */
  struct group *anext;          /* the engine's table of such groups (a bucket's chain) */
  /* main thread only */
  uint32_t tail_seq;            /* the number of the last groupTail command (EV_TAIL_SET's a) */
};

/* The tail in slot i (NULL: never set), on any thread: each pointer is published whole. */
static inline struct tail *slot_tail(struct group *g, int i) {
  if (i == 0) return __atomic_load_n(&g->tail0, __ATOMIC_ACQUIRE);
  struct tail **more = __atomic_load_n(&g->more, __ATOMIC_ACQUIRE);
  return more ? __atomic_load_n(&more[i - 1], __ATOMIC_ACQUIRE) : NULL;
}

/* What JavaScript asks of the engine thread (engine_napi.c queues, engine.c runs). */
enum cmd_type {
  CMD_LISTEN,
  CMD_UNLISTEN,
  CMD_TAIL,
  CMD_HEALTH,
  CMD_BALANCE,
  CMD_DIAL,
  CMD_TAIL_COUNT,
  CMD_CLOSE_GROUP,
  CMD_CHAN_ADD,    /* ch: start carrying the channel (its fd and keys are in it) */
  CMD_CHAN_OPEN,   /* ch, arg: a local fd, stream: its id, data: bytes to send first, flag: skip
                      the reply frame the peer sends first, notify: a socketpair JS holds */
  CMD_CHAN_REBIND, /* ch, stream: an accepted stream's local end becomes arg (the tail's
                      socket); ns: JavaScript's end of the socketpair, data: what it read */
  CMD_CHAN_PING,   /* ch: a keepalive */
  CMD_CHAN_GOAWAY, /* ch: take no new streams, close once the last one ends */
  CMD_CHAN_CLOSE,  /* ch: close it now (its streams are reset) */
  CMD_ATTACHABLE,  /* g: a peer's OPEN naming data's id ("ID\0OWNER") is dialed to g's tails */
  CMD_STOP
};

/* One command. */
struct cmd {
  struct cmd *next;             /* the queue */
  enum cmd_type type;           /* what to do */
  struct group *g;              /* to which group (NULL for CMD_STOP) */
  int32_t arg;                  /* LISTEN: how many listeners `data` holds; DIAL: an fd; TAIL, HEALTH, TAIL_COUNT: a slot; BALANCE: a policy */
  int32_t delta;                /* TAIL_COUNT: +1 or -1, a connection JavaScript carries to the tail;
                                   DIAL: each tail's connect timeout in ms (0: the group's) */
  bool flag;                    /* TAIL: a tail is given (else the slot is emptied); HEALTH: up */
  int ns;                       /* TAIL: the namespace fd (the engine's own dup; -1: none) */
  struct sockaddr_storage addr; /* TAIL: where to connect */
  socklen_t addr_len;           /* and its length */
  int root;                     /* TAIL of a unix path: the filesystem root (the engine's own dup) */
  char *path;                   /* and the path in it */
  uint8_t proxy;                /* TAIL: the PROXY protocol version (0: none) */
  uint32_t mark;                /* TAIL: transparent's mark (0: not transparent) */
  bool span;                    /* TAIL: a port range's tail (struct tail's span) */
  uint64_t key;                 /* TAIL: the tail's hash for source affinity */
  uint32_t seq;                 /* TAIL: its number, given back in EV_TAIL_SET once it ran */
  struct chan *ch;              /* CHAN_*: the channel (the command holds a reference) */
  uint32_t stream;              /* CHAN_OPEN: the stream's id */
  uint8_t *data;                /* CHAN_OPEN: bytes the stream sends first (NULL: none); LISTEN: the
                                   struct listener array (the group owns it once run) */
  uint32_t data_len;            /* and how many */
  bool notify;                  /* CHAN_OPEN: JavaScript holds the stream's other end */
  uint8_t *target;              /* CHAN_OPEN: what the OPEN carries (streamdial.c; NULL: nothing) */
  uint32_t target_len;          /* and how many bytes */
};

/* A loop turn's events on their way to JavaScript. */
struct batch {
  size_t n;             /* events */
  struct group **freed; /* groups closed in this batch: freed on the main thread */
  size_t nfreed;        /* how many */
  struct ev e[];        /* the events */
};

/* The engine: its thread, epoll set, command queue, and what it keeps between turns. */
struct engine {
  struct watch wake_w;             /* epoll data for the eventfd */
  int ep;                          /* the epoll set */
  int wake;                        /* the eventfd JavaScript writes to after queueing a command */
  int home;                        /* the engine's own network namespace, to come back to */
  pthread_t th;                    /* the thread */
  pthread_mutex_t mu;              /* guards the queue */
  struct cmd *cmds, *cmds_tail;    /* the queue */
  napi_threadsafe_function tsfn;   /* how events reach JavaScript */
  uint32_t next_id;                /* the next connection id (atomic) */
  bool stopped;                    /* main thread: engineStop ran */
  /* the rest: engine thread only */
  struct ev *evs;                  /* this turn's events */
  size_t nev, evcap;               /* how many, and room for how many */
  struct group **freed;            /* groups closed this turn */
  size_t nfreed, freedcap;         /* how many, and room for how many */
  struct pipe_buf *pool[PIPE_POOL]; /* empty pipes for reuse */
  int npool;                       /* how many */
  struct pipe_buf *grown;          /* pipes grown beyond their first size, pooled or lent */
  int64_t pipe_budget;             /* what grown pipes may hold beyond their first size (bytes) */
  int64_t pipe_grown;              /* what they may hold now (atomic: engineStats reads it) */
  int64_t pipe_denied;             /* pipes left small for want of budget (atomic) */
  struct conn *dead;               /* connections ended this turn, freed at its end */
  struct group *paused;            /* groups whose accepting is paused */
  struct conn *dialing;            /* connections whose connect has a deadline (conn.c) */
  int64_t dial_check_at;           /* when dial_timeouts looks at them next (CLOCK_MONOTONIC ms) */
  struct timespec resume_at;       /* when paused listeners accept again (CLOCK_MONOTONIC) */
  int64_t now_ms;                  /* wall clock at this loop turn (CLOCK_REALTIME_COARSE) */
  bool dial_broken;                /* stranded once in another namespace: never dial there again */
  bool stopping;                   /* CMD_STOP ran: the loop ends after this turn */
  struct chan *chans;              /* the channels carried */
  struct chan *dirty;              /* channels with frames to seal and send at the end of the turn */
  struct chan *chans_dead;         /* channels ended this turn: the engine lets go after it */
  struct stream *streams_dead;     /* streams ended this turn, freed after it */
  struct group *attach[ATTACH_BUCKETS]; /* groups a peer's OPEN may name, by id (streamdial.c) */
  struct listener **ls_dead;       /* listener arrays unlistened this turn, freed after it (an
                                      event of this turn may still point into one) */
  size_t nls_dead, ls_deadcap;     /* how many, and room for how many */
};

/* ---- engine.c ---- */
/* Free a group and its tails (main thread, once JavaScript has its last event). */
void group_free(struct group *g);
/* Queue an event for JavaScript (sent at the end of the turn). */
void emit(struct engine *e, int type, struct group *g, double a, double b, double c, double d);
/* Stop accepting on a group: the port is free at once, open connections go on. */
void unlisten(struct engine *e, struct group *g);
/* The engine thread. */
void *engine_main(void *arg);
/* Events' delivery on the main thread (the thread-safe function's call). */
void deliver(napi_env env, napi_value js_cb, void *context, void *data);

/* ---- pipes.c ---- */
/* A pipe from the pool, or a new one; NULL when none can be made. */
struct pipe_buf *pipe_get(struct engine *e);
/* Give a pipe back (kept only if `empty`: bytes in it must not leak to another connection). */
void pipe_put(struct engine *e, struct pipe_buf *p, bool empty);
/* Close every pipe the pool keeps (engine stopped). */
void pipe_pool_drain(struct engine *e);
/* Grow a pipe a full read filled to PIPE_BIG, if the budget has room (made by shrinking others). */
void pipe_grow(struct engine *e, struct pipe_buf *p);
/* The pipe's writer blocked (stuck: true) or took bytes again (false). */
void pipe_stuck(struct engine *e, struct pipe_buf *p, bool stuck);

/* ---- conn.c ---- */
/* A connection for a client fd, in the group's list; NULL when out of memory. The caller marks
   the group active (g->last): a client held for its first byte is not activity yet. port_off:
   a range's client's place in it (the listener's), -1 to read it from the client's socket. */
struct conn *conn_new(struct engine *e, struct group *g, int client, int port_off);
/* Take it off its group's list. */
void unlink_conn(struct conn *c);
/* `wake-on-data`: hold a new client unread until it sends its first byte (C_WAITING). */
void conn_wait_data(struct engine *e, struct group *g, int fd, int port_off);
/* Start dialing a tail for it (or hand the client back to JavaScript when there is none). */
void conn_dial(struct engine *e, struct conn *c);
/* Give the client back to JavaScript untouched (err: the failed dial's errno, 0: no tail). */
void conn_handoff(struct engine *e, struct conn *c, int err);
/* End it: close both sockets (resetting with `rst`), report, free after this turn. */
void conn_end(struct engine *e, struct conn *c, int err, bool rst);
/* Connects past their deadline fail with ETIMEDOUT (the next tail is tried); the ms until the
 * next deadline, or -1 when none is pending. Called once per loop turn. */
int dial_timeouts(struct engine *e);
/* An epoll event on one of its sockets. */
void conn_event(struct engine *e, struct watch *w, uint32_t events);
/* Watch a connection's socket (edge-triggered, both ways); false with errno set. */
bool watch_fd(struct engine *e, int fd, struct watch *w);
/* TCP_NODELAY, for both ends of a connection. */
void nodelay(int fd);
/* Close with a reset (SO_LINGER 0): the other end sees what happened. */
void reset_close(int fd);

/* ---- listen.c ---- */
/* Accept what is waiting on one of a group's listeners (a batch at most). */
void accept_some(struct engine *e, struct listener *l);
/* groupCreate's allow (main thread): checked entries into a new array (*out NULL, *n 0: none);
   false with a JavaScript exception pending when they are wrong. */
bool allow_from_js(napi_env env, napi_value v, struct allow_net **out, int *n);
/* Is a client's address in one of the group's `allow` networks (always, with none)? */
bool allowed(const struct group *g, const struct sockaddr_storage *ss);
/* Listeners paused for a moment accept again. */
void resume_listeners(struct engine *e);
/* A closing group taken off the paused list (it is freed after this turn). */
void forget_paused(struct engine *e, struct group *g);
/* Count one more open connection if under the cap (and one more in total). */
bool acquire_open(struct group *g);
/* Count one fewer. */
void release_open(struct group *g);

/* ---- group_js.c ---- */
/* groupTail's tail object into a CMD_TAIL (fields checked, fds dup'ed); false with an exception pending. */
bool tail_from_js(napi_env env, napi_value tail, struct cmd *c);
/* groupListen's fds (one, or n of an array) as listeners of g; NULL with an exception pending. */
struct listener *listeners_from_js(napi_env env, napi_value v, bool is_array, uint32_t n, struct group *g);

/* ---- pick.c ---- */
/* What the pick sees of one slot. */
struct pick_tail {
  bool set;     /* the slot holds a tail */
  bool up;      /* healthy */
  bool tried;   /* already dialed for this connection */
  int64_t open; /* connections open to it */
  uint64_t key; /* its hash (pick_key) */
};
/* A tail's or a client's hash for source affinity: FNV-1a, then mixed. */
uint64_t pick_key(const uint8_t *p, size_t n);
/* A client's address in text as the engine hashes its bytes (0: not an IP address). */
uint64_t pick_client_text(const char *text);
/*
 * The slot to dial next among n slots, by `policy`, from the cursor *rr (moved on), for a
 * client hashed `src`: healthy ones first, then any; -1 when every one was tried.
 */
int pick(uint8_t policy, const struct pick_tail *tails, int n, uint32_t *rr, uint64_t src);
/* The engine's use of it: the slot a connection dials next (-1: every one tried). */
int pick_tail(struct group *g, struct conn *c);

/* ---- engine_napi.c, chan_napi.c ---- */
/* A command (NULL, and an exception thrown, when out of memory). */
struct cmd *new_cmd(napi_env env, enum cmd_type type, struct group *g);
/* Queue it for the engine thread; false (and an exception) when the engine has stopped. */
bool send_cmd(napi_env env, struct engine *e, struct cmd *c);
/* A command that will never run: what it owns goes with it. */
void cmd_discard(struct cmd *c);
/* The channels' exports (chan_napi.c). */
napi_value wh_chan_init(napi_env env, napi_value exports);

/* ---- chan.c, stream.c: the channel to a peer daemon --------------------------------------- */

/*
 * The frames are src/peer/frame.ts's (one definition: chan_napi.c exports these numbers and a
 * unit test checks them against it); the records around them are the engine's own:
 *   length (4, big-endian: ciphertext + tag; authenticated as additional data) | ciphertext | tag (16)
 * sealed with AES-256-GCM, a key and a 12-byte nonce base per direction from the TLS
 * handshake's exporter, the nonce being the base XOR a 64-bit count of records (never reused).
 * A record holds whole frames only.
 */
enum frame_type { FT_DATA, FT_OPEN, FT_FIN, FT_RST, FT_WINDOW, FT_PING, FT_PONG, FT_GOAWAY };
#define FRAME_HDR 10               /* type, flags, stream id (4), length (4) */
#define FRAME_MAX (16 * 1024)      /* a DATA frame's most */
#define STREAM_WINDOW (1024 * 1024) /* what either side may send on a new stream before a WINDOW */
#define STREAM_CREDIT (STREAM_WINDOW / 4) /* a WINDOW goes once the local socket took this much */
#define STREAM_MAX_WINDOW (1ULL << 31)    /* a window grown past this is a broken peer */
#define CHAN_MAX_STREAMS 65536     /* streams on one channel at most: a new one past it is reset */
#define REC_HDR 4
#define REC_TAG 16
#define REC_PLAIN (64 * 1024)      /* a record's most plaintext */
#define REC_MAX (REC_HDR + REC_PLAIN + REC_TAG)
#define CHAN_KEYS 88               /* exported bytes: key (32) and nonce base (12), dialer's way first */
#define CHAN_OUT_HIGH (512 * 1024) /* sealed bytes waiting: streams stop reading their sockets */
#define OPEN_MAX 1024              /* an OPEN's payload at most: the target (streamdial.c) */

/* Why a channel ended (EV_CHAN_CLOSED's b); src/peer/enginechannel.ts says them in words. */
enum chan_why {
  CW_ASKED,    /* JavaScript closed it */
  CW_EOF,      /* the peer closed the connection */
  CW_IO,       /* reading or writing the connection failed (c: errno) */
  CW_AUTH,     /* a record failed authentication */
  CW_RECORD,   /* a record's length is out of bounds */
  CW_FRAME,    /* a malformed frame (c: its type) */
  CW_STREAM,   /* a frame for a stream never opened, or an open the rules forbid (d: the id) */
  CW_WINDOW,   /* more than the window, or a bad WINDOW (d: the stream) */
  CW_ORDER,    /* data after FIN, a second FIN (d: the stream) */
  CW_DRAINED,  /* GOAWAY, and the last stream ended */
  CW_NOMEM,    /* out of memory */
  CW_WORN,     /* the record counter is about to wrap: a new channel is needed */
};

struct stream;

/* One channel: a TCP connection to a peer daemon carrying many streams. */
struct chan {
  struct watch w;             /* epoll data of fd */
  int32_t id;                 /* JavaScript's number for it, in events */
  int fd;                     /* the raw TCP connection (the engine's own dup) */
  int refs;                   /* the engine's, JavaScript's handle's, each queued command's (atomic) */
  bool dialer;                /* this side dialed: it opens streams (odd ids) and speaks first */
  bool heard;                 /* a record came: the accepting side sends nothing before */
  bool draining;              /* GOAWAY sent or received: no new streams, closed after the last */
  bool dead;                  /* ended: everything below is gone */
  bool dirty;                 /* on the engine's dirty list */
  void *tx, *rx;              /* EVP_CIPHER_CTX of each way, keyed once */
  uint8_t tx_iv[12], rx_iv[12]; /* nonce bases */
  uint64_t tx_seq, rx_seq;    /* records sealed, opened */
  uint8_t *in;                /* bytes read, not yet a whole record (REC_MAX * 2) */
  uint32_t in_len;
  uint8_t *plain;             /* frames waiting to be sealed into the next record (REC_PLAIN) */
  uint32_t plain_len;
  uint8_t *out;               /* sealed records waiting to be written */
  size_t out_len, out_off, out_cap;
  struct stream **buckets;    /* the streams by id (chained; grows with them) */
  uint32_t nbuckets;
  struct stream *streams;     /* every stream, a list */
  struct stream *blocked;     /* streams that stopped reading for want of room in out */
  uint32_t last_id;           /* the largest stream id opened */
  uint32_t next_id;           /* main thread only: the dialer's next id */
  char *key_name;             /* the accepting side: the key the peer came with, when it may attach
                                 (NULL: every OPEN with a target goes to JavaScript, which says no) */
  bool key_all;               /* and whether it may reach any key's segments (admin) */
  /* read by JavaScript at any time (atomics) */
  int64_t nstreams, bytes_up, bytes_down, rtt_ms, heard_at;
  struct chan *prev, *next;   /* the engine's list */
  struct chan *dirty_next;    /* the dirty list */
  struct chan *dead_next;     /* the ended list */
};

/* One stream: a local socket (a client's, or a socketpair whose other end JavaScript holds). */
struct stream {
  struct watch w;           /* epoll data of fd */
  uint32_t id;              /* its id on the channel */
  int fd;                   /* the local socket */
  struct chan *ch;          /* its channel */
  bool notify;              /* JavaScript holds the other end: a reset is told with EV_CHAN_RESET */
  bool zombie;              /* reset by the peer: kept until JavaScript closes its end */
  bool fin_out, fin_in;     /* FIN sent (the local socket said EOF), FIN received */
  bool shut_local;          /* FIN passed on: the local socket shut for writing */
  bool hup;                 /* the local socket's other end is closed both ways */
  bool blocked;             /* on the channel's blocked list */
  bool hashed;              /* in the channel's table (a zombie is only in its list) */
  bool skipping;            /* the peer's reply frame is still being dropped (below) */
  uint32_t skip_left;       /* bytes of the peer's reply still to drop (attach's answer) */
  uint8_t skip_got;         /* of its 4-byte length, how many were read (4: the length is known) */
  uint8_t skip_hdr[4];      /* that length */
  int64_t send_win;         /* what the peer still lets us send */
  uint64_t recv_got;        /* bytes received */
  uint64_t recv_limit;      /* what the peer may send in all: the window plus every grant */
  uint64_t delivered;       /* bytes written to the local socket */
  uint64_t sent;            /* bytes read from it and sent (DATA) */
  uint64_t dropped;         /* bytes in delivered that are not the client's (a reply dropped,
                               what a rebind delivered twice: see stream_rebind) */
  uint64_t again;           /* bytes at the front of pend delivered once already (rebind) */
  uint64_t granted_at;      /* delivered, at the last grant */
  uint8_t *pend;            /* received bytes the local socket has not taken yet */
  uint32_t pend_off, pend_len, pend_cap;
  /* a stream the engine dialed to a group's tail (streamdial.c) */
  struct conn *dialing;     /* the dial under way (the local socket is -1 meanwhile) */
  uint8_t *target;          /* the OPEN's payload, kept while dialing (JavaScript's if it fails) */
  uint32_t target_len;
  struct group *g;          /* once connected: the group counted in (open, bytes, the tail's open) */
  int8_t tail;              /* the slot dialed */
  uint32_t tail_gen;        /* that slot's generation then */
  uint32_t conn_id;         /* its number in the group's EV_CLOSED */
  int64_t t0;               /* when it was opened (CLOCK_MONOTONIC ms), for the access log */
  struct stream *hnext;     /* the bucket's chain */
  struct stream *prev, *next; /* the channel's list */
  struct stream *bnext;     /* the blocked list */
  struct stream *dead_next; /* the engine's list of streams to free */
};

/* ---- chan.c ---- */
/* A channel starts: watched, and (the dialer) its first record sent. */
void chan_add(struct engine *e, struct chan *ch);
/* End it: its streams reset, EV_CHAN_CLOSED sent, the engine lets go after this turn. */
void chan_end(struct engine *e, struct chan *ch, int why, int detail, uint32_t stream);
/* An epoll event on its connection. */
void chan_event(struct engine *e, struct chan *ch, uint32_t events);
/* Room for a DATA frame's payload in the record being made (*room bytes at most, >= 1). */
uint8_t *chan_data_room(struct engine *e, struct chan *ch, uint32_t *room);
/* The payload just written there is n bytes: the frame's header goes in front. */
void chan_data_commit(struct engine *e, struct chan *ch, uint32_t stream, uint32_t n);
/* Queue a frame (no payload, or a small one). */
void chan_frame(struct engine *e, struct chan *ch, int type, uint32_t stream, const void *p, uint32_t n);
/* Sealed bytes waiting are over CHAN_OUT_HIGH: streams wait before reading more. */
bool chan_full(struct chan *ch);
/* Seal and send what this turn queued on dirty channels. */
void chan_flush_dirty(struct engine *e);
/* Let go of one reference; the last frees it. */
void chan_unref(struct chan *ch);
/* Process bytes read from the connection (records); false once the channel has ended. */
bool chan_receive(struct engine *e, struct chan *ch);
/* A stream's table: find; add (to the table and the list); off the table; off the list. */
struct stream *chan_find(struct chan *ch, uint32_t id);
bool chan_insert(struct chan *ch, struct stream *st);
void chan_unhash(struct chan *ch, struct stream *st);
void chan_unlist(struct chan *ch, struct stream *st);
/* Key a channel's ciphers from the exported bytes (main thread, before CMD_CHAN_ADD); false: no memory. */
bool chan_keys(struct chan *ch, const uint8_t keys[CHAN_KEYS]);
/* Seal `n` bytes of plaintext as one record into out (REC_HDR + n + REC_TAG bytes); false: failed. */
bool chan_seal(void *ctx, const uint8_t iv[12], uint64_t seq, const uint8_t *plain, uint32_t n, uint8_t *out);

/* ---- stream.c ---- */
/* The dialer opens stream `id` on fd (OPEN, then `first` as data); false: no memory (fd left). */
bool stream_open(struct engine *e, struct chan *ch, uint32_t id, int fd, const uint8_t *first, uint32_t n,
                 bool skip_reply, bool notify, const uint8_t *target, uint32_t tn);
/* The peer opened stream `id` (with `p`: a target, streamdial.c): a socketpair, one end pumped, the
   other JavaScript's (EV_CHAN_STREAM). */
void stream_accept(struct engine *e, struct chan *ch, uint32_t id, const uint8_t *p, uint32_t n);
/* A stream on no socket yet (-1: not watched), in the channel's table; NULL: no memory. */
struct stream *stream_new(struct engine *e, struct chan *ch, uint32_t id, int fd, bool notify);
/* Give a stream not yet on a socket to JavaScript (a socketpair; `p`: the target it named). */
void stream_to_js(struct engine *e, struct stream *st, const uint8_t *p, uint32_t n);
/* A dialed stream's tail is connected: `fd` is its local socket from here (streamdial.c's). */
void stream_connected(struct engine *e, struct stream *st, int fd);

/* ---- streamdial.c ---- */
/* An OPEN with a target: dialed here when the engine may (else JavaScript's, stream_to_js). */
void streamdial_open(struct engine *e, struct chan *ch, uint32_t id, const uint8_t *p, uint32_t n);
/* The group may (data: "ID\0OWNER") or may no longer (NULL) be named by a peer's OPEN. */
void streamdial_register(struct engine *e, struct group *g, const char *data, uint32_t n);
/* The group closes: its streams are reset, it is off the table. */
void streamdial_group_closed(struct engine *e, struct group *g);
/* A dial for a stream ended: connected (fd >= 0), failed (JavaScript tries: handoff), or aborted. */
void streamdial_connected(struct engine *e, struct conn *c, int fd);
void streamdial_failed(struct engine *e, struct conn *c);
void streamdial_aborted(struct engine *e, struct conn *c);
/* A dialed stream's end: its counts released, the access log told (when the group reports). */
void streamdial_ended(struct engine *e, struct stream *st, bool rst);
/* Bytes it moved to (up) or from (down) its tail. */
void streamdial_count(struct engine *e, struct stream *st, bool up, uint64_t n);
/* A frame for a stream; false: the peer broke a rule (the channel is ended by the caller). */
bool stream_frame(struct engine *e, struct stream *st, int type, const uint8_t *p, uint32_t n, int *why);
/* An accepted stream's local end becomes `tail` (see CMD_CHAN_REBIND; every fd is taken). */
void stream_rebind(struct engine *e, struct chan *ch, uint32_t id, int tail, int js, const uint8_t *first,
                   uint32_t n);
/* An epoll event on a stream's socket. */
void stream_event(struct engine *e, struct stream *st, uint32_t events);
/* Read the local socket again (window granted, room in the channel). */
void stream_pump(struct engine *e, struct stream *st);
/* End a stream: its socket closed (reset with `rst`), off the table, freed after this turn. */
void stream_drop(struct engine *e, struct stream *st, bool rst);

#endif
