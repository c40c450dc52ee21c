/*
 * What every file of the addon shares: the N-API status check, errors thrown (or promises
 * rejected) with the errno name as `code`, and small argument readers.
 */
#ifndef WORMHOLE_COMMON_H
#define WORMHOLE_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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

/* Read an int32 argument; false (and a TypeError thrown) if it is not a number. */
bool wh_int_arg(napi_env env, napi_value v, const char *name, int32_t *out);
/* The pointer behind an External argument (an engine or a group handle). */
bool wh_ptr_arg(napi_env env, napi_value v, const char *name, void **out);

/* host:port (numeric, of the family AF_INET or AF_INET6) as a socket address; false if not. */
bool wh_sockaddr(int family, const char *host, int port, struct sockaddr_storage *out, socklen_t *len);

/* Register each file's exports on `exports`. */
napi_value wh_nsfactory_init(napi_env env, napi_value exports);
napi_value wh_engine_init(napi_env env, napi_value exports);
napi_value wh_fdpass_init(napi_env env, napi_value exports);
napi_value wh_notify_init(napi_env env, napi_value exports);

#endif
