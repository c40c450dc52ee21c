/*
 * conn: one connection through the engine, a client socket (side 0) joined to an upstream
 * socket (side 1) dialed to one of the group's tails.
 *
 * States and transitions (c->state; the loop frees a C_DEAD connection at the end of the turn
 * it died in, so that later events of the same turn find it dead, not freed):
 *
 *   (accepted, listen.c; or given back by JavaScript, groupDial)
 *        |
 *        | `wake-on-data` (conn_wait_data): C_WAITING first, the client unread and not yet
 *        | counted open or active (capped on its own); its first byte (peeked, left for
 *        | pump) goes on below; a close or an error before it ends it quietly: nothing woke
 *        |
 *        | conn_dial: pick a tail (pick.c); none at all ----------------------> HANDOFF
 *        v
 *   C_DIALING   the upstream connects; the client is not read (no byte is taken from it
 *        |      before its upstream is there, so a failed dial can give it back untouched)
 *        |  connect fails, or the tail does not answer within the group's dial timeout
 *        |  (dial_timeouts: ETIMEDOUT, a tail that drops SYNs): dial_failed -> the next
 *        |  tail not yet tried -> C_DIALING again;
 *        |                 every one tried, or the engine cannot dial ---------> HANDOFF
 *        | connected: dial_done (the PROXY header queued, if the tail wants one)
 *        v
 *   C_OPEN      bytes move both ways (pump); per direction d (fd[d] -> fd[!d]):
 *        |        - the PROXY header first, whole, before any client byte (d = 0);
 *        |        - the pipe drained into the writer before the reader is read again
 *        |          (backpressure: at most one pipe per direction is buffered);
 *        |        - EOF from the reader (eof[d]): once the pipe is empty, shutdown(SHUT_WR)
 *        |          the writer (shut[d]: half-close passed on); the other way goes on;
 *        |  both directions shut: a clean end ------------------------------> conn_end
 *        |  an error on either side: conn_fail -> conn_end (ECONNRESET and EPIPE are passed
 *        |  on as a reset, SO_LINGER 0; anything else as a close)
 *        v
 *   C_DEAD      both sockets closed, pipes back in the pool (pipes.c), counts released,
 *               EV_CLOSED sent when the group reports ends
 *
 *   HANDOFF (conn_handoff): the upstream closed, the client fd goes back to JavaScript in
 *   EV_HANDOFF with the dial's errno (0: no tail), still counted open in the group: JavaScript
 *   holds it now (a trigger to run, retries, a peer's leg) and releases it or dials it again.
 *   The connection itself is C_DEAD.
 *
 * A tail is TCP (IPv4, IPv6) or a unix stream socket: an abstract name (made in the tail's
 * namespace, as TCP) or a path, looked up at each dial inside the tail's filesystem root (a
 * container's /proc/PID/root) so that a symlink never leads out of it (unixsock.c). Splice
 * moves bytes on unix sockets alike, and shutdown(SHUT_WR) passes half-close on both kinds.
 * A transparent tail's socket takes the client's address and port before it connects
 * (transparent.c); a unix path tail is never transparent (refused at create).
 * Sockets for a tail in another namespace are made after setns(2) there and back; if coming
 * back ever fails the engine stops dialing (everything is handed back) rather than make
 * sockets in the wrong place.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

/* ---- the access log's part: how long, who ---------------------------------------------- */

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
  v->v[7] = c->client_family ? (double)c->client_port + 65536.0 * c->client_family : 0;
  memcpy(v->addr, c->client, sizeof v->addr);
}

/* Note the client's address (compact: family, bytes, port), for the access log and source affinity. */
static void note_client(struct conn *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->fd[0], (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memcpy(c->client, &in->sin_addr, 4);
    c->client_port = ntohs(in->sin_port);
    c->client_family = 4;
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memcpy(c->client, &in6->sin6_addr, 16);
    c->client_port = ntohs(in6->sin6_port);
    c->client_family = 6;
  }
}

/* ---- the connect's deadline -------------------------------------------------------------- */

/*
 * A tail that drops SYNs would hold a client for the kernel's SYN retries (about 2 minutes):
 * each connect in flight has a deadline (the group's dial timeout, or what JavaScript's retry
 * loop has left), kept on one engine-wide list. The loop asks dial_timeouts once per turn;
 * it walks the list only when the earliest deadline it knows of has come (at most every
 * DIAL_TICK ms), so a turn with nothing due costs one clock read.
 */
#define DIAL_TICK 20

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A connect in flight gets its deadline, on the engine's list. */
static void dial_watch(struct engine *e, struct conn *c) {
  if (c->dial_ms == 0) return;
  c->dial_by = mono_ms() + c->dial_ms;
  c->dial_prev = NULL;
  c->dial_next = e->dialing;
  if (e->dialing) e->dialing->dial_prev = c;
  e->dialing = c;
  if (e->dial_check_at == 0 || c->dial_by < e->dial_check_at) e->dial_check_at = c->dial_by;
}

/* Its connect is over (answered, failed, or the connection ended): off the list. */
static void dial_unwatch(struct engine *e, struct conn *c) {
  if (c->dial_by == 0) return;
  if (c->dial_prev) c->dial_prev->dial_next = c->dial_next;
  else e->dialing = c->dial_next;
  if (c->dial_next) c->dial_next->dial_prev = c->dial_prev;
  c->dial_prev = c->dial_next = NULL;
  c->dial_by = 0;
}

static void dial_failed(struct engine *e, struct conn *c, int err);

int dial_timeouts(struct engine *e) {
  if (!e->dialing) {
    e->dial_check_at = 0;
    return -1;
  }
  int64_t now = mono_ms();
  if (now < e->dial_check_at) return (int)(e->dial_check_at - now);
  /* (a connection whose next tail is dialed below goes back on the head of the list, behind
     the walk, and lowers dial_check_at itself) */
  e->dial_check_at = INT64_MAX;
  int64_t next = INT64_MAX;
  for (struct conn *c = e->dialing, *n; c; c = n) {
    n = c->dial_next;
    if (c->dial_by <= now) dial_failed(e, c, ETIMEDOUT);
    else if (c->dial_by < next) next = c->dial_by;
  }
  if (next < e->dial_check_at) e->dial_check_at = next;
  if (!e->dialing) {
    e->dial_check_at = 0;
    return -1;
  }
  if (e->dial_check_at < now + DIAL_TICK) e->dial_check_at = now + DIAL_TICK;
  return (int)(e->dial_check_at - now);
}

/* ---- ending ---------------------------------------------------------------------------- */

static struct conn *conn_of(struct watch *w) {
  int side = w->kind - W_CONN0;
  return (struct conn *)((char *)(w - side) - offsetof(struct conn, w));
}

void reset_close(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

void unlink_conn(struct conn *c) {
  if (c->prev) c->prev->next = c->next;
  else c->g->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void conn_dial_tail(struct engine *e, struct conn *c, int i);

/* A connection to a tail ends (or never got there): the tail has one fewer open. */
static void release_tail(struct conn *c) {
  if (c->tail < 0 || c->state != C_DEAD) return;
  struct tail *t = slot_tail(c->g, c->tail); /* (a slot dialed is allocated, and stays) */
  if (t->gen == c->tail_gen && c->tail_gen != 0) __atomic_sub_fetch(&t->open, 1, __ATOMIC_RELAXED);
  c->tail = -1;
}

/* End a connection: close both sockets (resetting with `rst`), report, free after this turn. */
void conn_end(struct engine *e, struct conn *c, int err, bool rst) {
  if (c->state == C_DEAD) return;
  /* (a client held for its first byte was never counted open, nor is its end reported) */
  bool held = c->state == C_WAITING;
  dial_unwatch(e, c);
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
  if (held) {
    c->g->waiting--;
  } else {
    release_open(c->g);
    release_tail(c);
    /* Without a listener in JavaScript a connection's end wakes nobody: the counters say it. */
    if (c->g->report && !c->for_stream) emit_closed(e, c, err);
  }
  c->dead_next = e->dead;
  e->dead = c;
  /* a dial for a peer's stream ended before its tail answered: the stream is reset */
  if (c->st) streamdial_aborted(e, c);
}

/* The client goes back to JavaScript untouched (no byte read); the upstream is closed. */
void conn_handoff(struct engine *e, struct conn *c, int err) {
  dial_unwatch(e, c);
  if (c->fd[0] >= 0) epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd[0], NULL);
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
  /* (how long it waited already: JavaScript's retries take only what is left of the timeout) */
  if (!c->for_stream) emit(e, EV_HANDOFF, c->g, fd, err, c->dial_t0 ? (double)(mono_ms() - c->dial_t0) : 0, 0);
  free(c->hdr);
  c->hdr = NULL;
  c->fd[0] = c->fd[1] = -1;
  c->state = C_DEAD;
  unlink_conn(c);
  c->dead_next = e->dead;
  e->dead = c;
  /* a peer's stream goes to JavaScript, which adopts it as a client (and counts it again) */
  if (c->for_stream) {
    release_open(c->g);
    streamdial_failed(e, c);
  }
}

/* A failure on `side`: a reset is passed on as a reset, anything else as a close. */
static void conn_fail(struct engine *e, struct conn *c, int err) {
  conn_end(e, c, err, err == ECONNRESET || err == EPIPE);
}

/* ---- moving bytes ------------------------------------------------------------------------ */

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
        if (errno == EAGAIN) {
          /* the writer is full: EPOLLOUT on dst resumes (and a budget that runs short may
             shrink this pipe meanwhile, if it has been stuck long: pipes.c) */
          pipe_stuck(e, c->p[d], true);
          return;
        }
        if (errno == EINTR) continue;
        return conn_fail(e, c, errno);
      }
      pipe_stuck(e, c->p[d], false);
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
    /* a full read: bulk data, so a bigger pipe means fewer turns per byte (within the budget) */
    if ((uint32_t)n == p->cap && p->cap < PIPE_BIG) pipe_grow(e, p);
  }
}

/* ---- dialing ----------------------------------------------------------------------------- */

void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool watch_fd(struct engine *e, int fd, struct watch *w) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = w};
  return epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) == 0;
}

/* A range's client's place in it, from the port it reached (-1: not this group's range). */
static int client_port_off(const struct group *g, int client) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(client, (struct sockaddr *)&ss, &sl) != 0) return -1;
  int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
  return port >= g->base_port && port - g->base_port < MAX_LISTENERS ? port - g->base_port : -1;
}

struct conn *conn_new(struct engine *e, struct group *g, int client, int port_off) {
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
  /* (a dial for a peer's stream has no client socket: streamdial.c) */
  if (client >= 0 && (g->report || g->policy == B_SOURCE)) note_client(c);
  if (g->policy == B_SOURCE && c->client_family)
    c->src = pick_key(c->client, c->client_family == 4 ? 4 : 16); /* not the port: one client, one tail */
  /* a range's head: which of its ports the client came in on. The accept knows it (its
     listener's place in the array); a client JavaScript hands back (groupDial) is asked */
  if (g->base_port && port_off < 0 && client >= 0) port_off = client_port_off(g, client);
  if (g->base_port && port_off > 0) c->port_off = (uint16_t)port_off;
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
  dial_unwatch(e, c);
  if (c->tail >= 0) {
    struct tail *t = slot_tail(g, c->tail);
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
  struct tail *t = slot_tail(c->g, i);
  c->tried |= 1ULL << i;
  c->tail = (int8_t)i;
  /* a PROXY header or a transparent source needs the client's socket: a peer's stream has
     none here, so JavaScript serves it (it knows the client from the attach) */
  if (c->for_stream && (t->proxy || t->mark)) return conn_handoff(e, c, 0);
  int up = tail_socket(e, c->g, t);
  if (up < 0) return dial_failed(e, c, errno);
  nodelay(up);
  c->fd[1] = up;
  /* transparent: the tail sees the client's own address and port (transparent.c) */
  if (t->mark && wh_transparent_from(up, c->fd[0], t->addr.ss_family, t->mark) != 0)
    return dial_failed(e, c, errno);
  c->state = C_DIALING;
  /* a unix connect is done at once (or refused, or EAGAIN: the listener's backlog is full) */
  /* a range's tail: head port i goes to tail port i (JavaScript checked the range fits) */
  struct sockaddr_storage to = t->addr;
  if (t->span && c->port_off) {
    in_port_t *p = to.ss_family == AF_INET6 ? &((struct sockaddr_in6 *)&to)->sin6_port
                                            : &((struct sockaddr_in *)&to)->sin_port;
    *p = htons((uint16_t)(ntohs(*p) + c->port_off));
  }
  int rc = t->path ? wh_unix_connect_in(up, t->root, t->path) : connect(up, (struct sockaddr *)&to, t->len);
  if (rc != 0 && errno != EINPROGRESS) return dial_failed(e, c, errno);
  if (!watch_fd(e, up, &c->w[1])) return dial_failed(e, c, errno);
  if (rc == 0) dial_done(e, c);
  else dial_watch(e, c);
}

/* Start dialing a tail for connection c: the policy's pick, failing over to the next. */
void conn_dial(struct engine *e, struct conn *c) {
  c->tried = 0;
  c->dial_t0 = mono_ms();
  if (!c->dial_ms) c->dial_ms = (uint32_t)c->g->dial_ms;
  int i = e->dial_broken ? -1 : pick_tail(c->g, c);
  if (i < 0) return conn_handoff(e, c, 0);
  conn_dial_tail(e, c, i);
}

void conn_wait_data(struct engine *e, struct group *g, int fd, int port_off) {
  if (g->waiting >= g->max) {
    __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
    emit(e, EV_REFUSED, g, 0, 0, 0, 0);
    reset_close(fd);
    return;
  }
  struct conn *c = conn_new(e, g, fd, port_off);
  if (!c) {
    reset_close(fd);
    return;
  }
  c->state = C_WAITING;
  g->waiting++;
  if (!watch_fd(e, fd, &c->w[0])) conn_end(e, c, errno, true);
}

/* A held client is readable: its first byte (peeked: pump reads it) opens it; EOF ends it. */
static void first_byte(struct engine *e, struct conn *c) {
  char b;
  ssize_t n = recv(c->fd[0], &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) return conn_end(e, c, n < 0 ? errno : 0, false); /* said nothing: nothing woke */
  struct group *g = c->g;
  if (!acquire_open(g)) {
    __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
    emit(e, EV_REFUSED, g, 0, 0, 0, 0);
    return conn_end(e, c, 0, true);
  }
  g->waiting--;
  c->state = C_DIALING;
  __atomic_store_n(&g->last, e->now_ms, __ATOMIC_RELAXED);
  conn_dial(e, c);
}

/* The upstream of a dialing connection became writable (connected) or failed. */
static void dial_done(struct engine *e, struct conn *c) {
  dial_unwatch(e, c);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err) return dial_failed(e, c, err);
  c->state = C_OPEN;
  __atomic_store_n(&c->g->dial_ok_at, e->now_ms, __ATOMIC_RELAXED);
  struct tail *t = slot_tail(c->g, c->tail);
  c->tail_gen = t->gen;
  __atomic_add_fetch(&t->open, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&t->total, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&t->ok_at, e->now_ms, __ATOMIC_RELAXED);
  /* a peer's stream takes the socket: the connection's part is over (streamdial.c) */
  if (c->for_stream) return streamdial_connected(e, c, c->fd[1]);
  if (t->proxy) proxy_header(c, t->proxy);
  if (c->from_js) emit(e, EV_DIALED, c->g, c->fd[0], c->id, 0, 0);
  pump(e, c, 0);
  pump(e, c, 1);
}

void conn_event(struct engine *e, struct watch *w, uint32_t events) {
  struct conn *c = conn_of(w);
  int s = w->kind - W_CONN0;
  if (c->state == C_DEAD) return;
  if (c->state == C_WAITING) {
    if (s == 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) first_byte(e, c);
    return;
  }
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

