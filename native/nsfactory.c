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
 * Exports (each returns a Promise; no global state: the queue is the env's instance data):
 *   socketIn(nsPath, family, type)                      -> fd
 *   listenIn(nsPath, family, type, host, port, backlog) -> [fd, boundPort]
 *   openNamespace(nsPath)                               -> fd of the namespace (for the engine)
 *   listenUnixIn(nsPath, root, address, mode, backlog)  -> [fd, identity of the socket file]
 *   connectUnixIn(nsPath, root, address)                -> a connected fd
 *   removeUnixIn(root, address, identity)               -> undefined (the file, if still ours)
 *   openRoot(root)                                      -> fd of a filesystem root (for the engine)
 * nsPath is a namespace file path, or null for the daemon's own; family 4|6; type tcp|udp.
 * A unix address is "/path" (looked up inside root: "/proc/PID/root" for a container's
 * files, null for the host's; see unixsock.c) or "@name" (abstract, in nsPath's namespace).
 * Sockets come back non-blocking and close-on-exec. Rejections carry the errno name as
 * `code`, or NS_INVALID for a path that is not a network namespace, or NOT_A_SOCKET /
 * ADDR_IN_USE for a unix path where a head cannot be bound.
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

#include "common.h"

#define NS_CACHE 32

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

/* A worker's own cache of open namespace files; it dies with the worker. */
struct nscache {
  struct {
    dev_t dev;
    ino_t ino;
    int fd;
  } e[NS_CACHE];
  int n, next;
};

static void job_free(struct job *j) {
  free(j->path);
  free(j->root);
  free(j->uaddr);
  free(j);
}

static void fail(struct job *j, int err, const char *what) {
  j->err = err;
  snprintf(j->what, sizeof j->what, "%s", what);
}

/* The namespace file at path, opened (or found open) and checked. -1 with j's error set. */
static int ns_open(struct nscache *c, struct job *j) {
  struct stat st;
  if (stat(j->path, &st) != 0) {
    fail(j, errno, "open namespace");
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
    fail(j, errno, "open namespace");
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
  if (fd < 0) return fail(j, errno, "socket");
  if (j->kind == JOB_LISTEN) {
    int one = 1;
    if (j->type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (j->family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&j->addr, j->addrlen) != 0) {
      fail(j, errno, "bind");
      close(fd);
      return;
    }
    if (j->type == SOCK_STREAM && listen(fd, j->backlog) != 0) {
      fail(j, errno, "listen");
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
  if (!wh_unix_abstract(j->uaddr + 1, &sun, &len)) return fail(j, ENAMETOOLONG, "abstract name");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(j, errno, "socket");
  if (j->kind == JOB_LISTEN_UNIX) {
    /* (no file, no mode: an abstract name goes when its last socket closes) */
    if (bind(fd, (struct sockaddr *)&sun, len) != 0 || listen(fd, j->backlog) != 0) {
      fail(j, errno, "bind");
      close(fd);
      return;
    }
  } else if (connect(fd, (struct sockaddr *)&sun, len) != 0) {
    /* a unix connect does not go on in the background: done, refused, or EAGAIN (full) */
    fail(j, errno, "connect");
    close(fd);
    return;
  }
  j->fd = fd;
}

/* A unix job on a path (files, not namespaces): inside the job's root, never outside it. */
static void run_unix_file(struct job *j, bool own_fs) {
  int root = wh_root_open(j->root);
  if (root < 0) return fail(j, errno, "open the filesystem root");
  if (j->kind == JOB_OPEN_ROOT) {
    j->fd = root;
    return;
  }
  if (j->kind == JOB_REMOVE_UNIX) {
    if (wh_unix_remove_in(root, j->uaddr, j->dev, j->ino) != 0) fail(j, errno, "remove");
    close(root);
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(j, errno, "socket");
    close(root);
    return;
  }
  if (j->kind == JOB_LISTEN_UNIX) {
    struct wh_unix_bound b;
    if (!own_fs) {
      fail(j, EPERM, "bind (the namespace thread has no umask of its own)");
    } else if (wh_unix_listen_in(fd, root, j->uaddr, j->mode, j->backlog, &b) != 0) {
      j->code = b.code;
      fail(j, errno, b.what ? b.what : "bind");
    } else {
      j->fd = fd;
      j->dev = b.dev;
      j->ino = b.ino;
    }
  } else if (wh_unix_connect_in(fd, root, j->uaddr) != 0) {
    fail(j, errno, "connect");
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
    if (j->fd < 0) fail(j, errno, "dup namespace");
    return true;
  }
  if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) {
    fail(j, errno, "setns");
    return true;
  }
  if (is_unix(j)) make_abstract(j);
  else make_socket(j);
  return nsfd < 0 || setns(home, CLONE_NEWNET) == 0;
}

static void start_worker(struct factory *f);

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
      job_free(j);
    }
  }
  /* Retired (or could not open home): hand the queue to a fresh worker; if none can start,
   * its jobs are answered as failed (on the main thread, as any answer), not left waiting. */
  pthread_mutex_lock(&f->mu);
  f->running = false;
  struct job *stranded = NULL;
  if (f->head) start_worker(f);
  if (!f->running) {
    stranded = f->head;
    f->head = f->tail = NULL;
  }
  pthread_mutex_unlock(&f->mu);
  while (stranded) {
    struct job *next = stranded->next;
    stranded->fd = -1;
    fail(stranded, EAGAIN, "cannot start the namespace thread");
    if (napi_call_threadsafe_function(f->tsfn, stranded, napi_tsfn_blocking) != napi_ok) job_free(stranded);
    stranded = next;
  }
  for (int i = 0; i < cache.n; i++) close(cache.e[i].fd);
  if (home >= 0) close(home);
  return NULL;
}

/* Called with f->mu held. */
static void start_worker(struct factory *f) {
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &attr, worker, f) == 0) f->running = true;
  pthread_attr_destroy(&attr);
}

/* On the main thread: settle the job's promise. */
static void answer(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  struct factory *f = context;
  struct job *j = data;
  /* a removal has no fd to give: it failed only if it says so */
  bool failed = j->kind == JOB_REMOVE_UNIX ? j->err != 0 : j->fd < 0;
  if (env != NULL) {
    napi_value result = NULL;
    if (failed) {
      char msg[9000], place[8300];
      const char *where = j->path ? j->path : "(host namespace)";
      if (j->uaddr) {
        snprintf(place, sizeof place, "%s%s%s", j->uaddr, j->root ? " in " : "", j->root ? j->root : "");
        where = place;
      } else if (j->kind == JOB_OPEN_ROOT) {
        where = j->root ? j->root : "/";
      }
      if (j->code) snprintf(msg, sizeof msg, "%s %s", where, j->what);
      else snprintf(msg, sizeof msg, "%s %s: %s", where, j->what, strerror(j->err));
      const char *name = strerrorname_np(j->err);
      napi_value err = wh_coded_error(env, j->code ? j->code : name ? name : "EIO", msg);
      if (err) napi_reject_deferred(env, j->deferred, err);
    } else if (j->kind == JOB_LISTEN) {
      napi_value vfd, vport;
      if (napi_create_array_with_length(env, 2, &result) == napi_ok &&
          napi_create_int32(env, j->fd, &vfd) == napi_ok &&
          napi_create_int32(env, j->port, &vport) == napi_ok) {
        napi_set_element(env, result, 0, vfd);
        napi_set_element(env, result, 1, vport);
      }
      napi_resolve_deferred(env, j->deferred, result);
    } else if (j->kind == JOB_LISTEN_UNIX) {
      /* the file's identity as text: an inode number may not fit a double */
      char ident[48];
      snprintf(ident, sizeof ident, "%llu:%llu", (unsigned long long)j->dev, (unsigned long long)j->ino);
      napi_value vfd, vid;
      if (napi_create_array_with_length(env, 2, &result) == napi_ok &&
          napi_create_int32(env, j->fd, &vfd) == napi_ok &&
          napi_create_string_utf8(env, ident, NAPI_AUTO_LENGTH, &vid) == napi_ok) {
        napi_set_element(env, result, 0, vfd);
        napi_set_element(env, result, 1, vid);
      }
      napi_resolve_deferred(env, j->deferred, result);
    } else if (j->kind == JOB_REMOVE_UNIX) {
      napi_get_undefined(env, &result);
      napi_resolve_deferred(env, j->deferred, result);
    } else {
      napi_create_int32(env, j->fd, &result);
      napi_resolve_deferred(env, j->deferred, result);
    }
    if (--f->pending == 0) napi_unref_threadsafe_function(env, f->tsfn);
  } else if (j->fd >= 0) {
    close(j->fd);
  }
  job_free(j);
}

/*
 * A string argument, or null/undefined (*out = NULL), into a new buffer; false (an error
 * thrown) when it is something else, empty, longer than max bytes or holds a NUL byte.
 */
static bool opt_string(napi_env env, napi_value v, const char *name, size_t max, char **out) {
  *out = NULL;
  napi_valuetype t;
  char msg[128];
  if (napi_typeof(env, v, &t) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "bad arguments");
    return false;
  }
  if (t == napi_null || t == napi_undefined) return true;
  if (t != napi_string) {
    snprintf(msg, sizeof msg, "%s must be a string or null", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "bad arguments");
    return false;
  }
  if (len == 0 || len > max) {
    snprintf(msg, sizeof msg, "%s is empty or too long", name);
    napi_throw_error(env, "ENAMETOOLONG", msg);
    return false;
  }
  *out = malloc(len + 1);
  if (!*out || napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) {
    free(*out);
    *out = NULL;
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  if (strlen(*out) != len) {
    free(*out);
    *out = NULL;
    snprintf(msg, sizeof msg, "%s contains a NUL byte", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

static struct job *new_job(napi_env env, enum job_kind kind) {
  struct job *j = calloc(1, sizeof *j);
  if (!j) napi_throw_error(env, "ENOMEM", "out of memory");
  else j->kind = kind;
  return j;
}

/* Read the leading arguments (nsPath, and for sockets family and type) into a new job. */
static struct job *read_job(napi_env env, napi_value *argv, size_t argc, enum job_kind kind) {
  struct job *j = new_job(env, kind);
  if (!j) return NULL;
  if (!opt_string(env, argv[0], "namespace path", 4095, &j->path)) goto fail;
  if (kind == JOB_OPEN_NS) return j;
  if (argc < 3) goto bad;
  int32_t family = 0;
  if (!wh_int_arg(env, argv[1], "family", &family)) goto fail;
  if (family != 4 && family != 6) {
    napi_throw_type_error(env, "EINVAL", "family must be 4 or 6");
    goto fail;
  }
  j->family = family == 6 ? AF_INET6 : AF_INET;
  char type[8];
  size_t tlen = 0;
  if (napi_get_value_string_utf8(env, argv[2], type, sizeof type, &tlen) != napi_ok) goto bad;
  if (strcmp(type, "tcp") == 0) j->type = SOCK_STREAM;
  else if (strcmp(type, "udp") == 0) j->type = SOCK_DGRAM;
  else {
    napi_throw_type_error(env, "EINVAL", "type must be \"tcp\" or \"udp\"");
    goto fail;
  }
  return j;
bad:
  napi_throw_type_error(env, "EINVAL", "bad arguments");
fail:
  job_free(j);
  return NULL;
}

/*
 * A unix job: the filesystem root (null: the host's) and the address, "/absolute/path" or
 * "@abstract-name" (at most 107 bytes: sun_path less its leading NUL), at argv[0] and [1].
 */
static struct job *read_unix_job(napi_env env, napi_value *argv, enum job_kind kind) {
  struct job *j = new_job(env, kind);
  if (!j) return NULL;
  if (!opt_string(env, argv[0], "root", 4095, &j->root) ||
      !opt_string(env, argv[1], "unix address", 4095, &j->uaddr))
    goto fail;
  if (kind == JOB_OPEN_ROOT) return j;
  if (!j->uaddr || (j->uaddr[0] != '/' && j->uaddr[0] != '@') ||
      (j->uaddr[0] == '@' && (strlen(j->uaddr) < 2 || strlen(j->uaddr) > 108))) {
    napi_throw_type_error(env, "EINVAL", "a unix address is /absolute/path or @name (1-107 bytes)");
    goto fail;
  }
  if (j->root && j->root[0] != '/') {
    napi_throw_type_error(env, "EINVAL", "root must be an absolute path");
    goto fail;
  }
  return j;
fail:
  job_free(j);
  return NULL;
}

/* Queue the job and return its promise. */
static napi_value submit(napi_env env, struct job *j) {
  struct factory *f = NULL;
  napi_value promise;
  if (napi_get_instance_data(env, (void **)&f) != napi_ok || !f ||
      napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    job_free(j);
    napi_throw_error(env, "EINVAL", "the namespace factory is not initialised");
    return NULL;
  }
  if (f->pending++ == 0) napi_ref_threadsafe_function(env, f->tsfn);
  pthread_mutex_lock(&f->mu);
  j->next = NULL;
  if (f->tail) f->tail->next = j;
  else f->head = j;
  f->tail = j;
  if (!f->running) start_worker(f);
  /* No thread to run them: every job waiting (this one, and any a retired worker left) is
   * answered now, each once (answer() counts it out of pending), never dropped unsettled. */
  struct job *stranded = NULL;
  if (f->running) pthread_cond_signal(&f->cv);
  else {
    stranded = f->head;
    f->head = f->tail = NULL;
  }
  pthread_mutex_unlock(&f->mu);
  while (stranded) {
    struct job *next = stranded->next;
    stranded->fd = -1;
    fail(stranded, EAGAIN, "cannot start the namespace thread");
    answer(env, NULL, f, stranded);
    stranded = next;
  }
  return promise;
}

/* An export whose arguments read_job reads whole: check the count, queue the job. */
static napi_value simple_job(napi_env env, napi_callback_info info, enum job_kind kind, size_t want,
                             const char *usage) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < want) {
    napi_throw_type_error(env, "EINVAL", usage);
    return NULL;
  }
  struct job *j = read_job(env, argv, argc, kind);
  return j ? submit(env, j) : NULL;
}

static napi_value socket_in(napi_env env, napi_callback_info info) {
  return simple_job(env, info, JOB_SOCKET, 3, "socketIn(nsPath, family, type)");
}

static napi_value listen_in(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, "EINVAL", "listenIn(nsPath, family, type, host, port, backlog)");
    return NULL;
  }
  char host[INET6_ADDRSTRLEN + 1];
  size_t hlen = 0;
  int32_t port = 0, backlog = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[3], host, sizeof host, &hlen));
  if (!wh_int_arg(env, argv[4], "port", &port) || !wh_int_arg(env, argv[5], "backlog", &backlog))
    return NULL;
  if (port < 0 || port > 65535) {
    napi_throw_range_error(env, "EINVAL", "port must be 0-65535");
    return NULL;
  }
  struct job *j = read_job(env, argv, argc, JOB_LISTEN);
  if (!j) return NULL;
  j->backlog = backlog > 0 ? backlog : 511;
  if (!wh_sockaddr(j->family, host, port, &j->addr, &j->addrlen)) {
    job_free(j);
    napi_throw_type_error(env, "EINVAL", "host must be a numeric IP address of the given family");
    return NULL;
  }
  return submit(env, j);
}

static napi_value open_namespace(napi_env env, napi_callback_info info) {
  return simple_job(env, info, JOB_OPEN_NS, 1, "openNamespace(nsPath)");
}

/* Read up to `want` arguments, or throw `usage`; argv has room for 5. */
static bool args(napi_env env, napi_callback_info info, napi_value *argv, size_t want, const char *usage) {
  size_t argc = 5;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", usage);
    return false;
  }
  return true;
}

static napi_value listen_unix_in(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t mode, backlog;
  if (!args(env, info, argv, 5, "listenUnixIn(nsPath, root, address, mode, backlog)") ||
      !wh_int_arg(env, argv[3], "mode", &mode) || !wh_int_arg(env, argv[4], "backlog", &backlog))
    return NULL;
  if (mode < 0 || mode > 0777) {
    napi_throw_range_error(env, "EINVAL", "mode must be 0 to 0777");
    return NULL;
  }
  struct job *j = read_unix_job(env, argv + 1, JOB_LISTEN_UNIX);
  if (!j) return NULL;
  if (!opt_string(env, argv[0], "namespace path", 4095, &j->path)) {
    job_free(j);
    return NULL;
  }
  j->mode = mode;
  j->backlog = backlog > 0 ? backlog : 511;
  return submit(env, j);
}

static napi_value connect_unix_in(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv, 3, "connectUnixIn(nsPath, root, address)")) return NULL;
  struct job *j = read_unix_job(env, argv + 1, JOB_CONNECT_UNIX);
  if (!j) return NULL;
  if (!opt_string(env, argv[0], "namespace path", 4095, &j->path)) {
    job_free(j);
    return NULL;
  }
  return submit(env, j);
}

static napi_value remove_unix_in(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char ident[48];
  size_t len = 0;
  if (!args(env, info, argv, 3, "removeUnixIn(root, address, identity)")) return NULL;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[2], ident, sizeof ident, &len));
  unsigned long long dev, ino;
  if (sscanf(ident, "%llu:%llu", &dev, &ino) != 2) {
    napi_throw_type_error(env, "EINVAL", "identity must be what listenUnixIn gave");
    return NULL;
  }
  struct job *j = read_unix_job(env, argv, JOB_REMOVE_UNIX);
  if (!j) return NULL;
  if (j->uaddr[0] != '/') {
    job_free(j);
    napi_throw_type_error(env, "EINVAL", "only a path has a file to remove");
    return NULL;
  }
  j->dev = dev;
  j->ino = ino;
  return submit(env, j);
}

static napi_value open_root(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv, 1, "openRoot(root)")) return NULL;
  struct job *j = read_unix_job(env, argv, JOB_OPEN_ROOT);
  return j ? submit(env, j) : NULL;
}

static void factory_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  /* A worker may still hold the struct (it is blocked on the queue at exit): keep it. */
  (void)data;
}

napi_value wh_nsfactory_init(napi_env env, napi_value exports) {
  struct factory *f = calloc(1, sizeof *f);
  if (!f) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  napi_value name;
  NAPI_CALL(env, napi_create_string_utf8(env, "wormhole-nsfactory", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, f,
                                                 answer, &f->tsfn));
  NAPI_CALL(env, napi_unref_threadsafe_function(env, f->tsfn));
  NAPI_CALL(env, napi_set_instance_data(env, f, factory_free, NULL));
  napi_property_descriptor props[] = {
      {"socketIn", NULL, socket_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenIn", NULL, listen_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openNamespace", NULL, open_namespace, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenUnixIn", NULL, listen_unix_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectUnixIn", NULL, connect_unix_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeUnixIn", NULL, remove_unix_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openRoot", NULL, open_root, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
