/*
 * engine.h: what the engine's rooms share. The engine is the data path: one thread, one epoll
 * set, every plain TCP connection of every segment; bytes move socket -> pipe -> socket with
 * splice(2) and never enter user space. Its rooms:
 *   engine.c       the loop, its command queue and the events it sends JavaScript;
 *   conn.c         a connection: dial, pump, end, handoff (its state machine at the top);
 *   pipes.c        the pool of pipes connections borrow while bytes move;
 *   pick.c         which tail a connection dials (round-robin, least-conn, source);
 *   listen.c       accepting on a group's head, the cap, pausing when out of fds;
 *   engine_napi.c  the JavaScript face: commands in, constants and counters out.
 *
 * Shape (after passt's tcp_splice.c and HAProxy's pipe.c / raw_sock.c, rewritten here):
 * - A *group* is one segment's share of the engine: its listening socket (the head), its
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
/* A group has up to MAX_TAILS tails, in slots JavaScript assigns. */
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
  GS_REFUSED,        /* connections refused over the cap */
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
enum kind { W_WAKE, W_LISTEN, W_CONN0, W_CONN1 };
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
enum cstate { C_DIALING, C_OPEN, C_DEAD };

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
  uint32_t gen;                 /* the slot's generation: one more at each new tail */
  uint64_t key;                 /* the tail's hash for source affinity (pick.c) */
  int64_t open;                 /* connections to it open now (atomic) */
  int64_t total;                /* connections to it ever made (atomic) */
  int64_t failed;               /* dials to it that failed (atomic) */
  int64_t ok_at, failed_at;     /* ms since the epoch of the last dial that worked, failed (atomic) */
};

struct group;

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
  uint32_t id;           /* its number, for events */
  struct group *g;       /* the group it belongs to */
  int8_t tail;           /* the slot dialed (-1: none) */
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

/* One segment's head: its listener, tails, connections and counters. */
struct group {
  struct watch w; /* epoll data of the listening socket */
  int32_t id;     /* JavaScript's number for it, in events */
  int32_t max;    /* the cap on open connections */
  int32_t dial_ms; /* how long a tail may take to answer a connect (ms; 0: the kernel's ~2 min) */
  bool report;    /* tell JavaScript of every connection's end (else only the counters) */
  /* counters read by JavaScript at any time (atomics), as enum group_stat says */
  int64_t open, total, refused, up, down, dial_failed, last, dial_ok_at, dial_failed_at;
  /* the rest: engine thread only */
  int lfd;                      /* the listening socket (-1: none) */
  bool paused;                  /* accepting paused (out of fds) until the engine's resume_at */
  bool closing;                 /* closed: freed once JavaScript has its last event */
  struct conn *conns;           /* its connections */
  struct tail tails[MAX_TAILS]; /* its tail slots */
  int ntails;                   /* one past the highest slot ever set */
  uint32_t rr;                  /* the pick's cursor: round-robin's next slot */
  uint8_t policy;               /* enum balance */
  char *head_name;              /* a unix head's address as the user named it (PROXY v2), or NULL */
  struct group *paused_next;    /* the engine's list of paused groups */
  /* main thread only */
  uint32_t tail_seq;            /* the number of the last groupTail command (EV_TAIL_SET's a) */
};

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
  CMD_STOP
};

/* One command. */
struct cmd {
  struct cmd *next;             /* the queue */
  enum cmd_type type;           /* what to do */
  struct group *g;              /* to which group (NULL for CMD_STOP) */
  int32_t arg;                  /* LISTEN and DIAL: an fd; TAIL, HEALTH, TAIL_COUNT: a slot; BALANCE: a policy */
  int32_t delta;                /* TAIL_COUNT: +1 or -1, a connection JavaScript carries to the tail;
                                   DIAL: each tail's connect timeout in ms (0: the group's) */
  bool flag;                    /* TAIL: a tail is given (else the slot is emptied); HEALTH: up */
  int ns;                       /* TAIL: the namespace fd (the engine's own dup; -1: none) */
  struct sockaddr_storage addr; /* TAIL: where to connect */
  socklen_t addr_len;           /* and its length */
  int root;                     /* TAIL of a unix path: the filesystem root (the engine's own dup) */
  char *path;                   /* and the path in it */
  uint8_t proxy;                /* TAIL: the PROXY protocol version (0: none) */
  uint64_t key;                 /* TAIL: the tail's hash for source affinity */
  uint32_t seq;                 /* TAIL: its number, given back in EV_TAIL_SET once it ran */
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
};

/* ---- engine.c ---- */
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
/* A connection for a client fd, in the group's list; NULL when out of memory. */
struct conn *conn_new(struct engine *e, struct group *g, int client);
/* Take it off its group's list. */
void unlink_conn(struct conn *c);
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
/* Accept what is waiting on a group's head (a batch at most). */
void accept_some(struct engine *e, struct group *g);
/* Listeners paused for a moment accept again. */
void resume_listeners(struct engine *e);
/* A closing group taken off the paused list (it is freed after this turn). */
void forget_paused(struct engine *e, struct group *g);
/* Count one more open connection if under the cap (and one more in total). */
bool acquire_open(struct group *g);
/* Count one fewer. */
void release_open(struct group *g);

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

#endif
