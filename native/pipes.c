/*
 * pipes: the pool of pipes connections borrow to move bytes (after HAProxy's pipe.c).
 *
 * splice(2) moves bytes between two sockets only through a pipe. A pipe costs two fds and,
 * once grown for bulk data, up to PIPE_BIG of kernel memory, so a connection holds one per
 * direction only while bytes move: it takes one when a read is about to happen and gives it
 * back as soon as the pipe is empty and the reader has nothing more (an idle connection holds
 * none). Given back, a pipe waits in the pool (at most PIPE_POOL: more is closed) for the
 * next connection, which saves the pipe2() and fcntl() a new one would cost.
 *
 * Only an empty pipe may be reused: bytes left in one (a connection that ended with data in
 * flight) would reach another connection's client. Such a pipe is closed instead. The pool is
 * the engine thread's alone: no lock.
 *
 * The budget. The kernel's pipe-user-pages limits do not bind root, so a crowd of clients
 * that never read (a zero window: the bytes stop in the engine's pipe) could pin a grown pipe
 * each, tens of GiB. So what grown pipes may hold beyond their first size is one budget for
 * the engine (pipe_budget, PIPE_BUDGET unless engineStart says): a pipe grows only within it.
 * When it is short, grown pipes give their size back first: those in the pool (empty), then
 * those whose writer has been blocked PIPE_STUCK_MS or more and that hold no more than their
 * first size (the kernel refuses, EBUSY, to shrink a pipe below what it holds: no byte is
 * lost). Otherwise the pipe stays small (counted in pipe_denied) and its connection goes on,
 * a little slower. A pipe closed (its connection ended with bytes in it) gives its size back.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine.h"

struct pipe_buf *pipe_get(struct engine *e) {
  if (e->npool > 0) {
    struct pipe_buf *p = e->pool[--e->npool];
    p->pooled = false;
    return p;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return NULL;
  struct pipe_buf *p = calloc(1, sizeof *p);
  if (!p) {
    close(fds[0]);
    close(fds[1]);
    return NULL;
  }
  p->r = fds[0];
  p->w = fds[1];
  int cap = fcntl(p->w, F_GETPIPE_SZ);
  p->cap = p->base = cap > 0 ? (uint32_t)cap : 65536;
  return p;
}

/* The pipe's size changed from `old`: the budget and the grown list follow. */
static void pipe_resized(struct engine *e, struct pipe_buf *p, uint32_t old) {
  __atomic_add_fetch(&e->pipe_grown, (int64_t)p->cap - (int64_t)old, __ATOMIC_RELAXED);
  bool was = old > p->base, is = p->cap > p->base;
  if (is && !was) {
    p->gprev = NULL;
    p->gnext = e->grown;
    if (e->grown) e->grown->gprev = p;
    e->grown = p;
  } else if (was && !is) {
    if (p->gprev) p->gprev->gnext = p->gnext;
    else e->grown = p->gnext;
    if (p->gnext) p->gnext->gprev = p->gprev;
    p->gprev = p->gnext = NULL;
  }
}

/* Back to its first size, if what it holds fits there (else the kernel says EBUSY). */
static bool pipe_shrink(struct engine *e, struct pipe_buf *p) {
  uint32_t old = p->cap;
  int cap = fcntl(p->w, F_SETPIPE_SZ, p->base);
  if (cap <= 0) return false;
  p->cap = (uint32_t)cap;
  pipe_resized(e, p, old);
  return true;
}

/* Make `need` bytes of room in the budget by shrinking grown pipes that can spare it. */
static bool pipe_room(struct engine *e, int64_t need) {
  for (int pass = 0; pass < 2; pass++)
    for (struct pipe_buf *p = e->grown, *n; p; p = n) {
      if (__atomic_load_n(&e->pipe_grown, __ATOMIC_RELAXED) + need <= e->pipe_budget) return true;
      n = p->gnext;
      /* pooled ones first (empty: no cost), then those stuck behind a blocked writer */
      bool spare = pass == 0 ? p->pooled : !p->pooled && p->stuck_at && e->now_ms - p->stuck_at >= PIPE_STUCK_MS;
      if (spare) pipe_shrink(e, p);
    }
  return __atomic_load_n(&e->pipe_grown, __ATOMIC_RELAXED) + need <= e->pipe_budget;
}

void pipe_grow(struct engine *e, struct pipe_buf *p) {
  if (p->cap >= PIPE_BIG) return;
  if (!pipe_room(e, (int64_t)PIPE_BIG - p->cap)) {
    __atomic_add_fetch(&e->pipe_denied, 1, __ATOMIC_RELAXED);
    return;
  }
  uint32_t old = p->cap;
  int cap = fcntl(p->w, F_SETPIPE_SZ, PIPE_BIG);
  if (cap <= 0) return;
  p->cap = (uint32_t)cap;
  pipe_resized(e, p, old);
}

void pipe_stuck(struct engine *e, struct pipe_buf *p, bool stuck) {
  if (!stuck) p->stuck_at = 0;
  else if (!p->stuck_at) p->stuck_at = e->now_ms ? e->now_ms : 1;
}

static void pipe_drop(struct engine *e, struct pipe_buf *p) {
  uint32_t old = p->cap;
  p->cap = p->base; /* (its size goes back to the budget with it) */
  pipe_resized(e, p, old);
  close(p->r);
  close(p->w);
  free(p);
}

/* Only an empty pipe goes back to the pool: one with bytes in it would leak them to another. */
void pipe_put(struct engine *e, struct pipe_buf *p, bool empty) {
  if (empty && e->npool < PIPE_POOL) {
    p->pooled = true;
    p->stuck_at = 0;
    e->pool[e->npool++] = p;
  } else {
    pipe_drop(e, p);
  }
}

void pipe_pool_drain(struct engine *e) {
  for (int i = 0; i < e->npool; i++) pipe_drop(e, e->pool[i]);
  e->npool = 0;
}
