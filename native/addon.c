/*
 * The wormhole addon: one module, a concern per file.
 *   nsfactory.c  sockets made inside network namespaces by a long-lived thread (setns there
 *                and back), namespace files checked and kept open, never on the event loop;
 *   engine.h     the data path: one epoll thread moving bytes with splice(2), in rooms:
 *                engine.c (the loop, commands, events), conn.c (a connection's states),
 *                pipes.c (the pipe pool), pick.c (the tail pick), listen.c (accepting),
 *                engine_napi.c (its JavaScript face);
 *   unixsock.c   unix sockets bound and dialed inside a container's filesystem (openat2,
 *                never out of it) or abstract; used by the two above;
 *   proxyproto.c the PROXY protocol header a tail that wants one gets, built here for both movers;
 *   fdpass.c     the daemon's own unix listeners, and fds passed over them (takeover);
 *   notify.c     one datagram to systemd's notification socket (AF_UNIX, which dgram lacks);
 *   syncfs.c     one syncfs(2): many records written, made durable together;
 *   sockbuf.c    a bigger receive buffer for another process's socket (charon's UDP).
 * This file holds what they share: errors with errno names as codes, argument and field readers.
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

/* obj[name], and whether it is there at all (absent or undefined: not there). */
bool wh_field(napi_env env, napi_value obj, const char *name, napi_value *out, bool *has) {
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, out) != napi_ok || napi_typeof(env, *out, &t) != napi_ok)
    return false;
  *has = t != napi_undefined;
  return true;
}

/* Throw a TypeError "what: name must be ..." with code EINVAL; false. */
bool wh_bad_field(napi_env env, const char *what, const char *name, const char *must) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s must be %s", what, name, must);
  if (!wh_exception_pending(env)) napi_throw_type_error(env, "EINVAL", msg);
  return false;
}

/* An optional number field (def when absent) within [lo, hi]. */
bool wh_int_field(napi_env env, napi_value obj, const char *what, const char *name, int32_t lo, int32_t hi,
                      int32_t def, int32_t *out) {
  napi_value v;
  bool has;
  napi_valuetype t;
  if (!wh_field(env, obj, name, &v, &has)) return false;
  *out = def;
  if (!has) return true;
  char must[64];
  snprintf(must, sizeof must, "a number from %d to %d", lo, hi);
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_int32(env, v, out) != napi_ok ||
      *out < lo || *out > hi)
    return wh_bad_field(env, what, name, must);
  return true;
}

/* An optional string field that fits in buf (has: false when absent). */
bool wh_str_field(napi_env env, napi_value obj, const char *what, const char *name, char *buf, size_t size,
                      bool *has) {
  napi_value v;
  napi_valuetype t;
  size_t len = 0;
  buf[0] = '\0';
  if (!wh_field(env, obj, name, &v, has)) return false;
  if (!*has) return true;
  char must[64];
  snprintf(must, sizeof must, "a string of at most %zu bytes", size - 1);
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= size ||
      napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok)
    return wh_bad_field(env, what, name, must);
  return true;
}

/* An optional boolean field. */
bool wh_bool_field(napi_env env, napi_value obj, const char *what, const char *name, bool def, bool *out) {
  napi_value v;
  bool has;
  napi_valuetype t;
  if (!wh_field(env, obj, name, &v, &has)) return false;
  *out = def;
  if (!has) return true;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean || napi_get_value_bool(env, v, out) != napi_ok)
    return wh_bad_field(env, what, name, "true or false");
  return true;
}

/* Is v an object (not null)? */
bool wh_is_object(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_object;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!wh_nsfactory_init(env, exports)) return NULL;
  if (!wh_engine_init(env, exports)) return NULL;
  if (!wh_fdpass_init(env, exports)) return NULL;
  if (!wh_notify_init(env, exports)) return NULL;
  if (!wh_syncfs_init(env, exports)) return NULL;
  if (!wh_sockbuf_init(env, exports)) return NULL;
  if (!wh_proxyproto_init(env, exports)) return NULL;
  if (!wh_transparent_init(env, exports)) return NULL;
  if (!wh_heap_init(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
