/*
 * streamdial: a peer's stream dialed to a segment's tail by the engine itself (issue 17's
 * left-over). The head's daemon names the segment in the stream's OPEN (its payload: the id's
 * length (1 byte), the id, then the client's origin as the attach's JSON, which only
 * JavaScript reads); the tail's daemon registered each segment a peer may name (groupAttachable:
 * its id and owner), and the channel knows the key the peer came with (chanCreate). When the
 * key may reach the segment, the engine dials one of its tails as a connection accepted on its
 * head would be (conn.c: the pick, failover, the dial timeout), with no client socket, and the
 * tail's socket becomes the stream's local end: no JavaScript for that stream at all, its bytes
 * and its end counted in the group as a connection's.
 *
 * Whatever the engine cannot do goes to JavaScript as an accepted stream with the payload in
 * front (stream_to_js; src/peer/enginechannel.ts): an id not registered or a key that may not
 * (JavaScript says no, with the reason, and resets it), a tail that wants a PROXY header or a
 * transparent source, `balance source`, a group over its cap, and a dial that failed on every
 * tail (JavaScript retries for the dial timeout, runs a trigger, waits for a container), so a
 * client sees what it saw before this path existed.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* FNV-1a of an id: its bucket. */
static uint32_t bucket(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h & (ATTACH_BUCKETS - 1);
}

/* The group the OPEN's payload names, when this channel's key may reach it here; else NULL. */
static struct group *may_dial(struct engine *e, const struct chan *ch, const uint8_t *p, uint32_t n) {
  if (!ch->key_name || e->dial_broken) return NULL;
  uint32_t len = p[0];
  if (len == 0 || 1 + len > n) return NULL; /* (JavaScript reads it, and says what is wrong) */
  for (struct group *g = e->attach[bucket(p + 1, len)]; g; g = g->anext) {
    if (strlen(g->attach_id) != len || memcmp(g->attach_id, p + 1, len) != 0) continue;
    /* the key that made it, or one with every right (as src/daemon/handlers.ts's makeAttach) */
    if (g->closing || !(ch->key_all || strcmp(g->owner, ch->key_name) == 0)) return NULL;
    /* source affinity needs the client's address, which is in the JSON */
    return g->policy == B_SOURCE ? NULL : g;
  }
  return NULL;
}

void streamdial_open(struct engine *e, struct chan *ch, uint32_t id, const uint8_t *p, uint32_t n) {
  struct stream *st = stream_new(e, ch, id, -1, false);
  if (!st) {
    chan_frame(e, ch, FT_RST, id, NULL, 0);
    return;
  }
  struct group *g = may_dial(e, ch, p, n);
  /* (over the cap: JavaScript refuses it, with the reason in the log) */
  if (!g || !(st->target = malloc(n))) return stream_to_js(e, st, p, n);
  if (!acquire_open(g)) {
    free(st->target);
    st->target = NULL;
    return stream_to_js(e, st, p, n);
  }
  memcpy(st->target, p, n);
  st->target_len = n;
  struct conn *c = conn_new(e, g, -1, 0); /* (no client socket; a range has no remote leg) */
  if (!c) {
    release_open(g);
    free(st->target);
    st->target = NULL;
    return stream_to_js(e, st, p, n);
  }
  c->for_stream = true;
  c->st = st;
  st->dialing = c;
  st->t0 = mono_ms();
  __atomic_store_n(&g->last, e->now_ms, __ATOMIC_RELAXED);
  conn_dial(e, c);
}

/* The connection that dialed is done: off its group's list, freed after this turn. */
static struct stream *let_go(struct conn *c) {
  struct stream *st = c->st;
  c->st = NULL;
  st->dialing = NULL;
  return st;
}

void streamdial_connected(struct engine *e, struct conn *c, int fd) {
  struct stream *st = let_go(c);
  /* the socket was watched for the connection; the stream watches it from here */
  if (epoll_ctl(e->ep, EPOLL_CTL_DEL, fd, NULL) != 0) {
    /* (cannot happen to a socket just watched; if it does, the dial is as good as failed) */
    c->st = st;
    st->dialing = c;
    return conn_end(e, c, errno, true);
  }
  c->fd[1] = -1;
  c->state = C_DEAD;
  unlink_conn(c);
  c->dead_next = e->dead;
  e->dead = c;
  /* the group's open count and the tail's are the stream's now, released by streamdial_ended */
  st->g = c->g;
  st->tail = c->tail;
  st->tail_gen = c->tail_gen;
  st->conn_id = c->id;
  free(st->target);
  st->target = NULL;
  stream_connected(e, st, fd);
}

void streamdial_failed(struct engine *e, struct conn *c) {
  struct stream *st = let_go(c);
  uint8_t *t = st->target;
  st->target = NULL;
  stream_to_js(e, st, t, st->target_len);
  free(t);
}

void streamdial_aborted(struct engine *e, struct conn *c) {
  struct stream *st = let_go(c);
  chan_frame(e, st->ch, FT_RST, st->id, NULL, 0);
  stream_drop(e, st, true);
}

void streamdial_count(struct engine *e, struct stream *st, bool up, uint64_t n) {
  __atomic_add_fetch(up ? &st->g->up : &st->g->down, n, __ATOMIC_RELAXED);
  __atomic_store_n(&st->g->last, e->now_ms, __ATOMIC_RELAXED);
}

void streamdial_ended(struct engine *e, struct stream *st, bool rst) {
  struct group *g = st->g;
  st->g = NULL;
  release_open(g);
  struct tail *t = st->tail >= 0 ? slot_tail(g, st->tail) : NULL;
  if (t && t->gen == st->tail_gen && st->tail_gen != 0) __atomic_sub_fetch(&t->open, 1, __ATOMIC_RELAXED);
  if (!g->report) return;
  /* the access log's line, as a connection's (the client is the peer's: unknown here) */
  emit(e, EV_CLOSED, g, st->conn_id, (double)st->delivered, (double)st->sent, rst ? ECONNRESET : 0);
  if (e->nev == 0 || e->evs[e->nev - 1].v[0] != EV_CLOSED) return; /* (lost: out of memory) */
  e->evs[e->nev - 1].v[6] = (double)(mono_ms() - st->t0);
  e->evs[e->nev - 1].v[7] = 0;
}

/* Off the table (if on it). */
static void unregister(struct engine *e, struct group *g) {
  if (!g->attach_id) return;
  for (struct group **p = &e->attach[bucket((const uint8_t *)g->attach_id, strlen(g->attach_id))]; *p;
       p = &(*p)->anext)
    if (*p == g) {
      *p = g->anext;
      break;
    }
  g->anext = NULL;
  free(g->attach_id);
  free(g->owner);
  g->attach_id = g->owner = NULL;
}

void streamdial_register(struct engine *e, struct group *g, const char *data, uint32_t n) {
  unregister(e, g);
  if (!data || g->closing) return;
  /* data: "ID\0OWNER\0" (checked by groupAttachable) */
  size_t idlen = strnlen(data, n);
  if (idlen == 0 || idlen + 1 >= n) return;
  g->attach_id = strdup(data);
  g->owner = strdup(data + idlen + 1);
  if (!g->attach_id || !g->owner) {
    /* no memory: not registered, so every stream for it is JavaScript's, as before */
    free(g->attach_id);
    free(g->owner);
    g->attach_id = g->owner = NULL;
    return;
  }
  /* (in front: a segment built again under the same id is found before the closing one) */
  struct group **head = &e->attach[bucket((const uint8_t *)g->attach_id, idlen)];
  g->anext = *head;
  *head = g;
}

void streamdial_group_closed(struct engine *e, struct group *g) {
  unregister(e, g);
  /* its connected streams are reset (those still dialing end with their connections) */
  for (struct chan *ch = e->chans; ch; ch = ch->next) {
    for (struct stream *st = ch->streams, *next; st && !ch->dead; st = next) {
      next = st->next;
      if (st->g != g) continue;
      chan_frame(e, ch, FT_RST, st->id, NULL, 0);
      stream_drop(e, st, true);
    }
  }
}
