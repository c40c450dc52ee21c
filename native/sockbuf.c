/*
 * sockbuf: a bigger receive buffer for a socket another process holds (charon's UDP sockets:
 * strongSwan 5.9.8 has no option for their size, so under load ESP in UDP overflows the
 * default one, net.core.rmem_default, which cannot be set inside a network namespace on these
 * kernels). The daemon is root: it takes a copy of the socket with pidfd_getfd(2) (the same
 * open socket, not a new one), sets SO_RCVBUFFORCE on it (past net.core.rmem_max, which needs
 * CAP_NET_ADMIN) and closes its copy. The socket keeps the size for the process that holds it.
 *
 *   raiseRcvbuf(pid, fd, bytes) -> number    the buffer's size after (what getsockopt says:
 *                                            the kernel doubles what it is given); errors are
 *                                            thrown with the errno name as `code`
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

/* glibc 2.36 has no wrappers for these; the kernel has had them since 5.3 and 5.6 */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static napi_value raise_rcvbuf(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t pid, fd, bytes;
  if (argc < 3 || !wh_int_arg(env, argv[0], "pid", &pid) || !wh_int_arg(env, argv[1], "fd", &fd) ||
      !wh_int_arg(env, argv[2], "bytes", &bytes))
    return NULL;
  if (pid <= 0 || fd < 0 || bytes <= 0) return wh_throw_errno(env, EINVAL, "raiseRcvbuf");
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return wh_throw_errno(env, errno, "pidfd_open");
  int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
  int err = copy < 0 ? errno : 0;
  if (close(pidfd) != 0 && !err) err = errno;
  if (copy < 0) return wh_throw_errno(env, err, "pidfd_getfd");
  int size = 0;
  socklen_t len = sizeof size;
  if (!err && setsockopt(copy, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) err = errno;
  if (!err && getsockopt(copy, SOL_SOCKET, SO_RCVBUF, &size, &len) != 0) err = errno;
  /* (our copy only: the holder's descriptor and its socket stay as they were, but bigger) */
  if (close(copy) != 0 && !err) err = errno;
  if (err) return wh_throw_errno(env, err, "SO_RCVBUFFORCE");
  NAPI_CALL(env, napi_create_int32(env, size, &result));
  return result;
}

napi_value wh_sockbuf_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"raiseRcvbuf", NULL, raise_rcvbuf, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
