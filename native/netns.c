/*
 * netns: make sockets inside a network namespace.
 *
 * A socket belongs to the network namespace of the thread that created it and stays there
 * for its whole life, whoever uses it later. So the daemon never moves its own threads:
 * each call starts a short-lived thread, which enters the namespace with setns(2), creates
 * (and for listeners binds) the socket, and exits. The namespace change dies with that
 * thread on every path, so no thread of the daemon is ever left inside a container.
 *
 * The fd comes back non-blocking and close-on-exec, ready for libuv
 * (server.listen({fd}), dgram bind({fd}), new net.Socket({fd}).connect()).
 *
 * Exports (no global state):
 *   socketIn(nsPath, family, type)                    -> fd      (unbound)
 *   listenIn(nsPath, family, type, host, port, backlog) -> [fd, boundPort]
 * nsPath is a path to a namespace file (/var/run/netns/X, /proc/PID/ns/net) or null for
 * the daemon's own namespace; family is 4 or 6; type is "tcp" or "udp".
 * Errors are thrown with `code` set to the errno name (ENOENT, EADDRINUSE, ...).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>

#define NAPI_CALL(env, call)                                              \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      const napi_extended_error_info *info = NULL;                        \
      napi_get_last_error_info((env), &info);                             \
      bool pending = false;                                               \
      napi_is_exception_pending((env), &pending);                         \
      if (!pending)                                                       \
        napi_throw_error((env), "EINVAL",                                 \
                         info && info->error_message ? info->error_message \
                                                     : "N-API call failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

struct job {
  int nsfd;  /* -1: stay in the daemon's namespace */
  int family;
  int type;
  int bind;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  int backlog;
  /* results */
  int fd;
  int port;
  int err;
  const char *where;
};

static void *make_socket(void *arg) {
  struct job *j = arg;
  j->fd = -1;
  if (j->nsfd >= 0 && setns(j->nsfd, CLONE_NEWNET) != 0) {
    j->err = errno;
    j->where = "setns";
    return NULL;
  }
  int fd = socket(j->family, j->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    j->err = errno;
    j->where = "socket";
    return NULL;
  }
  if (j->bind) {
    int one = 1;
    if (j->type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (j->family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&j->addr, j->addrlen) != 0) {
      j->err = errno;
      j->where = "bind";
      close(fd);
      return NULL;
    }
    if (j->type == SOCK_STREAM && listen(fd, j->backlog) != 0) {
      j->err = errno;
      j->where = "listen";
      close(fd);
      return NULL;
    }
    struct sockaddr_storage got;
    socklen_t len = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &len) == 0) {
      j->port = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&got)->sin_port);
    }
  }
  j->fd = fd;
  return NULL;
}

static napi_value throw_errno(napi_env env, int err, const char *where, const char *subject) {
  char msg[512];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s %s: %s", where, subject ? subject : "", strerror(err));
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}

/* Reads the common leading arguments: nsPath, family, type. Opens the namespace file. */
static napi_value read_common(napi_env env, napi_value *argv, struct job *j, char *nspath,
                              size_t nspath_len) {
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  j->nsfd = -1;
  nspath[0] = '\0';
  if (t == napi_string) {
    size_t len = 0;
    NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], nspath, nspath_len, &len));
    if (len >= nspath_len - 1) {
      napi_throw_error(env, "ENAMETOOLONG", "namespace path is too long");
      return NULL;
    }
  } else if (t != napi_null && t != napi_undefined) {
    napi_throw_type_error(env, "EINVAL", "nsPath must be a string or null");
    return NULL;
  }
  int32_t family = 0;
  NAPI_CALL(env, napi_get_value_int32(env, argv[1], &family));
  if (family != 4 && family != 6) {
    napi_throw_type_error(env, "EINVAL", "family must be 4 or 6");
    return NULL;
  }
  j->family = family == 6 ? AF_INET6 : AF_INET;
  char type[8];
  size_t tlen = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[2], type, sizeof type, &tlen));
  if (strcmp(type, "tcp") == 0) j->type = SOCK_STREAM;
  else if (strcmp(type, "udp") == 0) j->type = SOCK_DGRAM;
  else {
    napi_throw_type_error(env, "EINVAL", "type must be \"tcp\" or \"udp\"");
    return NULL;
  }
  if (nspath[0] != '\0') {
    j->nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
    if (j->nsfd < 0) return throw_errno(env, errno, "open", nspath);
  }
  napi_value ok;
  NAPI_CALL(env, napi_get_boolean(env, true, &ok));
  return ok;
}

static napi_value run_job(napi_env env, struct job *j, const char *nspath) {
  pthread_t th;
  int rc = pthread_create(&th, NULL, make_socket, j);
  if (rc != 0) {
    if (j->nsfd >= 0) close(j->nsfd);
    return throw_errno(env, rc, "pthread_create", nspath);
  }
  pthread_join(th, NULL);
  if (j->nsfd >= 0) close(j->nsfd);
  if (j->fd < 0) return throw_errno(env, j->err, j->where, nspath[0] ? nspath : "(host)");
  napi_value ok;
  NAPI_CALL(env, napi_get_boolean(env, true, &ok));
  return ok;
}

static napi_value socket_in(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, "EINVAL", "socketIn(nsPath, family, type)");
    return NULL;
  }
  struct job j;
  memset(&j, 0, sizeof j);
  char nspath[4096];
  if (!read_common(env, argv, &j, nspath, sizeof nspath)) return NULL;
  if (!run_job(env, &j, nspath)) return NULL;
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, j.fd, &out));
  return out;
}

static napi_value listen_in(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, "EINVAL", "listenIn(nsPath, family, type, host, port, backlog)");
    return NULL;
  }
  struct job j;
  memset(&j, 0, sizeof j);
  char nspath[4096];
  char host[INET6_ADDRSTRLEN + 1];
  size_t hlen = 0;
  int32_t port = 0, backlog = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[3], host, sizeof host, &hlen));
  NAPI_CALL(env, napi_get_value_int32(env, argv[4], &port));
  NAPI_CALL(env, napi_get_value_int32(env, argv[5], &backlog));
  if (port < 0 || port > 65535) {
    napi_throw_range_error(env, "EINVAL", "port must be 0-65535");
    return NULL;
  }
  if (!read_common(env, argv, &j, nspath, sizeof nspath)) return NULL;
  j.bind = 1;
  j.backlog = backlog > 0 ? backlog : 511;
  if (j.family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&j.addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) goto bad_host;
    j.addrlen = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&j.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad_host;
    j.addrlen = sizeof *a;
  }
  if (!run_job(env, &j, nspath)) return NULL;
  napi_value out, vfd, vport;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &out));
  NAPI_CALL(env, napi_create_int32(env, j.fd, &vfd));
  NAPI_CALL(env, napi_create_int32(env, j.port, &vport));
  NAPI_CALL(env, napi_set_element(env, out, 0, vfd));
  NAPI_CALL(env, napi_set_element(env, out, 1, vport));
  return out;

bad_host:
  if (j.nsfd >= 0) close(j.nsfd);
  napi_throw_type_error(env, "EINVAL", "host must be a numeric IP address of the given family");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"socketIn", NULL, socket_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenIn", NULL, listen_in, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
