/*
 * nsfactory_napi.c: the namespace factory's N-API exports. Each reads its arguments into a
 * job, queues it for the namespace thread (nsfactory.c) and returns a promise, settled on the
 * main thread when the thread is done with the job.
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
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nsfactory.h"

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
  nsf_job_free(j);
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
  nsf_job_free(j);
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
  nsf_job_free(j);
  return NULL;
}

/* Queue the job and return its promise. */
static napi_value submit(napi_env env, struct job *j) {
  struct factory *f = NULL;
  napi_value promise;
  if (napi_get_instance_data(env, (void **)&f) != napi_ok || !f ||
      napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    nsf_job_free(j);
    napi_throw_error(env, "EINVAL", "the namespace factory is not initialised");
    return NULL;
  }
  if (f->pending++ == 0) napi_ref_threadsafe_function(env, f->tsfn);
  pthread_mutex_lock(&f->mu);
  j->next = NULL;
  if (f->tail) f->tail->next = j;
  else f->head = j;
  f->tail = j;
  if (!f->running) nsf_start_worker(f);
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
    nsf_fail(stranded, EAGAIN, "cannot start the namespace thread");
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
    nsf_job_free(j);
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
    nsf_job_free(j);
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
    nsf_job_free(j);
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
    nsf_job_free(j);
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
