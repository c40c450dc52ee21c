/*
 * nsfactory.h: what the namespace thread (nsfactory.c) and the N-API exports
 * (nsfactory_napi.c) share: a job, the queue it waits in, and the worker's entry points.
 */
#ifndef WH_NSFACTORY_H
#define WH_NSFACTORY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

enum job_kind {
  JOB_SOCKET,
  JOB_LISTEN,
  JOB_OPEN_NS,
  JOB_LISTEN_UNIX,
  JOB_CONNECT_UNIX,
  JOB_REMOVE_UNIX,
  JOB_OPEN_ROOT,
};

struct job {
  struct job *next;
  enum job_kind kind;
  char *path; /* NULL: the daemon's own namespace */
  int family, type, backlog;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  napi_deferred deferred;
  /* unix jobs: the filesystem root (NULL: "/"), the address ("/path" or "@name"), the mode */
  char *root, *uaddr;
  int mode;
  /* the socket file a head bound (JOB_LISTEN_UNIX), or to remove (JOB_REMOVE_UNIX) */
  uint64_t dev, ino;
  /* results */
  int fd, port, err;
  const char *code; /* our own error code instead of the errno name */
  char what[160];
};

struct factory {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct job *head, *tail;
  bool running; /* a worker thread is alive */
  napi_threadsafe_function tsfn;
  int pending; /* main thread only: jobs not yet answered */
};

/* Free a job and the strings it owns (not its fd). */
void nsf_job_free(struct job *j);
/* Mark a job failed with errno `err` while doing `what`. */
void nsf_fail(struct job *j, int err, const char *what);
/* Start a worker thread on the queue (f->running says whether it did). Called with f->mu held. */
void nsf_start_worker(struct factory *f);

#endif
