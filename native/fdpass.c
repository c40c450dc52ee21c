/*
 * Unix sockets the daemon makes itself, and file descriptors passed over them (SCM_RIGHTS):
 * how a running daemon hands its listening sockets to the one taking over from it.
 *
 *   listenUnix(path, backlog) -> fd        a listening unix stream socket bound to path; Node
 *                                          serves it through listen({fd}), so that closing it
 *                                          never unlinks the path (libuv would, for a path it
 *                                          bound itself): the successor keeps serving there
 *   connectUnix(path, timeoutMs) -> fd     a blocking client socket whose reads and writes
 *                                          give up after timeoutMs (EAGAIN)
 *   sendFds(fd, fds, data)                 one sendmsg: data with up to MAX_FDS descriptors
 *   recvFds(fd) -> [Buffer, fds]           one recvmsg (blocking on a connectUnix socket);
 *                                          an empty Buffer is the end of the stream
 *
 * Every descriptor made here is close-on-exec (MSG_CMSG_CLOEXEC for received ones), so
 * that no child the daemon spawns (wireguard-go) inherits a listening socket.
 */
#include <stddef.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

/* At most this many descriptors in one message (the kernel's SCM_MAX_FD is 253). */
#define MAX_FDS 250
/* The largest message recvFds reads at once. */
#define RECV_BYTES 65536

/* A unix path argument as a socket address; false (TypeError thrown) if it does not fit. */
static bool unix_addr(napi_env env, napi_value v, struct sockaddr_un *sun, socklen_t *len) {
  size_t n = 0;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, sun->sun_path, sizeof sun->sun_path, &n) != napi_ok || n == 0 ||
      n >= sizeof sun->sun_path - 1) {
    napi_throw_type_error(env, "EINVAL", "a unix socket path (at most 107 bytes)");
    return false;
  }
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return true;
}

static napi_value make_int(napi_env env, int32_t v) {
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, v, &out));
  return out;
}

static napi_value listen_unix(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sun;
  socklen_t len;
  int32_t backlog;
  if (argc < 2 || !unix_addr(env, argv[0], &sun, &len) || !wh_int_arg(env, argv[1], "backlog", &backlog))
    return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return wh_throw_errno(env, errno, "socket");
  if (bind(fd, (struct sockaddr *)&sun, len) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    return wh_throw_errno(env, err, "listen");
  }
  return make_int(env, fd);
}

static napi_value connect_unix(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sun;
  socklen_t len;
  int32_t ms;
  if (argc < 2 || !unix_addr(env, argv[0], &sun, &len) || !wh_int_arg(env, argv[1], "timeoutMs", &ms)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return wh_throw_errno(env, errno, "socket");
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 || connect(fd, (struct sockaddr *)&sun, len) < 0) {
    int err = errno;
    close(fd);
    return wh_throw_errno(env, err, "connect");
  }
  return make_int(env, fd);
}

static napi_value send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool is_array = false, is_buffer = false;
  if (argc < 3 || !wh_int_arg(env, argv[0], "fd", &fd)) return NULL;
  NAPI_CALL(env, napi_is_array(env, argv[1], &is_array));
  NAPI_CALL(env, napi_is_buffer(env, argv[2], &is_buffer));
  uint32_t n = 0;
  if (is_array) NAPI_CALL(env, napi_get_array_length(env, argv[1], &n));
  if (!is_array || !is_buffer || n > MAX_FDS) {
    napi_throw_type_error(env, "EINVAL", "sendFds(fd, fds: number[] (at most 250), data: Buffer)");
    return NULL;
  }
  void *data;
  size_t data_len;
  NAPI_CALL(env, napi_get_buffer_info(env, argv[2], &data, &data_len));
  if (data_len == 0) {
    napi_throw_type_error(env, "EINVAL", "sendFds: data must not be empty (descriptors ride on a byte)");
    return NULL;
  }
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = data, .iov_len = data_len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n > 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    int *out = (int *)CMSG_DATA(cm);
    for (uint32_t i = 0; i < n; i++) {
      napi_value el;
      int32_t v;
      NAPI_CALL(env, napi_get_element(env, argv[1], i, &el));
      if (!wh_int_arg(env, el, "fds[i]", &v)) return NULL;
      out[i] = v;
    }
  }
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return wh_throw_errno(env, errno, "sendmsg");
  if ((size_t)sent != data_len) return wh_throw_errno(env, EAGAIN, "sendmsg (partly sent)");
  return NULL;
}

static napi_value recv_fds(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !wh_int_arg(env, argv[0], "fd", &fd)) return NULL;
  char *data = malloc(RECV_BYTES);
  if (!data) return wh_throw_errno(env, ENOMEM, "recvmsg");
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * 253)];
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = RECV_BYTES};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t got;
  do got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    int err = errno;
    free(data);
    return wh_throw_errno(env, err, "recvmsg");
  }
  napi_value result, buf, fds;
  void *copy;
  /* (on any failure below the received descriptors would leak: N-API calls do not fail here
   * short of the process running out of memory) */
  if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
      napi_create_buffer_copy(env, (size_t)got, data, &copy, &buf) != napi_ok ||
      napi_create_array(env, &fds) != napi_ok) {
    free(data);
    napi_throw_error(env, "ENOMEM", "recvFds: out of memory");
    return NULL;
  }
  free(data);
  uint32_t count = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *in = (int *)CMSG_DATA(cm);
    for (size_t i = 0; i < k; i++) NAPI_CALL(env, napi_set_element(env, fds, count++, make_int(env, in[i])));
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    /* descriptors beyond what fits were closed by the kernel: the handover is incomplete */
    for (uint32_t i = 0; i < count; i++) {
      napi_value el;
      int32_t v;
      if (napi_get_element(env, fds, i, &el) == napi_ok && napi_get_value_int32(env, el, &v) == napi_ok) close(v);
    }
    return wh_throw_errno(env, EMSGSIZE, "recvmsg (descriptors cut off)");
  }
  NAPI_CALL(env, napi_set_element(env, result, 0, buf));
  NAPI_CALL(env, napi_set_element(env, result, 1, fds));
  return result;
}

napi_value wh_fdpass_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectUnix", NULL, connect_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFds", NULL, send_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvFds", NULL, recv_fds, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
