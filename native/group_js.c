/*
 * group_js: the JavaScript values a group's commands are made from, read and checked on the
 * main thread before anything is queued: a tail (groupTail) and a head's listening fds
 * (groupListen). (A group's `allow` list is read in listen.c, beside its use.)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "engine.h"

/*
 * A tail object into a CMD_TAIL: {host, port} (a numeric IPv4 or IPv6 address), or {path}
 * ("@name": abstract, in nsFd's namespace; "/path": looked up at each dial inside rootFd's
 * tree); nsFd (-1, the default: the engine's own namespace), proxy (0, 1, 2), mark (0, the
 * default; else transparent: each dial is from the client's own address, marked so), key (the name
 * source affinity hashes; by default the address). The fds are dup'ed: the caller keeps its own.
 */
bool tail_from_js(napi_env env, napi_value tail, struct cmd *c) {
  const char *what = "groupTail";
  int32_t ns, root, port, proxy, mark, span;
  char host[INET6_ADDRSTRLEN], path[4097], key[4097];
  bool has_host, has_path, has_key;
  if (!wh_int_field(env, tail, what, "nsFd", -1, INT32_MAX, -1, &ns) ||
      !wh_int_field(env, tail, what, "rootFd", -1, INT32_MAX, -1, &root) ||
      !wh_int_field(env, tail, what, "port", 0, 65535, 0, &port) ||
      !wh_int_field(env, tail, what, "proxy", 0, 2, 0, &proxy) ||
      !wh_int_field(env, tail, what, "mark", 0, INT32_MAX, 0, &mark) ||
      !wh_int_field(env, tail, what, "span", 0, 1, 0, &span) ||
      !wh_str_field(env, tail, what, "host", host, sizeof host, &has_host) ||
      !wh_str_field(env, tail, what, "path", path, sizeof path, &has_path) ||
      !wh_str_field(env, tail, what, "key", key, sizeof key, &has_key))
    return false;
  c->proxy = (uint8_t)proxy;
  c->mark = (uint32_t)mark;
  c->span = span == 1;
  if (has_path) {
    /* unix: an abstract name is an address; a path is looked up at each dial */
    c->addr.ss_family = AF_UNIX;
    c->addr_len = sizeof(sa_family_t);
    if (path[0] == '@') {
      if (!wh_unix_abstract(path + 1, (struct sockaddr_un *)&c->addr, &c->addr_len))
        return wh_bad_field(env, what, "path", "@name with a name of 1 to 107 bytes");
    } else if (path[0] != '/' || root < 0) {
      return wh_bad_field(env, what, "path", "@name, or /path with a rootFd");
    } else if (!(c->path = strdup(path))) {
      wh_throw_errno(env, ENOMEM, what);
      return false;
    }
  } else if (!has_host || port < 1 ||
             !(wh_sockaddr(AF_INET, host, port, &c->addr, &c->addr_len) ||
               wh_sockaddr(AF_INET6, host, port, &c->addr, &c->addr_len))) {
    return wh_bad_field(env, what, "host and port", "a numeric IP address and a port from 1 to 65535 (or give a path)");
  }
  /* (a unix path's address is its path: two path tails must not hash alike) */
  c->key = has_key    ? pick_key((const uint8_t *)key, strlen(key))
           : c->path ? pick_key((const uint8_t *)c->path, strlen(c->path))
                     : pick_key((const uint8_t *)&c->addr, c->addr_len);
  if ((ns >= 0 && (c->ns = fcntl(ns, F_DUPFD_CLOEXEC, 0)) < 0) ||
      (c->path && (c->root = fcntl(root, F_DUPFD_CLOEXEC, 0)) < 0)) {
    wh_throw_errno(env, errno, "dup the tail's fds");
    return false;
  }
  c->flag = true;
  return true;
}

/* groupListen's fds (one, or `n` of an array): listeners of g, in port order; NULL with an
   exception pending when one is not an fd. */
struct listener *listeners_from_js(napi_env env, napi_value v, bool is_array, uint32_t n, struct group *g) {
  struct listener *ls = calloc(n, sizeof *ls);
  if (!ls) {
    wh_throw_errno(env, ENOMEM, "groupListen");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item = v;
    int32_t fd = 0;
    if ((is_array && napi_get_element(env, v, i, &item) != napi_ok) || !wh_int_arg(env, item, "fd", &fd)) {
      free(ls);
      return NULL;
    }
    if (fd < 0) {
      free(ls);
      napi_throw_range_error(env, "EINVAL", "groupListen: an fd is 0 or more");
      return NULL;
    }
    ls[i].w.kind = W_LISTEN;
    ls[i].fd = fd;
    ls[i].g = g;
  }
  return ls;
}
