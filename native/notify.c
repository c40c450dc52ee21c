/*
 * notify: one datagram to systemd's notification socket (sd_notify(3)), so that a
 * Type=notify unit knows when the daemon serves and when it stops.
 *
 * Node's dgram module speaks UDP only, and the protocol is an AF_UNIX datagram: hence this
 * one flat, synchronous export (no thread: it is one sendto(2) on a non-blocking socket).
 *
 *   notify(socketPath, message) -> undefined
 *
 * socketPath is NOTIFY_SOCKET as systemd sets it: an absolute path, or '@name' for an
 * address in the abstract namespace (sun_path starts with a NUL byte, and the address
 * length counts exactly the name's bytes: an abstract name is not NUL-terminated, so one
 * byte more or less would be another address). Errors are thrown with the errno name as
 * `code` (ENOENT: nobody listens at that path; ECONNREFUSED; EAGAIN: the receiver's queue
 * is full; ENAMETOOLONG; EINVAL for a path that is neither absolute nor abstract).
 */
#include <stddef.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

/* sd_notify messages are a few short lines; this bound only keeps a mistake from being sent. */
#define MAX_MESSAGE 4096

/*
 * A string argument into buf (size bytes, NUL included). False, with an error thrown, if it
 * is not a string, is empty, does not fit (it must not be cut short silently: a cut address
 * is another address) or contains a NUL byte.
 */
static bool string_arg(napi_env env, napi_value v, const char *name, char *buf, size_t size, size_t *len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a string", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  if (napi_get_value_string_utf8(env, v, NULL, 0, len) != napi_ok) {
    napi_throw_error(env, "EINVAL", "cannot read a string argument");
    return false;
  }
  if (*len == 0 || *len >= size) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s is empty or longer than %zu bytes", name, size - 1);
    napi_throw_error(env, *len == 0 ? "EINVAL" : "ENAMETOOLONG", msg);
    return false;
  }
  if (napi_get_value_string_utf8(env, v, buf, size, len) != napi_ok) {
    napi_throw_error(env, "EINVAL", "cannot read a string argument");
    return false;
  }
  if (strlen(buf) != *len) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s contains a NUL byte", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

static napi_value notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "EINVAL", "notify(socketPath, message)");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  /* One byte more than sun_path: a path of exactly sizeof sun_path bytes is read whole and
   * then refused below, never cut. */
  char path[sizeof addr.sun_path + 1];
  size_t plen = 0;
  if (!string_arg(env, argv[0], "socketPath", path, sizeof path, &plen)) return NULL;
  socklen_t alen;
  if (path[0] == '@') {
    /* Abstract: NUL, then the name's bytes (plen - 1 of them), and nothing after. */
    if (plen > sizeof addr.sun_path) return wh_throw_errno(env, ENAMETOOLONG, "notify socket address");
    memcpy(addr.sun_path + 1, path + 1, plen - 1);
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  } else if (path[0] == '/') {
    /* A file: the path and its terminating NUL must fit. */
    if (plen >= sizeof addr.sun_path) return wh_throw_errno(env, ENAMETOOLONG, "notify socket address");
    memcpy(addr.sun_path, path, plen + 1);
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
  } else {
    napi_throw_error(env, "EINVAL", "notify socket must be an absolute path or an @abstract name");
    return NULL;
  }
  char *message = malloc(MAX_MESSAGE + 1);
  if (!message) return wh_throw_errno(env, ENOMEM, "notify");
  size_t mlen = 0;
  if (!string_arg(env, argv[1], "message", message, MAX_MESSAGE + 1, &mlen)) {
    free(message);
    return NULL;
  }
  /* Non-blocking: a receiver that stopped reading must never stall the event loop; the
   * caller hears EAGAIN instead. Close-on-exec: no child inherits it. */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    int err = errno;
    free(message);
    return wh_throw_errno(env, err, "notify: socket");
  }
  ssize_t sent = sendto(fd, message, mlen, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
  int err = errno;
  close(fd);
  free(message);
  if (sent < 0) return wh_throw_errno(env, err, "notify: sendto");
  /* A datagram goes whole or not at all; a short count would be a kernel surprise. */
  if ((size_t)sent != mlen) return wh_throw_errno(env, EMSGSIZE, "notify: sendto sent part of the message");
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

napi_value wh_notify_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"notify", NULL, notify, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
