/*
 * transparent: a socket to a `transparent` tail takes the client's own address and port
 * before it connects, so that the tail sees the client as its peer with no header.
 *
 * IP_TRANSPARENT (IPV6_TRANSPARENT) lets the socket bind an address that is not local to its
 * namespace; SO_MARK marks every packet it sends with the segment's mark, which the rules of
 * src/netns/policy.ts (in the tail's namespace) save on the connection's conntrack entry and
 * put back on the tail's replies, so that policy routing delivers them to this socket instead
 * of sending them out to the client's address. Both need CAP_NET_ADMIN: the daemon is root.
 *
 *   engine (conn.c):   wh_transparent_from(upstream, client fd, mark) before connect
 *   UDP relay (JS):    bindTransparent(fd, host, port, mark) on a socket made in the namespace
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"

/* Bind fd to addr (any address, local or not), its packets marked `mark`; -1 with errno set. */
static int transparent_bind(int fd, struct sockaddr_storage *addr, socklen_t len, uint32_t mark) {
  int one = 1;
  int rc = addr->ss_family == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                                       : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
  if (rc != 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) return -1;
  /* (a client that comes back from the same port finds the last connection in TIME_WAIT) */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  return bind(fd, (struct sockaddr *)addr, len);
}

/*
 * An IPv4 client on a dual-stack head (::ffff:a.b.c.d) is an IPv4 address for an IPv4 tail.
 * A client of the other family than the tail cannot be its peer: EAFNOSUPPORT.
 */
static int same_family(struct sockaddr_storage *ss, socklen_t *len, int family) {
  if (ss->ss_family == family) return 0;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (ss->ss_family == AF_INET6 && family == AF_INET && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
    memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &in, sizeof in);
    *len = sizeof in;
    return 0;
  }
  errno = EAFNOSUPPORT;
  return -1;
}

int wh_transparent_from(int fd, int client, int family, uint32_t mark) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(client, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (same_family(&ss, &len, family) != 0) return -1;
  return transparent_bind(fd, &ss, len, mark);
}

/*
 * bindTransparent(fd, host, port, mark): fd (a socket of host's family, made in the tail's
 * namespace, not yet bound) takes host:port, the client's, marked `mark`. Throws the errno.
 */
static napi_value bind_transparent(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, port, mark;
  char host[INET6_ADDRSTRLEN + 1];
  size_t hlen = 0;
  if (argc < 4 || !wh_int_arg(env, argv[0], "fd", &fd) || !wh_int_arg(env, argv[2], "port", &port) ||
      !wh_int_arg(env, argv[3], "mark", &mark))
    return NULL;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hlen));
  struct sockaddr_storage ss;
  socklen_t len;
  if (port < 0 || port > 65535 || mark <= 0 ||
      !(wh_sockaddr(AF_INET, host, port, &ss, &len) || wh_sockaddr(AF_INET6, host, port, &ss, &len))) {
    napi_throw_type_error(env, "EINVAL", "bindTransparent(fd, numeric host, port 0-65535, mark > 0)");
    return NULL;
  }
  if (transparent_bind(fd, &ss, len, (uint32_t)mark) != 0) return wh_throw_errno(env, errno, "bind transparent");
  return NULL;
}

napi_value wh_transparent_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"bindTransparent", NULL, bind_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
