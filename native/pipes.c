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
 * flight) would reach another connection's peer. Such a pipe is closed instead. The pool is
 * the engine thread's alone: no lock.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine.h"

struct pipe_buf *pipe_get(struct engine *e) {
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
void pipe_put(struct engine *e, struct pipe_buf *p, bool empty) {
  if (empty && e->npool < PIPE_POOL) e->pool[e->npool++] = p;
  else pipe_drop(p);
}

void pipe_pool_drain(struct engine *e) {
  for (int i = 0; i < e->npool; i++) pipe_drop(e->pool[i]);
  e->npool = 0;
}
