/*
 * engine: the data path. One thread, one epoll set, every plain TCP connection of every
 * segment; bytes move socket -> pipe -> socket with splice(2) and never enter user space.
 *
 * Shape (after passt's tcp_splice.c and HAProxy's pipe.c / raw_sock.c, rewritten here):
 * - A *group* is one segment's share of the engine: its listening socket (the head), its
 *   tail (address, and the namespace to make dialing sockets in), its connections, and its
 *   counters (open, total, refused, bytes each way, dial failures), which JavaScript reads
 *   at any time with atomic loads.
 * - A *connection* joins a client socket (side 0) and an upstream socket (side 1). Each
 *   direction has its own pipe, taken from a small pool when data first moves, grown to
 *   1 MiB when a read fills it (bulk), and given back when it is empty and the reader has
 *   nothing more (idle connections hold no pipe: ~0.2 KiB each).
 * - Per direction: drain the pipe into the writer; at EOF from the reader, shutdown(SHUT_WR)
 *   the writer once the pipe is empty (half-close); read more only when the pipe is empty,
 *   so a slow writer stops the reader (backpressure: at most one pipe per direction is
 *   buffered). An error on one side ends both; a reset (ECONNRESET/EPIPE) is passed on as a
 *   reset (SO_LINGER 0), anything else as a close.
 * - Accept and dial happen here too when the group's tail is set: the client is never read
 *   before its upstream is connected, so a dial that fails hands the untouched client fd
 *   back to JavaScript (retries, triggers), with no byte lost. Sockets for a tail in another
 *   namespace are made after setns(2) there and back; if coming back ever fails the engine
 *   stops dialing (everything is handed back) rather than make sockets in the wrong place.
 * - A tail is TCP (IPv4, IPv6) or a unix stream socket: an abstract name (made in the tail's
 *   namespace, as TCP) or a path, looked up at each dial inside the tail's filesystem root
 *   (an fd the slot keeps while the tail is set: a container's /proc/PID/root) so that a
 *   symlink never leads out of it (unixsock.c). Splice moves bytes on unix sockets alike,
 *   and shutdown(SHUT_WR) passes half-close on both kinds: a head of one kind and a tail of
 *   the other are joined as they are.
 * - A tail set with the PROXY protocol (v1 or v2) gets the header first (proxyproto.c), built
 *   from the client's and the head's addresses once the tail is connected and sent before
 *   any client byte: a small send on a fresh socket, whose remainder (a short write) is sent
 *   when the socket is writable again, before the client is read.
 *
 * JavaScript talks to the engine through commands (a queue and an eventfd) and hears from it
 * through events, batched once per loop turn on a thread-safe function. Epoll is
 * edge-triggered for connections: every pump runs until EAGAIN.
 *
 * Exports (flat; handles are Externals):
 *   engineStart(onEvents)                -> engine     onEvents(Float64Array of 6-number events)
 *   engineStop(engine)
 *   engineRef(engine, on)                keep the event loop alive while JavaScript waits on it
 *   groupCreate(engine, id, maxOpen, reportCloses[, headName]) -> group   headName: a unix
 *                                        head's address, for a PROXY v2 header
 *   groupListen(engine, group, fd)       the engine owns fd from now on
 *   groupUnlisten(engine, group)         stop accepting (daemon stop); connections go on
 *   groupTail(engine, group, slot, nsFd|-1, family 4|6|0, address, port, rootFd|-1, proxy 0|1|2)
 *                                        family 0 is unix: address "/path" (in rootFd's tree)
 *                                        or "@name" (in nsFd's namespace); or (.., slot, null)
 *   groupDial(engine, group, fd)         dial the tail for a client fd JavaScript holds
 *   groupPair(engine, group, fdA, fdB)   -> connection id (the engine dups both fds)
 *   groupAcquire(group) -> bool, groupRelease(group)   count a connection JS holds
 *   groupStats(group)                    -> Float64Array [open,total,refused,up,down,dialFailed]
 *   connClose(engine, group, id)         close one connection
 *   groupClose(engine, group)            close the head and every connection (event when done)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PIPE_POOL 64
#define PIPE_BIG (1 << 20)
#define ACCEPT_BATCH 64
#define EVENTS 256

/*
 * Events, as JavaScript sees them: [type, group, a, b, c, d, e, f] as doubles, then 16 bytes
 * of address (EV_CLOSED's client), 80 bytes each.
 */
enum ev_type {
  EV_CLOSED = 1,      /* a = conn id, b = bytes up, c = bytes down, d = errno (0: clean), e = ms
                         open, f = client port + 65536 * family (4, 6; 0: unknown), address */
  EV_HANDOFF = 2,     /* a = client fd (now JavaScript's), b = errno of the failed dial (0: no tail) */
  EV_DIALED = 3,      /* a = client fd JavaScript gave with groupDial, b = conn id */
  EV_REFUSED = 4,     /* a connection over the group's cap was refused */
  EV_ACCEPT_ERROR = 5, /* b = errno (EMFILE...): accepting paused for a moment */
  EV_GROUP_CLOSED = 6,
  EV_DIAL_BROKEN = 7, /* b = errno: the engine could not come back from a namespace */
};

enum kind { W_WAKE, W_LISTEN, W_CONN0, W_CONN1 };
struct watch {
  uint8_t kind;
};

struct pipe_buf {
  int r, w;
  uint32_t cap;
};

struct group;

enum cstate { C_DIALING, C_OPEN, C_DEAD };

/* A group has up to MAX_TAILS tails, in slots JavaScript assigns (a bit per slot in a mask). */
#define MAX_TAILS 64
enum balance { B_ROUND_ROBIN = 0, B_LEAST_CONN = 1, B_SOURCE = 2 };

/*
 * One tail: where to dial, its health (set by JavaScript's checks, through a command) and its
 * counters (atomics, read by JavaScript at any time). A slot given a new tail gets a new
 * generation, so that a connection to the old one does not count against the new.
 */
struct tail {
  bool set;
  bool up;
  int ns; /* -1: the engine's own namespace */
  struct sockaddr_storage addr;
  socklen_t len;
  /* a unix tail named by a path: looked up at each dial inside root (else -1 and NULL) */
  int root;
  char *path;
  uint8_t proxy; /* the PROXY protocol version each connection starts with (0: none) */
  uint32_t gen;
  uint64_t key; /* a hash of the address, for source affinity */
  int64_t open, total, failed, ok_at, failed_at;
};

struct conn {
  struct watch w[2]; /* epoll data: &w[side] */
  int fd[2];         /* 0: client, 1: upstream */
  struct pipe_buf *p[2]; /* p[d] carries fd[d] -> fd[!d] */
  uint32_t inpipe[2];
  uint64_t bytes[2];
  /* for the access log (only when the group reports ends): when it began, who the client is */
  struct timespec t0;
  uint8_t peer[16];
  uint16_t peer_port;
  uint8_t peer_family;
  uint8_t state, eof[2], shut[2];
  bool from_js; /* given by groupDial: JavaScript is told when it is connected */
  uint32_t id;
  struct group *g;
  int8_t tail;       /* the slot dialed (-1: none) */
  uint32_t tail_gen; /* its generation then */
  uint64_t tried;    /* slots dialed for this connection, one bit each */
  /* the PROXY header still to send upstream before any client byte (NULL: none, or sent) */
  uint8_t *hdr;
  uint16_t hdr_len, hdr_off;
  uint64_t src;      /* a hash of the client's address (source affinity) */
  struct conn *prev, *next, *dead_next;
};

struct group {
  struct watch w; /* the listening socket */
  int32_t id;
  int32_t max;
  bool report; /* tell JavaScript of every connection's end (else only the counters) */
  /* read by JavaScript at any time (atomics); last: ms since the epoch of the last byte moved
   * or connection accepted, to the engine loop's turn (a coarse clock); dial_ok_at and
   * dial_failed_at: when a dial to the tail last succeeded and last failed (the tail's health) */
  int64_t open, total, refused, up, down, dial_failed, last, dial_ok_at, dial_failed_at;
  /* engine thread only */
  int lfd;
  bool paused, closing;
  struct conn *conns;
  struct tail tails[MAX_TAILS];
  int ntails;     /* one past the highest slot ever set */
  uint32_t rr;    /* round-robin's next slot */
  uint8_t policy; /* enum balance */
  char *head_name; /* a unix head's address as the user named it (PROXY v2), or NULL */
  struct group *paused_next;
};

enum cmd_type {
  CMD_LISTEN,
  CMD_UNLISTEN,
  CMD_TAIL,
  CMD_HEALTH,
  CMD_BALANCE,
  CMD_DIAL,
  CMD_PAIR,
  CMD_CLOSE_CONN,
  CMD_CLOSE_GROUP,
  CMD_STOP
};

struct cmd {
  struct cmd *next;
  enum cmd_type type;
  struct group *g;
  int32_t arg; /* the one number of LISTEN and DIAL (an fd), CLOSE_CONN (a connection id), TAIL
                  and HEALTH (a slot), BALANCE (a policy) */
  int fd[2];
  int ns;
  uint32_t id;
  bool has_tail;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int root;   /* CMD_TAIL of a unix path: the filesystem root (the engine's own dup) */
  char *path; /* and the path in it */
  uint8_t proxy;
};

/* (80 bytes: JavaScript reads them as 10 doubles, the address as bytes 64..79) */
struct ev {
  double v[8];
  uint8_t addr[16];
};
_Static_assert(sizeof(struct ev) == 80, "an event is 10 doubles to JavaScript");

struct batch {
  size_t n;
  struct group **freed; /* groups closed in this batch: freed on the main thread */
  size_t nfreed;
  struct ev e[];
};

struct engine {
  struct watch wake_w; /* epoll data for the eventfd */
  int ep, wake, home;
  pthread_t th;
  pthread_mutex_t mu;
  struct cmd *cmds, *cmds_tail;
  napi_threadsafe_function tsfn;
  napi_ref on_events;
  uint32_t next_id; /* atomic */
  bool stopped;     /* main thread */
  /* engine thread only */
  struct ev *evs;
  size_t nev, evcap;
  struct group **freed;
  size_t nfreed, freedcap;
  struct pipe_buf *pool[PIPE_POOL];
  int npool;
  struct conn *dead;
  struct group *paused;
  struct timespec resume_at; /* when paused listeners accept again */
  int64_t now_ms;            /* wall clock at this loop turn (CLOCK_REALTIME_COARSE) */
  bool dial_broken, stopping;
};

/* ---- events ---------------------------------------------------------------------------- */

static void emit(struct engine *e, int type, struct group *g, double a, double b, double c, double d) {
  if (e->nev == e->evcap) {
    size_t cap = e->evcap ? e->evcap * 2 : 64;
    struct ev *n = realloc(e->evs, cap * sizeof *n);
    if (!n) return; /* out of memory: the event is lost, the data path goes on */
    e->evs = n;
    e->evcap = cap;
  }
  struct ev *v = &e->evs[e->nev++];
  v->v[0] = type;
  v->v[1] = g ? g->id : 0;
  v->v[2] = a;
  v->v[3] = b;
  v->v[4] = c;
  v->v[5] = d;
  v->v[6] = 0;
  v->v[7] = 0;
  memset(v->addr, 0, sizeof v->addr);
}

static double ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A connection ended: its counts, and for the access log how long it was open and who. */
static void emit_closed(struct engine *e, struct conn *c, int err) {
  emit(e, EV_CLOSED, c->g, c->id, (double)c->bytes[0], (double)c->bytes[1], err);
  if (e->nev == 0 || e->evs[e->nev - 1].v[0] != EV_CLOSED) return; /* (lost: out of memory) */
  struct ev *v = &e->evs[e->nev - 1];
  v->v[6] = ms_since(&c->t0);
  v->v[7] = c->peer_family ? (double)c->peer_port + 65536.0 * c->peer_family : 0;
  memcpy(v->addr, c->peer, sizeof v->addr);
}

/* Note the client's address (compact: family, bytes, port), for the access log and source affinity. */
static void note_peer(struct conn *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->fd[0], (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memcpy(c->peer, &in->sin_addr, 4);
    c->peer_port = ntohs(in->sin_port);
    c->peer_family = 4;
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memcpy(c->peer, &in6->sin6_addr, 16);
    c->peer_port = ntohs(in6->sin6_port);
    c->peer_family = 6;
  }
}

/* Send what this loop turn produced to JavaScript, in one call. */
static void flush(struct engine *e) {
  if (e->nev == 0 && e->nfreed == 0) return;
  struct batch *b = malloc(sizeof *b + e->nev * sizeof(struct ev));
  if (!b) return;
  b->n = e->nev;
  memcpy(b->e, e->evs, e->nev * sizeof(struct ev));
  b->freed = NULL;
  b->nfreed = e->nfreed;
  if (e->nfreed) {
    b->freed = malloc(e->nfreed * sizeof *b->freed);
    if (b->freed) memcpy(b->freed, e->freed, e->nfreed * sizeof *b->freed);
    else b->nfreed = 0;
  }
  e->nev = 0;
  e->nfreed = 0;
  if (napi_call_threadsafe_function(e->tsfn, b, napi_tsfn_blocking) != napi_ok) {
    free(b->freed);
    free(b);
  }
}

static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  struct batch *b = data;
  if (env != NULL && js_cb != NULL && b->n > 0) {
    napi_value ab, arr, undef;
    void *mem = NULL;
    if (napi_create_arraybuffer(env, b->n * sizeof(struct ev), &mem, &ab) == napi_ok) {
      memcpy(mem, b->e, b->n * sizeof(struct ev));
      if (napi_create_typedarray(env, napi_float64_array, b->n * (sizeof(struct ev) / sizeof(double)), ab, 0,
                                 &arr) == napi_ok &&
          napi_get_undefined(env, &undef) == napi_ok)
        napi_call_function(env, undef, js_cb, 1, &arr, NULL);
    }
  }
  /* JavaScript forgets a group when it asks to close it; the memory goes after its last event. */
  for (size_t i = 0; i < b->nfreed; i++) free(b->freed[i]);
  free(b->freed);
  free(b);
}

/* ---- pipes ----------------------------------------------------------------------------- */

static struct pipe_buf *pipe_get(struct engine *e) {
  if (e->npool > 0) return e->pool[--e->npool];
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return NULL;
  struct pipe_buf *p = malloc(sizeof *p);
  if (!p) {
    close(fds[0]);
    close(fds[1]);
    return NULL;
  }
  p->r = fds[0];
  p->w = fds[1];
  int cap = fcntl(p->w, F_GETPIPE_SZ);
  p->cap = cap > 0 ? (uint32_t)cap : 65536;
  return p;
}

static void pipe_drop(struct pipe_buf *p) {
  close(p->r);
  close(p->w);
  free(p);
}

/* Only an empty pipe goes back to the pool: one with bytes in it would leak them to another. */
static void pipe_put(struct engine *e, struct pipe_buf *p, bool empty) {
  if (empty && e->npool < PIPE_POOL) e->pool[e->npool++] = p;
  else pipe_drop(p);
}

/* ---- connections ----------------------------------------------------------------------- */

static struct conn *conn_of(struct watch *w) {
  int side = w->kind - W_CONN0;
  return (struct conn *)((char *)(w - side) - offsetof(struct conn, w));
}

static void reset_close(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static void unlink_conn(struct conn *c) {
  if (c->prev) c->prev->next = c->next;
  else c->g->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void conn_dial_tail(struct engine *e, struct conn *c, int i);
static uint64_t hash_bytes(const uint8_t *p, size_t n);

static void release_open(struct group *g) { __atomic_sub_fetch(&g->open, 1, __ATOMIC_RELAXED); }

/* A connection to a tail ends (or never got there): the tail has one fewer open. */
static void release_tail(struct conn *c) {
  if (c->tail < 0 || c->state != C_DEAD) return;
  struct tail *t = &c->g->tails[c->tail];
  if (t->gen == c->tail_gen && c->tail_gen != 0) __atomic_sub_fetch(&t->open, 1, __ATOMIC_RELAXED);
  c->tail = -1;
}

/* End a connection: close both sockets (resetting with `rst`), report, free after this turn. */
static void conn_end(struct engine *e, struct conn *c, int err, bool rst) {
  if (c->state == C_DEAD) return;
  for (int s = 0; s < 2; s++) {
    if (c->fd[s] < 0) continue;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd[s], NULL);
    if (rst) reset_close(c->fd[s]);
    else close(c->fd[s]);
    c->fd[s] = -1;
    if (c->p[s]) pipe_put(e, c->p[s], c->inpipe[s] == 0);
    c->p[s] = NULL;
  }
  free(c->hdr);
  c->hdr = NULL;
  c->state = C_DEAD;
  unlink_conn(c);
  release_open(c->g);
  release_tail(c);
  /* Without a listener in JavaScript a connection's end wakes nobody: the counters say it. */
  if (c->g->report) emit_closed(e, c, err);
  c->dead_next = e->dead;
  e->dead = c;
}

/* The client goes back to JavaScript untouched (no byte read); the upstream is closed. */
static void conn_handoff(struct engine *e, struct conn *c, int err) {
  epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd[0], NULL);
  if (c->fd[1] >= 0) {
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd[1], NULL);
    close(c->fd[1]);
  }
  /* still counted in g->open: JavaScript holds it now, and releases or dials it again */
  int fd = c->fd[0];
  if (err) {
    __atomic_add_fetch(&c->g->dial_failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&c->g->dial_failed_at, e->now_ms, __ATOMIC_RELAXED);
  }
  emit(e, EV_HANDOFF, c->g, fd, err, 0, 0);
  free(c->hdr);
  c->hdr = NULL;
  c->fd[0] = c->fd[1] = -1;
  c->state = C_DEAD;
  unlink_conn(c);
  c->dead_next = e->dead;
  e->dead = c;
}

/* A failure on `side`: a reset is passed on as a reset, anything else as a close. */
static void conn_fail(struct engine *e, struct conn *c, int err) {
  conn_end(e, c, err, err == ECONNRESET || err == EPIPE);
}

/* Move bytes fd[d] -> fd[!d] until one of them would block. */
static void pump(struct engine *e, struct conn *c, int d) {
  int src = c->fd[d], dst = c->fd[!d];
  /* the PROXY header goes upstream before the first client byte */
  while (d == 0 && c->hdr && c->state == C_OPEN) {
    ssize_t n = send(dst, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN) return; /* EPOLLOUT on the upstream brings us back */
      if (errno == EINTR) continue;
      return conn_fail(e, c, errno);
    }
    c->hdr_off += (uint16_t)n;
    if (c->hdr_off == c->hdr_len) {
      free(c->hdr);
      c->hdr = NULL;
    }
  }
  for (;;) {
    if (c->state != C_OPEN) return;
    if (c->inpipe[d] > 0) {
      ssize_t n = splice(c->p[d]->r, NULL, dst, NULL, c->inpipe[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) {
        if (errno == EAGAIN) return; /* the writer is full: EPOLLOUT on dst resumes */
        if (errno == EINTR) continue;
        return conn_fail(e, c, errno);
      }
      c->inpipe[d] -= (uint32_t)n;
      c->bytes[d] += (uint64_t)n;
      __atomic_add_fetch(d == 0 ? &c->g->up : &c->g->down, n, __ATOMIC_RELAXED);
      __atomic_store_n(&c->g->last, e->now_ms, __ATOMIC_RELAXED);
      continue;
    }
    if (c->eof[d]) {
      if (c->p[d]) {
        pipe_put(e, c->p[d], true);
        c->p[d] = NULL;
      }
      if (!c->shut[d]) {
        c->shut[d] = 1;
        shutdown(dst, SHUT_WR);
      }
      if (c->shut[!d]) conn_end(e, c, 0, false);
      return;
    }
    if (!c->p[d] && !(c->p[d] = pipe_get(e))) return conn_end(e, c, ENOMEM, true);
    struct pipe_buf *p = c->p[d];
    ssize_t n = splice(src, NULL, p->w, NULL, p->cap, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      c->eof[d] = 1;
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        /* nothing to read: an idle direction holds no pipe */
        pipe_put(e, p, true);
        c->p[d] = NULL;
        return;
      }
      return conn_fail(e, c, errno);
    }
    c->inpipe[d] = (uint32_t)n;
    if ((uint32_t)n == p->cap && p->cap < PIPE_BIG) {
      /* a full read: bulk data, so a bigger pipe means fewer turns per byte */
      int cap = fcntl(p->w, F_SETPIPE_SZ, PIPE_BIG);
      if (cap > 0) p->cap = (uint32_t)cap;
    }
  }
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static bool watch_fd(struct engine *e, int fd, struct watch *w) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = w};
  return epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) == 0;
}

static struct conn *conn_new(struct engine *e, struct group *g, int client) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->w[0].kind = W_CONN0;
  c->w[1].kind = W_CONN1;
  c->fd[0] = client;
  c->fd[1] = -1;
  c->g = g;
  c->tail = -1;
  c->id = __atomic_add_fetch(&e->next_id, 1, __ATOMIC_RELAXED);
  /* the client's address, read once, for whoever needs it: the access log, source affinity */
  if (g->report) clock_gettime(CLOCK_MONOTONIC, &c->t0);
  if (g->report || g->policy == B_SOURCE) note_peer(c);
  if (g->policy == B_SOURCE && c->peer_family)
    c->src = hash_bytes(c->peer, c->peer_family == 4 ? 4 : 16); /* not the port: one client, one tail */
  __atomic_store_n(&g->last, e->now_ms, __ATOMIC_RELAXED);
  c->next = g->conns;
  if (g->conns) g->conns->prev = c;
  g->conns = c;
  return c;
}

/* A socket for a tail, made in the tail's namespace; -1 with errno set. */
static int tail_socket(struct engine *e, struct group *g, struct tail *t) {
  /* (a unix path is the filesystem's: a socket from any namespace reaches it) */
  if (t->ns < 0 || t->path) return socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (e->dial_broken) {
    errno = EAGAIN;
    return -1;
  }
  if (setns(t->ns, CLONE_NEWNET) != 0) return -1;
  int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int saved = errno;
  if (setns(e->home, CLONE_NEWNET) != 0) {
    /* Stranded in another namespace: never make a socket here again. */
    e->dial_broken = true;
    emit(e, EV_DIAL_BROKEN, g, 0, errno, 0, 0);
  }
  errno = saved;
  return fd;
}

/* 64-bit mixing (splitmix64's finaliser): spreads nearby inputs over the whole range. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return mix64(h);
}

/* May connection c try slot i (set, not tried yet, and healthy unless `any`)? */
static bool candidate(struct group *g, struct conn *c, int i, bool any) {
  struct tail *t = &g->tails[i];
  return t->set && !(c->tried & (1ULL << i)) && (any || t->up);
}

/*
 * The slot a connection dials next, by the group's policy, among healthy tails it has not
 * tried; when none is healthy, among the others (a stale check must not refuse a client a
 * tail that works). -1 when every tail was tried.
 */
static int pick_tail(struct group *g, struct conn *c) {
  int n = g->ntails;
  for (int pass = 0; pass < 2; pass++) {
    bool any = pass == 1;
    int best = -1;
    int64_t best_open = INT64_MAX;
    uint64_t best_score = 0;
    for (int k = 0; k < n; k++) {
      int i = (int)((g->rr + (uint32_t)k) % (uint32_t)n);
      if (!candidate(g, c, i, any)) continue;
      if (g->policy == B_ROUND_ROBIN) {
        g->rr = (uint32_t)i + 1;
        return i;
      }
      if (g->policy == B_LEAST_CONN) {
        int64_t open = __atomic_load_n(&g->tails[i].open, __ATOMIC_RELAXED);
        if (open < best_open) best_open = open, best = i;
      } else {
        /* rendezvous hashing: a client keeps its tail while that tail stays */
        uint64_t score = mix64(c->src ^ g->tails[i].key);
        if (best < 0 || score > best_score) best_score = score, best = i;
      }
    }
    if (best >= 0) {
      if (g->policy == B_LEAST_CONN) g->rr = (uint32_t)best + 1; /* ties go round */
      return best;
    }
  }
  return -1;
}

static void dial_done(struct engine *e, struct conn *c);

/*
 * The PROXY header (`version`) for this connection, from the client's address and the
 * head's (the accepted socket's two ends), kept until pump() has sent it. Out of memory: the
 * connection goes on without it, and the tail (which expects one) refuses it: an error, not
 * a lie.
 */
static void proxy_header(struct conn *c, int version) {
  struct sockaddr_storage src, dst;
  socklen_t slen = sizeof src, dlen = sizeof dst;
  memset(&src, 0, sizeof src);
  memset(&dst, 0, sizeof dst);
  if (getpeername(c->fd[0], (struct sockaddr *)&src, &slen) != 0 ||
      getsockname(c->fd[0], (struct sockaddr *)&dst, &dlen) != 0)
    src.ss_family = dst.ss_family = AF_UNSPEC; /* v1 UNKNOWN, v2 unspecified */
  uint8_t buf[WH_PROXY_MAX];
  size_t n = wh_proxy_header(version, &src, slen, &dst, dlen, c->g->head_name, buf);
  free(c->hdr);
  c->hdr = NULL;
  if (n == 0 || !(c->hdr = malloc(n))) return;
  memcpy(c->hdr, buf, n);
  c->hdr_len = (uint16_t)n;
  c->hdr_off = 0;
}

/* A dial failed: count it on the tail, and try the next one (else hand the client back). */
static void dial_failed(struct engine *e, struct conn *c, int err) {
  struct group *g = c->g;
  if (c->tail >= 0) {
    struct tail *t = &g->tails[c->tail];
    __atomic_add_fetch(&t->failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&t->failed_at, e->now_ms, __ATOMIC_RELAXED);
    c->tail = -1;
  }
  if (c->fd[1] >= 0) {
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd[1], NULL);
    close(c->fd[1]);
    c->fd[1] = -1;
  }
  int next = pick_tail(g, c);
  if (next < 0 || e->dial_broken) return conn_handoff(e, c, err);
  __atomic_add_fetch(&g->dial_failed, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&g->dial_failed_at, e->now_ms, __ATOMIC_RELAXED);
  conn_dial_tail(e, c, next);
}

/* Dial slot i for connection c (client already in c->fd[0]). */
static void conn_dial_tail(struct engine *e, struct conn *c, int i) {
  struct tail *t = &c->g->tails[i];
  c->tried |= 1ULL << i;
  c->tail = (int8_t)i;
  int up = tail_socket(e, c->g, t);
  if (up < 0) return dial_failed(e, c, errno);
  nodelay(up);
  c->fd[1] = up;
  c->state = C_DIALING;
  /* a unix connect is done at once (or refused, or EAGAIN: the listener's backlog is full) */
  int rc = t->path ? wh_unix_connect_in(up, t->root, t->path) : connect(up, (struct sockaddr *)&t->addr, t->len);
  if (rc != 0 && errno != EINPROGRESS) return dial_failed(e, c, errno);
  if (!watch_fd(e, up, &c->w[1])) return dial_failed(e, c, errno);
  if (rc == 0) dial_done(e, c);
}

/* Start dialing a tail for connection c: the policy's pick, failing over to the next. */
static void conn_dial(struct engine *e, struct conn *c) {
  c->tried = 0;
  int i = e->dial_broken ? -1 : pick_tail(c->g, c);
  if (i < 0) return conn_handoff(e, c, 0);
  conn_dial_tail(e, c, i);
}

/* The upstream of a dialing connection became writable (connected) or failed. */
static void dial_done(struct engine *e, struct conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err) return dial_failed(e, c, err);
  c->state = C_OPEN;
  __atomic_store_n(&c->g->dial_ok_at, e->now_ms, __ATOMIC_RELAXED);
  struct tail *t = &c->g->tails[c->tail];
  c->tail_gen = t->gen;
  __atomic_add_fetch(&t->open, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->total, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&t->ok_at, e->now_ms, __ATOMIC_RELAXED);
  if (t->proxy) proxy_header(c, t->proxy);
  if (c->from_js) emit(e, EV_DIALED, c->g, c->fd[0], c->id, 0, 0);
  pump(e, c, 0);
  pump(e, c, 1);
}

static void conn_event(struct engine *e, struct watch *w, uint32_t events) {
  struct conn *c = conn_of(w);
  int s = w->kind - W_CONN0;
  if (c->state == C_DEAD) return;
  if (c->state == C_DIALING) {
    /* the client waits unread until its upstream is there */
    if (s == 1 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) dial_done(e, c);
    return;
  }
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd[s], SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) return conn_fail(e, c, err);
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pump(e, c, s);
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) pump(e, c, !s);
}

/* ---- listeners ------------------------------------------------------------------------- */

static bool acquire_open(struct group *g) {
  int64_t cur = __atomic_load_n(&g->open, __ATOMIC_RELAXED);
  do {
    if (cur >= g->max) return false;
  } while (!__atomic_compare_exchange_n(&g->open, &cur, cur + 1, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
  __atomic_add_fetch(&g->total, 1, __ATOMIC_RELAXED);
  return true;
}

static void pause_listener(struct engine *e, struct group *g) {
  if (g->paused) return;
  clock_gettime(CLOCK_MONOTONIC, &e->resume_at);
  e->resume_at.tv_nsec += 100 * 1000000L; /* a tenth of a second */
  if (e->resume_at.tv_nsec >= 1000000000L) {
    e->resume_at.tv_sec++;
    e->resume_at.tv_nsec -= 1000000000L;
  }
  struct epoll_event ev = {.events = 0, .data.ptr = &g->w};
  epoll_ctl(e->ep, EPOLL_CTL_MOD, g->lfd, &ev);
  g->paused = true;
  g->paused_next = e->paused;
  e->paused = g;
}

static void resume_listeners(struct engine *e) {
  for (struct group *g = e->paused; g; g = g->paused_next) {
    g->paused = false;
    if (g->lfd < 0) continue;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g->w};
    epoll_ctl(e->ep, EPOLL_CTL_MOD, g->lfd, &ev);
  }
  e->paused = NULL;
}

static void accept_some(struct engine *e, struct group *g) {
  for (int i = 0; i < ACCEPT_BATCH && g->lfd >= 0; i++) {
    int fd = accept4(g->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      /* out of fds or memory: stop accepting for a moment instead of spinning */
      emit(e, EV_ACCEPT_ERROR, g, 0, errno, 0, 0);
      pause_listener(e, g);
      return;
    }
    if (!acquire_open(g)) {
      __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
      emit(e, EV_REFUSED, g, 0, 0, 0, 0);
      reset_close(fd); /* refused at once: the client sees a reset, not a hang */
      continue;
    }
    nodelay(fd);
    struct conn *c = conn_new(e, g, fd);
    if (!c || !watch_fd(e, fd, &c->w[0])) {
      if (c) {
        unlink_conn(c);
        free(c);
      }
      release_open(g);
      reset_close(fd);
      continue;
    }
    conn_dial(e, c);
  }
}

/* ---- commands -------------------------------------------------------------------------- */

/* Stop accepting: the port is free at once, open connections go on. */
static void unlisten(struct engine *e, struct group *g) {
  if (g->lfd < 0) return;
  epoll_ctl(e->ep, EPOLL_CTL_DEL, g->lfd, NULL);
  close(g->lfd);
  g->lfd = -1;
}

static void group_close(struct engine *e, struct group *g) {
  unlisten(e, g);
  while (g->conns) {
    struct conn *c = g->conns;
    if (c->state == C_DIALING) conn_end(e, c, ECONNABORTED, false);
    else conn_end(e, c, 0, false);
  }
  for (int i = 0; i < g->ntails; i++) {
    struct tail *t = &g->tails[i];
    if (t->set && t->ns >= 0) close(t->ns);
    if (t->set && t->root >= 0) close(t->root);
    free(t->path);
    t->path = NULL;
  }
  g->ntails = 0;
  free(g->head_name);
  g->head_name = NULL;
  g->closing = true;
  emit(e, EV_GROUP_CLOSED, g, 0, 0, 0, 0);
  /* freed by the main thread after this turn's events are delivered */
  if (e->nfreed == e->freedcap) {
    size_t cap = e->freedcap ? e->freedcap * 2 : 16;
    struct group **n = realloc(e->freed, cap * sizeof *n);
    if (!n) return; /* leak the small struct rather than free it under JavaScript */
    e->freed = n;
    e->freedcap = cap;
  }
  e->freed[e->nfreed++] = g;
}

static void run_cmd(struct engine *e, struct cmd *c) {
  struct group *g = c->g;
  switch (c->type) {
  case CMD_LISTEN: {
    g->lfd = c->arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g->w};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, g->lfd, &ev) != 0) {
      emit(e, EV_ACCEPT_ERROR, g, 0, errno, 0, 0);
    }
    break;
  }
  case CMD_UNLISTEN:
    unlisten(e, g);
    break;
  case CMD_TAIL: {
    /* a slot gets a tail (or loses it): its counters start again, connections to the old
       one no longer count against it */
    struct tail *t = &g->tails[c->arg];
    if (t->set && t->ns >= 0) close(t->ns);
    if (t->set && t->root >= 0) close(t->root);
    free(t->path);
    uint32_t gen = t->gen + 1;
    memset(t, 0, sizeof *t);
    t->gen = gen ? gen : 1;
    t->ns = t->root = -1;
    if (c->has_tail) {
      t->set = true;
      t->up = true; /* until a check says otherwise */
      /* the slot owns the command's fds and path from here on */
      t->ns = c->ns;
      t->root = c->root;
      t->path = c->path;
      c->ns = c->root = -1;
      c->path = NULL;
      t->addr = c->addr;
      t->len = c->addr_len;
      t->proxy = c->proxy;
      /* (a unix path's address is its path: two path tails must not hash alike) */
      t->key = t->path ? hash_bytes((uint8_t *)t->path, strlen(t->path))
                       : hash_bytes((uint8_t *)&c->addr, c->addr_len);
      if (c->arg >= g->ntails) g->ntails = c->arg + 1;
    }
    break;
  }
  case CMD_HEALTH:
    if (g->tails[c->arg].set) g->tails[c->arg].up = c->has_tail;
    break;
  case CMD_BALANCE:
    g->policy = (uint8_t)c->arg;
    break;
  case CMD_DIAL: {
    struct conn *cn = conn_new(e, g, c->arg);
    if (!cn) {
      emit(e, EV_HANDOFF, g, c->arg, ENOMEM, 0, 0);
      break;
    }
    cn->from_js = true;
    if (!watch_fd(e, cn->fd[0], &cn->w[0])) {
      conn_handoff(e, cn, errno);
      break;
    }
    conn_dial(e, cn);
    break;
  }
  case CMD_PAIR: {
    struct conn *cn = conn_new(e, g, c->fd[0]);
    if (!cn) {
      close(c->fd[0]);
      close(c->fd[1]);
      release_open(g);
      if (g->report) emit(e, EV_CLOSED, g, c->id, 0, 0, ENOMEM);
      break;
    }
    cn->id = c->id;
    cn->fd[1] = c->fd[1];
    cn->state = C_OPEN;
    nodelay(cn->fd[0]);
    nodelay(cn->fd[1]);
    if (!watch_fd(e, cn->fd[0], &cn->w[0]) || !watch_fd(e, cn->fd[1], &cn->w[1])) {
      conn_end(e, cn, errno, false);
      break;
    }
    pump(e, cn, 0);
    pump(e, cn, 1);
    break;
  }
  case CMD_CLOSE_CONN:
    for (struct conn *cn = g->conns; cn; cn = cn->next)
      if (cn->id == (uint32_t)c->arg) {
        conn_end(e, cn, ECONNABORTED, false);
        break;
      }
    break;
  case CMD_CLOSE_GROUP:
    group_close(e, g);
    break;
  case CMD_STOP:
    e->stopping = true;
    break;
  }
}

static void run_cmds(struct engine *e) {
  uint64_t n;
  if (read(e->wake, &n, sizeof n) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&e->mu);
  struct cmd *c = e->cmds;
  e->cmds = e->cmds_tail = NULL;
  pthread_mutex_unlock(&e->mu);
  while (c) {
    struct cmd *next = c->next;
    run_cmd(e, c);
    free(c);
    c = next;
  }
}

static void *engine_main(void *arg) {
  struct engine *e = arg;
  struct epoll_event evs[EVENTS];
  while (!e->stopping) {
    int timeout = -1;
    if (e->paused) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (e->resume_at.tv_sec - now.tv_sec) * 1000 + (e->resume_at.tv_nsec - now.tv_nsec) / 1000000;
      if (ms <= 0) resume_listeners(e);
      else timeout = (int)ms;
    }
    int n = epoll_wait(e->ep, evs, EVENTS, timeout);
    if (n < 0 && errno != EINTR) break;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    e->now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (int i = 0; i < n; i++) {
      struct watch *w = evs[i].data.ptr;
      if (w->kind == W_WAKE) run_cmds(e);
      else if (w->kind == W_LISTEN) accept_some(e, (struct group *)((char *)w - offsetof(struct group, w)));
      else conn_event(e, w, evs[i].events);
    }
    /* connections that ended in this turn: later events of the same turn saw C_DEAD */
    while (e->dead) {
      struct conn *c = e->dead;
      e->dead = c->dead_next;
      free(c);
    }
    flush(e);
  }
  return NULL;
}

/* ---- the JavaScript face ---------------------------------------------------------------- */

/* A command that will never run: what it owns goes with it. */
static void cmd_discard(struct cmd *c) {
  if (c->ns >= 0) close(c->ns);
  if (c->root >= 0) close(c->root);
  free(c->path);
  free(c);
}

static bool send_cmd(napi_env env, struct engine *e, struct cmd *c) {
  if (e->stopped) {
    cmd_discard(c);
    napi_throw_error(env, "ESHUTDOWN", "the engine has stopped");
    return false;
  }
  c->next = NULL;
  pthread_mutex_lock(&e->mu);
  if (e->cmds_tail) e->cmds_tail->next = c;
  else e->cmds = c;
  e->cmds_tail = c;
  pthread_mutex_unlock(&e->mu);
  uint64_t one = 1;
  if (write(e->wake, &one, sizeof one) < 0 && errno != EAGAIN) {
    wh_throw_errno(env, errno, "wake the engine");
    return false;
  }
  return true;
}

static struct cmd *new_cmd(napi_env env, enum cmd_type type, struct group *g) {
  struct cmd *c = calloc(1, sizeof *c);
  if (!c) napi_throw_error(env, "ENOMEM", "out of memory");
  else {
    c->type = type;
    c->g = g;
    c->fd[0] = c->fd[1] = c->ns = c->root = -1;
  }
  return c;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  return u;
}

/* Read (engine, group) from the first two arguments. */
static bool engine_group_args(napi_env env, napi_value *argv, struct engine **e, struct group **g) {
  return wh_ptr_arg(env, argv[0], "engine", (void **)e) && wh_ptr_arg(env, argv[1], "group", (void **)g);
}

/* A command that takes (engine, group) and, when int_name is given, one number. */
static napi_value group_cmd(napi_env env, napi_callback_info info, enum cmd_type type, const char *int_name) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t arg = -1;
  if (argc < (int_name ? 3u : 2u) || !engine_group_args(env, argv, &e, &g) ||
      (int_name && !wh_int_arg(env, argv[2], int_name, &arg)))
    return NULL;
  if (e->stopped && (type == CMD_UNLISTEN || type == CMD_CLOSE_GROUP))
    return undefined(env); /* the engine has let go of everything already */
  struct cmd *c = new_cmd(env, type, g);
  if (!c) return NULL;
  c->arg = arg;
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

static napi_value engine_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name, handle;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  if (argc < 1 || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "engineStart(onEvents)");
    return NULL;
  }
  struct engine *e = calloc(1, sizeof *e);
  if (!e) return wh_throw_errno(env, ENOMEM, "engine");
  e->wake_w.kind = W_WAKE;
  e->ep = epoll_create1(EPOLL_CLOEXEC);
  e->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int err = errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->wake_w};
  if (e->ep < 0 || e->wake < 0 || e->home < 0 || epoll_ctl(e->ep, EPOLL_CTL_ADD, e->wake, &ev) != 0) {
    err = errno ? errno : err;
    goto fail;
  }
  pthread_mutex_init(&e->mu, NULL);
  NAPI_CALL(env, napi_create_string_utf8(env, "wormhole-engine", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, e, deliver,
                                      &e->tsfn) != napi_ok) {
    err = EINVAL;
    goto fail;
  }
  /* The engine never keeps the daemon alive by itself. */
  napi_unref_threadsafe_function(env, e->tsfn);
  err = pthread_create(&e->th, NULL, engine_main, e);
  if (err != 0) {
    napi_release_threadsafe_function(e->tsfn, napi_tsfn_abort);
    goto fail;
  }
  NAPI_CALL(env, napi_create_external(env, e, NULL, NULL, &handle));
  return handle;
fail:
  if (e->ep >= 0) close(e->ep);
  if (e->wake >= 0) close(e->wake);
  if (e->home >= 0) close(e->home);
  free(e);
  return wh_throw_errno(env, err, "start the engine");
}

static napi_value engine_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e)) return NULL;
  if (e->stopped) return undefined(env);
  struct cmd *c = new_cmd(env, CMD_STOP, NULL);
  if (!c || !send_cmd(env, e, c)) return NULL;
  e->stopped = true;
  pthread_join(e->th, NULL);
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
  /* Connections still open end with the process; the engine's own fds go now. */
  close(e->ep);
  close(e->wake);
  for (int i = 0; i < e->npool; i++) pipe_drop(e->pool[i]);
  e->npool = 0;
  return undefined(env);
}

/* While JavaScript waits on the engine (a group closing), the engine keeps the loop alive. */
static napi_value engine_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  bool on = false;
  if (argc < 2 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e)) return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[1], &on));
  if (!e->stopped) {
    if (on) NAPI_CALL(env, napi_ref_threadsafe_function(env, e->tsfn));
    else NAPI_CALL(env, napi_unref_threadsafe_function(env, e->tsfn));
  }
  return undefined(env);
}

static napi_value group_create(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], handle;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  int32_t id, max;
  bool report = false;
  if (argc < 4 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) || !wh_int_arg(env, argv[1], "id", &id) ||
      !wh_int_arg(env, argv[2], "maxOpen", &max))
    return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[3], &report));
  /* a unix head's address as the user named it, for a PROXY v2 header */
  char name[112] = "";
  if (argc >= 5) {
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[4], &t));
    size_t len = 0;
    if (t == napi_string) NAPI_CALL(env, napi_get_value_string_utf8(env, argv[4], name, sizeof name, &len));
    else if (t != napi_null && t != napi_undefined) {
      napi_throw_type_error(env, "EINVAL", "headName must be a string or null");
      return NULL;
    }
  }
  struct group *g = calloc(1, sizeof *g);
  if (!g) return wh_throw_errno(env, ENOMEM, "group");
  if (name[0] && !(g->head_name = strdup(name))) {
    free(g);
    return wh_throw_errno(env, ENOMEM, "group");
  }
  g->w.kind = W_LISTEN;
  g->id = id;
  g->max = max > 0 ? max : INT32_MAX;
  g->report = report;
  g->lfd = -1;
  NAPI_CALL(env, napi_create_external(env, g, NULL, NULL, &handle));
  return handle;
}

static napi_value group_listen(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_LISTEN, "fd");
}

static napi_value group_unlisten(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_UNLISTEN, NULL);
}

/* A slot argument, checked: 0..MAX_TAILS-1. */
static bool slot_arg(napi_env env, napi_value v, int32_t *slot) {
  if (!wh_int_arg(env, v, "slot", slot)) return false;
  if (*slot < 0 || *slot >= MAX_TAILS) {
    napi_throw_range_error(env, "EINVAL", "a tail slot is 0 to 63");
    return false;
  }
  return true;
}

/*
 * groupTail(engine, group, slot, nsFd, family, address, port, rootFd, proxy): set a slot to a
 * tail: family 4 or 6 with a numeric host and a port, or 0 for unix with "/path" (looked up
 * in rootFd's tree at each dial) or "@name" (abstract, in nsFd's namespace); proxy 0, 1 or 2.
 * (engine, group, slot, null) clears the slot. The engine keeps its own copies of the fds:
 * the caller closes theirs.
 */
static napi_value group_tail(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t slot;
  if (argc < 4 || !engine_group_args(env, argv, &e, &g) || !slot_arg(env, argv[2], &slot)) return NULL;
  struct cmd *c = new_cmd(env, CMD_TAIL, g);
  if (!c) return NULL;
  c->arg = slot;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[3], &t));
  if (t == napi_null) return send_cmd(env, e, c) ? undefined(env) : NULL;
  int32_t ns, family, port, root, proxy;
  char addr[4097];
  size_t alen = 0;
  const char *usage = "groupTail(engine, group, slot, nsFd, family, address, port, rootFd, proxy)";
  if (argc < 9 || !wh_int_arg(env, argv[3], "nsFd", &ns) || !wh_int_arg(env, argv[4], "family", &family) ||
      !wh_int_arg(env, argv[6], "port", &port) || !wh_int_arg(env, argv[7], "rootFd", &root) ||
      !wh_int_arg(env, argv[8], "proxy", &proxy) ||
      napi_get_value_string_utf8(env, argv[5], addr, sizeof addr, &alen) != napi_ok || proxy < 0 || proxy > 2) {
    free(c);
    if (!wh_exception_pending(env)) napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  c->proxy = (uint8_t)proxy;
  if (family == 0) {
    /* unix: an abstract name is an address; a path is looked up at each dial */
    c->addr.ss_family = AF_UNIX;
    c->addr_len = sizeof(sa_family_t);
    if (addr[0] == '@') {
      if (!wh_unix_abstract(addr + 1, (struct sockaddr_un *)&c->addr, &c->addr_len)) {
        free(c);
        napi_throw_type_error(env, "EINVAL", "an abstract name has 1 to 107 bytes");
        return NULL;
      }
    } else if (addr[0] != '/' || root < 0 || !(c->path = strdup(addr))) {
      free(c);
      napi_throw_type_error(env, "EINVAL", "a unix tail is @name, or /path with a root fd");
      return NULL;
    }
  } else if (port < 1 || port > 65535 ||
             !wh_sockaddr(family == 6 ? AF_INET6 : AF_INET, addr, port, &c->addr, &c->addr_len)) {
    free(c);
    napi_throw_type_error(env, "EINVAL", "host must be a numeric IP address of the given family, port 1-65535");
    return NULL;
  }
  if ((ns >= 0 && (c->ns = fcntl(ns, F_DUPFD_CLOEXEC, 0)) < 0) ||
      (c->path && (c->root = fcntl(root, F_DUPFD_CLOEXEC, 0)) < 0)) {
    int err = errno;
    cmd_discard(c);
    return wh_throw_errno(env, err, "dup the tail's fds");
  }
  c->has_tail = true;
  if (!send_cmd(env, e, c)) return NULL;
  return undefined(env);
}

/* groupHealth(engine, group, slot, up): a check passed or failed. */
static napi_value group_health(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t slot;
  bool up = false;
  if (argc < 4 || !engine_group_args(env, argv, &e, &g) || !slot_arg(env, argv[2], &slot)) return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[3], &up));
  struct cmd *c = new_cmd(env, CMD_HEALTH, g);
  if (!c) return NULL;
  c->arg = slot;
  c->has_tail = up;
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

/* groupBalance(engine, group, policy): 0 round-robin, 1 least-conn, 2 source. */
static napi_value group_balance(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_BALANCE, "policy");
}

/* groupTailStats(group): [open, total, failed, okAt, failedAt, set] per slot up to the last set one. */
static napi_value group_tail_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  int n = __atomic_load_n(&g->ntails, __ATOMIC_RELAXED);
  double *v;
  NAPI_CALL(env, napi_create_arraybuffer(env, (size_t)n * 6 * sizeof(double), (void **)&v, &ab));
  for (int i = 0; i < n; i++) {
    struct tail *t = &g->tails[i];
    v[i * 6 + 0] = (double)__atomic_load_n(&t->open, __ATOMIC_RELAXED);
    v[i * 6 + 1] = (double)__atomic_load_n(&t->total, __ATOMIC_RELAXED);
    v[i * 6 + 2] = (double)__atomic_load_n(&t->failed, __ATOMIC_RELAXED);
    v[i * 6 + 3] = (double)__atomic_load_n(&t->ok_at, __ATOMIC_RELAXED);
    v[i * 6 + 4] = (double)__atomic_load_n(&t->failed_at, __ATOMIC_RELAXED);
    v[i * 6 + 5] = __atomic_load_n(&t->set, __ATOMIC_RELAXED) ? 1 : 0;
  }
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, (size_t)n * 6, ab, 0, &out));
  return out;
}

static napi_value group_dial(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_DIAL, "fd");
}

static napi_value group_pair(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t a, b;
  if (argc < 4 || !engine_group_args(env, argv, &e, &g) || !wh_int_arg(env, argv[2], "fdA", &a) ||
      !wh_int_arg(env, argv[3], "fdB", &b))
    return NULL;
  struct cmd *c = new_cmd(env, CMD_PAIR, g);
  if (!c) return NULL;
  c->fd[0] = fcntl(a, F_DUPFD_CLOEXEC, 0);
  c->fd[1] = fcntl(b, F_DUPFD_CLOEXEC, 0);
  if (c->fd[0] < 0 || c->fd[1] < 0) {
    int err = errno;
    if (c->fd[0] >= 0) close(c->fd[0]);
    if (c->fd[1] >= 0) close(c->fd[1]);
    free(c);
    return wh_throw_errno(env, err, "dup");
  }
  c->id = __atomic_add_fetch(&e->next_id, 1, __ATOMIC_RELAXED);
  uint32_t id = c->id;
  if (!send_cmd(env, e, c)) return NULL;
  NAPI_CALL(env, napi_create_uint32(env, id, &out));
  return out;
}

static napi_value group_acquire(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  bool ok = acquire_open(g);
  if (!ok) __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
  NAPI_CALL(env, napi_get_boolean(env, ok, &out));
  return out;
}

static napi_value group_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  release_open(g);
  return undefined(env);
}

static napi_value group_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  double *v;
  NAPI_CALL(env, napi_create_arraybuffer(env, 9 * sizeof(double), (void **)&v, &ab));
  v[0] = (double)__atomic_load_n(&g->open, __ATOMIC_RELAXED);
  v[1] = (double)__atomic_load_n(&g->total, __ATOMIC_RELAXED);
  v[2] = (double)__atomic_load_n(&g->refused, __ATOMIC_RELAXED);
  v[3] = (double)__atomic_load_n(&g->up, __ATOMIC_RELAXED);
  v[4] = (double)__atomic_load_n(&g->down, __ATOMIC_RELAXED);
  v[5] = (double)__atomic_load_n(&g->dial_failed, __ATOMIC_RELAXED);
  v[6] = (double)__atomic_load_n(&g->last, __ATOMIC_RELAXED);
  v[7] = (double)__atomic_load_n(&g->dial_ok_at, __ATOMIC_RELAXED);
  v[8] = (double)__atomic_load_n(&g->dial_failed_at, __ATOMIC_RELAXED);
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, 9, ab, 0, &out));
  return out;
}

static napi_value conn_close(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_CLOSE_CONN, "id");
}

static napi_value group_close_js(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_CLOSE_GROUP, NULL);
}

napi_value wh_engine_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"engineStart", NULL, engine_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineStop", NULL, engine_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineRef", NULL, engine_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupCreate", NULL, group_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupListen", NULL, group_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupUnlisten", NULL, group_unlisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupTail", NULL, group_tail, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupHealth", NULL, group_health, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupBalance", NULL, group_balance, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupTailStats", NULL, group_tail_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupDial", NULL, group_dial, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupPair", NULL, group_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupAcquire", NULL, group_acquire, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupRelease", NULL, group_release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupStats", NULL, group_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connClose", NULL, conn_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupClose", NULL, group_close_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
