/*
 * The wormhole addon: one module, a concern per file.
 *   nsfactory.c  sockets made inside network namespaces by a long-lived thread (setns there
 *                and back), namespace files checked and kept open, never on the event loop;
 *   engine.c     the data path: one epoll thread moving bytes with splice(2);
 *   unixsock.c   unix sockets bound and dialed inside a container's filesystem (openat2,
 *                never out of it) or abstract; used by the two above;
 *   proxyproto.c the PROXY protocol header the engine writes to a tail that wants one;
 *   fdpass.c     the daemon's own unix listeners, and fds passed over them (takeover);
 *   notify.c     one datagram to systemd's notification socket (AF_UNIX, which dgram lacks).
 * This file holds what they share: errors with errno names as codes, argument readers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.h"

bool wh_sockaddr(int family, const char *host, int port, struct sockaddr_storage *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    *len = sizeof *a;
    return inet_pton(AF_INET6, host, &a->sin6_addr) == 1;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)out;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  *len = sizeof *a;
  return inet_pton(AF_INET, host, &a->sin_addr) == 1;
}

napi_value wh_coded_error(napi_env env, const char *code, const char *msg) {
  napi_value vcode, vmsg, err;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &vcode) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &vmsg) != napi_ok) return NULL;
  if (napi_create_error(env, vcode, vmsg, &err) != napi_ok) return NULL;
  return err;
}

napi_value wh_errno_error(napi_env env, int err, const char *what) {
  char msg[600];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  return wh_coded_error(env, name ? name : "EIO", msg);
}

napi_value wh_throw_errno(napi_env env, int err, const char *what) {
  napi_value e = wh_errno_error(env, err, what);
  if (e) napi_throw(env, e);
  return NULL;
}

bool wh_int_arg(napi_env env, napi_value v, const char *name, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_int32(env, v, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

bool wh_ptr_arg(napi_env env, napi_value v, const char *name, void **out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, out) != napi_ok || *out == NULL) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a handle from this addon", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!wh_nsfactory_init(env, exports)) return NULL;
  if (!wh_engine_init(env, exports)) return NULL;
  if (!wh_fdpass_init(env, exports)) return NULL;
  if (!wh_notify_init(env, exports)) return NULL;
  if (!wh_proxyproto_init(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
