/*
 * engine: the loop. One thread waits on one epoll set: the eventfd JavaScript writes after
 * queueing a command, the groups' listening sockets (listen.c), and both sockets of every
 * connection (conn.c). Each turn runs what became ready, frees the connections that ended,
 * and sends JavaScript the turn's events in one call (a thread-safe function): JavaScript
 * never waits on the engine and the engine never waits on JavaScript.
 *
 * Commands (engine_napi.c queues them) run on this thread only, in the order they were sent,
 * so that the engine's state has one writer; JavaScript reads only counters, with atomic
 * loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

/* ---- events ---------------------------------------------------------------------------- */

void emit(struct engine *e, int type, struct group *g, double a, double b, double c, double d) {
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

void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
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
  for (size_t i = 0; i < b->nfreed; i++) group_free(b->freed[i]);
  free(b->freed);
  free(b);
}

void group_free(struct group *g) {
  free(g->tail0);
  if (g->more)
    for (int i = 0; i < MAX_TAILS - 1; i++) free(g->more[i]);
  free(g->more);
  free(g->ls); /* (only if never unlistened: a group closes unlistened) */
  free(g);
}

/*
 * Publish a new tail in slot i (engine thread): false when the slots past 0 need their array
 * and there is no memory for it (the slot stays empty).
 */
static bool put_tail(struct group *g, int i, struct tail *t) {
  if (i == 0) {
    __atomic_store_n(&g->tail0, t, __ATOMIC_RELEASE);
    return true;
  }
  if (!g->more) {
    struct tail **more = calloc(MAX_TAILS - 1, sizeof *more);
    if (!more) return false;
    __atomic_store_n(&g->more, more, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&g->more[i - 1], t, __ATOMIC_RELEASE);
  return true;
}

/* ---- commands -------------------------------------------------------------------------- */

/* Stop accepting: every port is free at once, open connections go on. */
void unlisten(struct engine *e, struct group *g) {
  if (!g->ls) return;
  for (int i = 0; i < g->nls; i++) {
    struct listener *l = &g->ls[i];
    /* a DEL that fails (ENOENT: never added) is nothing to act on: close takes it out anyway */
    (void)epoll_ctl(e->ep, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    l->fd = -1; /* an event of this turn for it finds it closed (accept_some) */
  }
  /* freed after this turn: events already taken from epoll may point into the array */
  if (e->nls_dead == e->ls_deadcap) {
    size_t cap = e->ls_deadcap ? e->ls_deadcap * 2 : 8;
    struct listener **n = realloc(e->ls_dead, cap * sizeof *n);
    if (n) {
      e->ls_dead = n;
      e->ls_deadcap = cap;
    }
  }
  if (e->nls_dead < e->ls_deadcap) e->ls_dead[e->nls_dead++] = g->ls;
  /* (else, out of memory: the array is leaked rather than freed under a pending event) */
  g->ls = NULL;
  g->nls = 0;
}

/*
 * Listen on the command's listeners (one, or a port range's, in port order): all of them or,
 * when one cannot be watched, none (every fd closed, JavaScript told).
 */
static void listen_all(struct engine *e, struct group *g, struct listener *ls, int n) {
  unlisten(e, g); /* (JavaScript unlistens first; a second listen must not leak the first) */
  g->ls = ls;
  g->nls = n;
  for (int i = 0; i < n; i++) {
    struct epoll_event ev = {.events = g->paused ? 0 : EPOLLIN, .data.ptr = &ls[i].w};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, ls[i].fd, &ev) != 0) {
      int err = errno;
      for (int j = i; j < n; j++) close(ls[j].fd); /* (not watched: unlisten closes only 0..i-1) */
      g->nls = i;
      unlisten(e, g);
      emit(e, EV_ACCEPT_ERROR, g, 0, err, 0, 0);
      return;
    }
  }
  /* a range's first port: a client's own port less it is its place in the range (conn_new) */
  g->base_port = 0;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (n > 1 && getsockname(ls[0].fd, (struct sockaddr *)&ss, &sl) == 0)
    g->base_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
}

static void group_close(struct engine *e, struct group *g) {
  unlisten(e, g);
  streamdial_group_closed(e, g); /* (peers' streams dialed to its tails are reset) */
  forget_paused(e, g); /* (else the resume a tenth of a second later writes to it, freed) */
  while (g->conns) {
    struct conn *c = g->conns;
    if (c->state == C_DIALING) conn_end(e, c, ECONNABORTED, false);
    else conn_end(e, c, 0, false);
  }
  for (int i = 0; i < g->ntails; i++) {
    struct tail *t = slot_tail(g, i);
    if (!t) continue;
    if (t->set && t->ns >= 0) close(t->ns);
    if (t->set && t->root >= 0) close(t->root);
    free(t->path);
    t->path = NULL;
  }
  g->ntails = 0;
  free(g->head_name);
  g->head_name = NULL;
  free(g->allow);
  g->allow = NULL;
  g->nallow = 0;
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
  case CMD_LISTEN:
    listen_all(e, g, (struct listener *)c->data, c->arg);
    c->data = NULL; /* (the group's now) */
    break;
  case CMD_UNLISTEN:
    unlisten(e, g);
    break;
  case CMD_TAIL: {
    /* a slot gets a tail (or loses it): its counters start again, connections to the old
       one no longer count against it */
    struct tail *t = slot_tail(g, c->arg);
    if (!t && c->flag && (t = calloc(1, sizeof *t)) != NULL) {
      t->ns = t->root = -1;
      /* (published whole: JavaScript's groupTailStats reads the pointer on its own thread) */
      if (!put_tail(g, c->arg, t)) {
        free(t);
        t = NULL;
      }
    }
    if (!t) {
      /* an empty slot emptied, or no memory for a new one: the slot stays empty (what the
         command owned goes with it; JavaScript's setTail still resolves, below) */
      if (c->ns >= 0) close(c->ns);
      if (c->root >= 0) close(c->root);
      free(c->path);
      c->ns = c->root = -1;
      c->path = NULL;
      emit(e, EV_TAIL_SET, g, c->seq, 0, 0, 0);
      break;
    }
    if (t->set && t->ns >= 0) close(t->ns);
    if (t->set && t->root >= 0) close(t->root);
    free(t->path);
    uint32_t gen = t->gen + 1;
    memset(t, 0, sizeof *t);
    t->gen = gen ? gen : 1;
    t->ns = t->root = -1;
    if (c->flag) {
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
      t->mark = c->mark;
      t->span = c->span;
      t->key = c->key;
      if (c->arg >= g->ntails) g->ntails = c->arg + 1;
    }
    /* JavaScript's setTail resolves on this: from here on no connection goes where the slot
       pointed before (only an event lost for want of memory would leave it waiting; a later
       one acknowledges it too, as commands run in order) */
    emit(e, EV_TAIL_SET, g, c->seq, 0, 0, 0);
    break;
  }
  case CMD_HEALTH: {
    struct tail *t = slot_tail(g, c->arg);
    if (t && t->set) t->up = c->flag;
    break;
  }
  case CMD_TAIL_COUNT:
    /* a connection JavaScript carries to this tail opened or closed: least-conn counts it too
       (JavaScript says nothing of one whose slot was given a new tail since: its count went) */
    {
      struct tail *t = slot_tail(g, c->arg);
      if (t && t->set) __atomic_add_fetch(&t->open, c->delta, __ATOMIC_RELAXED);
    }
    break;
  case CMD_BALANCE:
    g->policy = (uint8_t)c->arg;
    break;
  case CMD_DIAL: {
    struct conn *cn = conn_new(e, g, c->arg, -1); /* (its port read from its socket) */
    __atomic_store_n(&g->last, e->now_ms, __ATOMIC_RELAXED);
    if (!cn) {
      emit(e, EV_HANDOFF, g, c->arg, ENOMEM, 0, 0);
      break;
    }
    cn->from_js = true;
    cn->dial_ms = c->delta > 0 ? (uint32_t)c->delta : 0; /* (0: the group's) */
    if (!watch_fd(e, cn->fd[0], &cn->w[0])) {
      conn_handoff(e, cn, errno);
      break;
    }
    conn_dial(e, cn);
    break;
  }
  case CMD_CLOSE_GROUP:
    group_close(e, g);
    break;
  case CMD_CHAN_ADD:
    if (!c->ch->dead) chan_add(e, c->ch);
    break;
  case CMD_CHAN_OPEN:
    /* on a channel that ended meanwhile, the stream is reset at once (JavaScript is told) */
    if (c->ch->dead ||
        !stream_open(e, c->ch, c->stream, c->arg, c->data, c->data_len, c->flag, c->notify, c->target,
                     c->target_len)) {
      reset_close(c->arg);
      if (c->notify) emit(e, EV_CHAN_RESET, NULL, c->ch->id, c->stream, 0, 0);
      else emit(e, EV_CHAN_STREAM_END, NULL, c->ch->id, c->stream, 0, 1125899906842624.0);
    }
    break;
  case CMD_CHAN_REBIND:
    stream_rebind(e, c->ch, c->stream, c->arg, c->ns, c->data, c->data_len);
    c->ns = -1;
    break;
  case CMD_CHAN_PING:
    if (!c->ch->dead) {
      struct timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      uint64_t now = (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
      uint8_t p[8];
      for (int i = 0; i < 8; i++) p[i] = (uint8_t)(now >> (56 - 8 * i));
      chan_frame(e, c->ch, FT_PING, 0, p, 8);
    }
    break;
  case CMD_CHAN_GOAWAY:
    if (!c->ch->dead && !c->ch->draining) {
      c->ch->draining = true;
      chan_frame(e, c->ch, FT_GOAWAY, 0, NULL, 0);
      if (c->ch->nstreams == 0) chan_end(e, c->ch, CW_DRAINED, 0, 0);
    }
    break;
  case CMD_CHAN_CLOSE:
    /* (what is sealed goes first: a GOAWAY, the last RSTs) */
    if (!c->ch->dead) {
      chan_flush_dirty(e);
      chan_end(e, c->ch, CW_ASKED, 0, 0);
    }
    break;
  case CMD_ATTACHABLE:
    streamdial_register(e, g, (const char *)c->data, c->data_len);
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
    if (c->ch) chan_unref(c->ch);
    free(c->data);
    free(c->target);
    free(c);
    c = next;
  }
}

void *engine_main(void *arg) {
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
    int dial = dial_timeouts(e); /* (connects past their deadline fail here) */
    if (dial >= 0 && (timeout < 0 || dial < timeout)) timeout = dial;
    if (e->nev > 0 || e->dead) timeout = 0; /* (what they produced goes out in this turn) */
    int n = epoll_wait(e->ep, evs, EVENTS, timeout);
    if (n < 0 && errno != EINTR) break;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    e->now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (int i = 0; i < n; i++) {
      struct watch *w = evs[i].data.ptr;
      if (w->kind == W_WAKE) run_cmds(e);
      else if (w->kind == W_LISTEN) accept_some(e, (struct listener *)((char *)w - offsetof(struct listener, w)));
      else if (w->kind == W_CHAN) chan_event(e, (struct chan *)((char *)w - offsetof(struct chan, w)), evs[i].events);
      else if (w->kind == W_STREAM)
        stream_event(e, (struct stream *)((char *)w - offsetof(struct stream, w)), evs[i].events);
      else conn_event(e, w, evs[i].events);
    }
    /* what the turn queued on channels leaves now, a record and a write each */
    chan_flush_dirty(e);
    for (size_t i = 0; i < e->nls_dead; i++) free(e->ls_dead[i]);
    e->nls_dead = 0;
    while (e->streams_dead) {
      struct stream *st = e->streams_dead;
      e->streams_dead = st->dead_next;
      free(st);
    }
    while (e->chans_dead) {
      struct chan *ch = e->chans_dead;
      e->chans_dead = ch->dead_next;
      chan_unref(ch);
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

