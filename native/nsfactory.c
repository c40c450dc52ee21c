/*
 * nsfactory: sockets made inside network namespaces, off the event loop.
 *
 * A socket belongs to the network namespace of the thread that created it, for its whole
 * life. So one long-lived thread of ours takes jobs from a queue: it enters the namespace
 * with setns(2), makes the socket (binds and listens for a head), and comes back to the
 * daemon's own namespace. A new thread per socket cost 77 µs here; setns there and back
 * costs ~14 µs. If coming back ever fails, the thread is retired (it exits, taking its
 * namespace change with it) and a fresh one takes the queue: no thread of ours is ever left
 * inside a container's namespace doing other work.
 *
 * Namespace files are opened by that thread too, never by the event loop: a path that is
 * not a namespace file (a FIFO would block open(2) forever, a directory, a device, a plain
 * file) is refused before it is opened, and what is opened must answer NS_GET_NSTYPE with
 * CLONE_NEWNET. The thread keeps the namespaces it opened (a small cache keyed by device
 * and inode, which cannot be reused while we hold the file open).
 *
 * The N-API side (the exports, reading their arguments, settling their promises) is
 * nsfactory_napi.c; the two share the job and the queue (nsfactory.h).
 *
 * The worker unshares CLONE_FS when it starts: its umask is then its own, so that a unix
 * head's socket file is made with the mode asked for, without touching the daemon's umask.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsfactory.h"

#define NS_CACHE 32

/* A worker's own cache of open namespace files; it dies with the worker. */
struct nscache {
  struct {
    dev_t dev;
    ino_t ino;
    int fd;
  } e[NS_CACHE];
  int n, next;
};

void nsf_job_free(struct job *j) {
  free(j->path);
  free(j->root);
  free(j->uaddr);
  free(j);
}

void nsf_fail(struct job *j, int err, const char *what) {
  j->err = err;
  snprintf(j->what, sizeof j->what, "%s", what);
}

/* The namespace file at path, opened (or found open) and checked. -1 with j's error set. */
static int ns_open(struct nscache *c, struct job *j) {
  struct stat st;
  if (stat(j->path, &st) != 0) {
    nsf_fail(j, errno, "open namespace");
    return -1;
  }
  /* nsfs files are regular files; anything else must not even be opened (a FIFO blocks). */
  if (!S_ISREG(st.st_mode)) {
    const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                     : "not a regular file";
    j->code = "NS_INVALID";
    snprintf(j->what, sizeof j->what, "is %s, not a network namespace file", kind);
    j->err = EINVAL;
    return -1;
  }
  for (int i = 0; i < c->n; i++)
    if (c->e[i].dev == st.st_dev && c->e[i].ino == st.st_ino) return c->e[i].fd;
  int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    nsf_fail(j, errno, "open namespace");
    return -1;
  }
  struct stat got;
  if (fstat(fd, &got) != 0 || got.st_dev != st.st_dev || got.st_ino != st.st_ino ||
      ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    close(fd);
    j->code = "NS_INVALID";
    snprintf(j->what, sizeof j->what, "is not a network namespace file");
    j->err = EINVAL;
    return -1;
  }
  int slot;
  if (c->n < NS_CACHE) {
    slot = c->n++;
  } else { /* full: the oldest entry goes (round robin) */
    slot = c->next;
    c->next = (c->next + 1) % NS_CACHE;
    close(c->e[slot].fd);
  }
  c->e[slot].dev = st.st_dev;
  c->e[slot].ino = st.st_ino;
  c->e[slot].fd = fd;
  return fd;
}

/* Make the socket in the current namespace. */
static void make_socket(struct job *j) {
  int fd = socket(j->family, j->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nsf_fail(j, errno, "socket");
  if (j->kind == JOB_LISTEN) {
    int one = 1;
    if (j->type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (j->family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&j->addr, j->addrlen) != 0) {
      nsf_fail(j, errno, "bind");
      close(fd);
      return;
    }
    if (j->type == SOCK_STREAM && listen(fd, j->backlog) != 0) {
      nsf_fail(j, errno, "listen");
      close(fd);
      return;
    }
    struct sockaddr_storage got;
    socklen_t len = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &len) == 0)
      j->port = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&got)->sin_port);
  }
  j->fd = fd;
}

/* An abstract unix socket, in the current (network) namespace: listening, or connected. */
static void make_abstract(struct job *j) {
  struct sockaddr_un sun;
  socklen_t len;
  if (!wh_unix_abstract(j->uaddr + 1, &sun, &len)) return nsf_fail(j, ENAMETOOLONG, "abstract name");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nsf_fail(j, errno, "socket");
  if (j->kind == JOB_LISTEN_UNIX) {
    /* (no file, no mode: an abstract name goes when its last socket closes) */
    if (bind(fd, (struct sockaddr *)&sun, len) != 0 || listen(fd, j->backlog) != 0) {
      nsf_fail(j, errno, "bind");
      close(fd);
      return;
    }
  } else if (connect(fd, (struct sockaddr *)&sun, len) != 0) {
    /* a unix connect does not go on in the background: done, refused, or EAGAIN (full) */
    nsf_fail(j, errno, "connect");
    close(fd);
    return;
  }
  j->fd = fd;
}

/* A unix job on a path (files, not namespaces): inside the job's root, never outside it. */
static void run_unix_file(struct job *j, bool own_fs) {
  int root = wh_root_open(j->root);
  if (root < 0) return nsf_fail(j, errno, "open the filesystem root");
  if (j->kind == JOB_OPEN_ROOT) {
    j->fd = root;
    return;
  }
  if (j->kind == JOB_REMOVE_UNIX) {
    if (wh_unix_remove_in(root, j->uaddr, j->dev, j->ino) != 0) nsf_fail(j, errno, "remove");
    close(root);
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    nsf_fail(j, errno, "socket");
    close(root);
    return;
  }
  if (j->kind == JOB_LISTEN_UNIX) {
    struct wh_unix_bound b;
    if (!own_fs) {
      nsf_fail(j, EPERM, "bind (the namespace thread has no umask of its own)");
    } else if (wh_unix_listen_in(fd, root, j->uaddr, j->mode, j->backlog, &b) != 0) {
      j->code = b.code;
      nsf_fail(j, errno, b.what ? b.what : "bind");
    } else {
      j->fd = fd;
      j->dev = b.dev;
      j->ino = b.ino;
    }
  } else if (wh_unix_connect_in(fd, root, j->uaddr) != 0) {
    nsf_fail(j, errno, "connect");
  } else {
    j->fd = fd;
  }
  if (j->fd < 0) close(fd);
  close(root);
}

static bool is_unix(const struct job *j) {
  return j->kind == JOB_LISTEN_UNIX || j->kind == JOB_CONNECT_UNIX || j->kind == JOB_REMOVE_UNIX ||
         j->kind == JOB_OPEN_ROOT;
}

/* Run one job; false if the thread could not come back home and must retire. */
static bool run_job(struct job *j, struct nscache *c, int home, bool own_fs) {
  j->fd = -1;
  /* a path is the filesystem's: no namespace to enter (a path socket is reached from any) */
  if (is_unix(j) && (j->uaddr == NULL || j->uaddr[0] == '/')) {
    run_unix_file(j, own_fs);
    return true;
  }
  int nsfd = -1;
  if (j->path) {
    nsfd = ns_open(c, j);
    if (nsfd < 0) return true;
  }
  if (j->kind == JOB_OPEN_NS) {
    if (nsfd < 0) nsfd = home;
    j->fd = fcntl(nsfd, F_DUPFD_CLOEXEC, 0);
    if (j->fd < 0) nsf_fail(j, errno, "dup namespace");
    return true;
  }
  if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) {
    nsf_fail(j, errno, "setns");
    return true;
  }
  if (is_unix(j)) make_abstract(j);
  else make_socket(j);
  return nsfd < 0 || setns(home, CLONE_NEWNET) == 0;
}

static void *worker(void *arg) {
  struct factory *f = arg;
  struct nscache cache;
  memset(&cache, 0, sizeof cache);
  /* The main thread never changes namespace: its namespace is home. */
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  bool healthy = home >= 0;
  /* a umask (and cwd, root) of this thread's own, for unix heads' modes (see the top) */
  bool own_fs = unshare(CLONE_FS) == 0;
  while (healthy) {
    pthread_mutex_lock(&f->mu);
    while (!f->head) pthread_cond_wait(&f->cv, &f->mu);
    struct job *j = f->head;
    f->head = j->next;
    if (!f->head) f->tail = NULL;
    pthread_mutex_unlock(&f->mu);
    healthy = run_job(j, &cache, home, own_fs);
    if (napi_call_threadsafe_function(f->tsfn, j, napi_tsfn_blocking) != napi_ok) {
      if (j->fd >= 0) close(j->fd);
      nsf_job_free(j);
    }
  }
  /* Retired (or could not open home): hand the queue to a fresh worker; if none can start,
   * its jobs are answered as failed (on the main thread, as any answer), not left waiting. */
  pthread_mutex_lock(&f->mu);
  f->running = false;
  struct job *stranded = NULL;
  if (f->head) nsf_start_worker(f);
  if (!f->running) {
    stranded = f->head;
    f->head = f->tail = NULL;
  }
  pthread_mutex_unlock(&f->mu);
  while (stranded) {
    struct job *next = stranded->next;
    stranded->fd = -1;
    nsf_fail(stranded, EAGAIN, "cannot start the namespace thread");
    if (napi_call_threadsafe_function(f->tsfn, stranded, napi_tsfn_blocking) != napi_ok) nsf_job_free(stranded);
    stranded = next;
  }
  for (int i = 0; i < cache.n; i++) close(cache.e[i].fd);
  if (home >= 0) close(home);
  return NULL;
}

/* Called with f->mu held. */
void nsf_start_worker(struct factory *f) {
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &attr, worker, f) == 0) f->running = true;
  pthread_attr_destroy(&attr);
}
