/*
 * What every file of the addon shares: the N-API status check, errors thrown (or promises
 * rejected) with the errno name as `code`, and small argument readers.
 */
#ifndef WORMHOLE_COMMON_H
#define WORMHOLE_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <node_api.h>

/* Check an N-API call; on failure throw (unless something is already pending) and return NULL. */
#define NAPI_CALL(env, call)                                                         \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      const napi_extended_error_info *info_ = NULL;                                  \
      napi_get_last_error_info((env), &info_);                                       \
      bool pending_ = false;                                                         \
      napi_is_exception_pending((env), &pending_);                                   \
      if (!pending_)                                                                 \
        napi_throw_error((env), "EINVAL",                                            \
                         info_ && info_->error_message ? info_->error_message        \
                                                       : "N-API call failed");       \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

/* The same for callbacks that return nothing (thread-safe function calls): give up quietly. */
#define NAPI_CALL_VOID(env, call) \
  do {                            \
    if ((call) != napi_ok) return; \
  } while (0)

/* An Error with `code` = the errno name (ENOENT, EADDRINUSE, ...) and a message. */
napi_value wh_errno_error(napi_env env, int err, const char *what);
/* Throw that error; returns NULL for `return wh_throw_errno(...)`. */
napi_value wh_throw_errno(napi_env env, int err, const char *what);
/* An Error with a code of our own (NS_INVALID, ...). */
napi_value wh_coded_error(napi_env env, const char *code, const char *msg);

/* Is a JavaScript exception pending (an argument reader threw one already)? */
static inline bool wh_exception_pending(napi_env env) {
  bool pending = false;
  return napi_is_exception_pending(env, &pending) == napi_ok && pending;
}

/* Read an int32 argument; false (and a TypeError thrown) if it is not a number. */
bool wh_int_arg(napi_env env, napi_value v, const char *name, int32_t *out);
/* The pointer behind an External argument (an engine or a group handle). */
bool wh_ptr_arg(napi_env env, napi_value v, const char *name, void **out);

/*
 * An object argument's fields (groupTail's tail, pickTail's, an origin): `what` names the
 * call in the TypeError (code EINVAL) thrown for a field of the wrong kind. Absent or
 * undefined fields are not there: the default, or has = false.
 */
/* obj[name], and whether it is there. */
bool wh_field(napi_env env, napi_value obj, const char *name, napi_value *out, bool *has);
/* Throw "what: name must be <must>" (unless an exception is pending); false. */
bool wh_bad_field(napi_env env, const char *what, const char *name, const char *must);
/* An optional number field (def when absent) within [lo, hi]. */
bool wh_int_field(napi_env env, napi_value obj, const char *what, const char *name, int32_t lo, int32_t hi,
                  int32_t def, int32_t *out);
/* An optional string field that fits in buf with its NUL. */
bool wh_str_field(napi_env env, napi_value obj, const char *what, const char *name, char *buf, size_t size,
                  bool *has);
/* An optional boolean field. */
bool wh_bool_field(napi_env env, napi_value obj, const char *what, const char *name, bool def, bool *out);
/* Is v an object (not null)? */
bool wh_is_object(napi_env env, napi_value v);

/* host:port (numeric, of the family AF_INET or AF_INET6) as a socket address; false if not. */
bool wh_sockaddr(int family, const char *host, int port, struct sockaddr_storage *out, socklen_t *len);

/* ---- unixsock.c: unix sockets in another filesystem root, or abstract ---- */

/* How a bind went: on failure a code of our own (or NULL: the errno name) and what failed. */
struct wh_unix_bound {
  const char *code;
  const char *what;
  /* the socket file's identity, for removing this one file later */
  uint64_t dev, ino;
};

/* An O_PATH fd of a filesystem root (NULL: "/"; "/proc/PID/root": that process's). */
int wh_root_open(const char *root);
/* An abstract address "\0name", its length exact; false if the name is empty or too long. */
bool wh_unix_abstract(const char *name, struct sockaddr_un *sun, socklen_t *len);
/* Connect sock to the socket file at the absolute path, looked up inside root. */
int wh_unix_connect_in(int sock, int root, const char *path);
/*
 * Bind sock at the absolute path inside root with the file mode given (a stale socket is
 * replaced, a live one or any other file refused), then listen. The calling thread must own
 * its umask (unshare(CLONE_FS)).
 */
int wh_unix_listen_in(int sock, int root, const char *path, int mode, int backlog, struct wh_unix_bound *out);
/* Remove the socket file at path inside root if it is still the one (dev, ino). */
int wh_unix_remove_in(int root, const char *path, uint64_t dev, uint64_t ino);

/* ---- proxyproto.c: the PROXY protocol header ---- */

/* The longest header: v2 with two unix paths (16 + 216 bytes). */
#define WH_PROXY_MAX 232
/*
 * The header of PROXY protocol `version` (1 or 2) for a connection from src (the client) to
 * dst (the head); unix_dst, when given, names the head for a unix one. Its length (0: none).
 */
size_t wh_proxy_header(int version, const struct sockaddr_storage *src, socklen_t slen,
                       const struct sockaddr_storage *dst, socklen_t dlen, const char *unix_dst,
                       uint8_t out[WH_PROXY_MAX]);

/* ---- transparent.c: a socket that takes the client's own address ---- */

/*
 * Bind fd (of `family`, not yet bound) to the address and port of the peer of the socket
 * `client`, with IP_TRANSPARENT and SO_MARK `mark`; -1 with errno set (EAFNOSUPPORT: the
 * client is of the other family).
 */
int wh_transparent_from(int fd, int client, int family, uint32_t mark);

/* Register each file's exports on `exports`. */
napi_value wh_nsfactory_init(napi_env env, napi_value exports);
napi_value wh_engine_init(napi_env env, napi_value exports);
napi_value wh_fdpass_init(napi_env env, napi_value exports);
napi_value wh_notify_init(napi_env env, napi_value exports);
napi_value wh_syncfs_init(napi_env env, napi_value exports);
napi_value wh_sockbuf_init(napi_env env, napi_value exports);
napi_value wh_proxyproto_init(napi_env env, napi_value exports);
napi_value wh_transparent_init(napi_env env, napi_value exports);
napi_value wh_heap_init(napi_env env, napi_value exports); /* heap.cc */

#endif
