/*
 * proxyproto: the PROXY protocol header (HAProxy's doc/proxy-protocol.txt) that starts a
 * connection to a tail set with `proxy-protocol v1|v2`, so that the server behind learns the
 * client's address and port and the head's, as HAProxy and nginx read them. Built here and
 * nowhere else: the engine calls wh_proxy_header, JavaScript (its mover, and a segment serving
 * a peer's client) calls proxyHeader below.
 *
 * v1: one text line, "PROXY TCP4 SRC DST SPORT DPORT\r\n" (TCP6 for IPv6), at most 107
 * bytes; a client that is no TCP peer (a unix socket) is "PROXY UNKNOWN\r\n".
 * v2: binary: the 12-byte signature, 0x21 (version 2, PROXY), the family and transport
 * (0x11 TCP over IPv4, 0x21 TCP over IPv6, 0x31 unix stream, 0x00 unspecified), the length
 * of what follows (big endian), then the addresses: IPv4 4+4 and ports 2+2 (12 bytes),
 * IPv6 16+16 and ports (36 bytes), unix two 108-byte paths (216 bytes).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "common.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t v1(const struct sockaddr_storage *src, const struct sockaddr_storage *dst, uint8_t *out) {
  char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
  int n;
  if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)src, *b = (const void *)dst;
    inet_ntop(AF_INET, &a->sin_addr, s, sizeof s);
    inet_ntop(AF_INET, &b->sin_addr, d, sizeof d);
    n = snprintf((char *)out, WH_PROXY_MAX, "PROXY TCP4 %s %s %u %u\r\n", s, d, ntohs(a->sin_port),
                 ntohs(b->sin_port));
  } else if (src->ss_family == AF_INET6 && dst->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)src, *b = (const void *)dst;
    inet_ntop(AF_INET6, &a->sin6_addr, s, sizeof s);
    inet_ntop(AF_INET6, &b->sin6_addr, d, sizeof d);
    n = snprintf((char *)out, WH_PROXY_MAX, "PROXY TCP6 %s %s %u %u\r\n", s, d, ntohs(a->sin6_port),
                 ntohs(b->sin6_port));
  } else {
    n = snprintf((char *)out, WH_PROXY_MAX, "PROXY UNKNOWN\r\n");
  }
  return n > 0 ? (size_t)n : 0;
}

/* A unix address's path into a 108-byte field (an abstract name keeps its leading NUL). */
static void unix_path(const struct sockaddr_storage *ss, socklen_t len, uint8_t *field) {
  memset(field, 0, 108);
  const struct sockaddr_un *u = (const void *)ss;
  size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
  if (n > 108) n = 108;
  memcpy(field, u->sun_path, n);
}

static size_t v2(const struct sockaddr_storage *src, socklen_t slen, const struct sockaddr_storage *dst,
                 socklen_t dlen, const char *unix_dst, uint8_t *out) {
  memcpy(out, SIG, sizeof SIG);
  out[12] = 0x21;
  uint8_t *p = out + 16;
  uint16_t len;
  if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)src, *b = (const void *)dst;
    out[13] = 0x11;
    memcpy(p, &a->sin_addr, 4);
    memcpy(p + 4, &b->sin_addr, 4);
    memcpy(p + 8, &a->sin_port, 2); /* (already big endian) */
    memcpy(p + 10, &b->sin_port, 2);
    len = 12;
  } else if (src->ss_family == AF_INET6 && dst->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)src, *b = (const void *)dst;
    out[13] = 0x21;
    memcpy(p, &a->sin6_addr, 16);
    memcpy(p + 16, &b->sin6_addr, 16);
    memcpy(p + 32, &a->sin6_port, 2);
    memcpy(p + 34, &b->sin6_port, 2);
    len = 36;
  } else if (src->ss_family == AF_UNIX && dst->ss_family == AF_UNIX) {
    out[13] = 0x31;
    unix_path(src, slen, p);
    if (unix_dst) {
      /* the head's path as the user named it (the bound name is a /proc/self/fd one); an
       * abstract "@name" is written as the kernel has it, after a NUL byte */
      size_t skip = unix_dst[0] == '@' ? 1 : 0;
      memset(p + 108, 0, 108);
      memcpy(p + 108 + skip, unix_dst + skip, strnlen(unix_dst + skip, 108 - skip));
    } else {
      unix_path(dst, dlen, p + 108);
    }
    len = 216;
  } else {
    out[13] = 0x00; /* unknown: the receiver uses the connection's own addresses */
    len = 0;
  }
  out[14] = (uint8_t)(len >> 8);
  out[15] = (uint8_t)len;
  return 16u + len;
}

size_t wh_proxy_header(int version, const struct sockaddr_storage *src, socklen_t slen,
                       const struct sockaddr_storage *dst, socklen_t dlen, const char *unix_dst,
                       uint8_t out[WH_PROXY_MAX]) {
  if (version == 1) return v1(src, dst, out);
  if (version == 2) return v2(src, slen, dst, dlen, unix_dst, out);
  return 0;
}

/* ---- the JavaScript face -------------------------------------------------------------- */

/* An address as text: IP in inet_ntop's form, a unix path ("@name" when abstract). */
static void addr_text(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t size, int *port) {
  *port = 0;
  out[0] = '\0';
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)size);
    *port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)size);
    *port = ntohs(a->sin6_port);
  } else if (ss->ss_family == AF_UNIX) {
    const struct sockaddr_un *u = (const void *)ss;
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > 0 && u->sun_path[0] == '\0') snprintf(out, size, "@%.*s", (int)(n - 1), u->sun_path + 1);
    else snprintf(out, size, "%.*s", (int)strnlen(u->sun_path, n), u->sun_path);
  }
}

/*
 * fdOrigin(fd) -> [family, src, srcPort, dst, dstPort]: a connected socket's two ends (its
 * peer, the client; and its own, the head), for the PROXY header JavaScript writes on a
 * connection the engine handed back without reading it. family 4, 6, 0 (unix), -1 unknown.
 */
static napi_value fd_origin(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  int32_t fd;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !wh_int_arg(env, argv[0], "fd", &fd)) return NULL;
  struct sockaddr_storage src, dst;
  socklen_t slen = sizeof src, dlen = sizeof dst;
  memset(&src, 0, sizeof src);
  memset(&dst, 0, sizeof dst);
  if (getpeername(fd, (struct sockaddr *)&src, &slen) != 0) return wh_throw_errno(env, errno, "getpeername");
  if (getsockname(fd, (struct sockaddr *)&dst, &dlen) != 0) return wh_throw_errno(env, errno, "getsockname");
  int family = src.ss_family == AF_INET ? 4 : src.ss_family == AF_INET6 ? 6 : src.ss_family == AF_UNIX ? 0 : -1;
  char s[120], d[120];
  int sport, dport;
  addr_text(&src, slen, s, sizeof s, &sport);
  addr_text(&dst, dlen, d, sizeof d, &dport);
  NAPI_CALL(env, napi_create_array_with_length(env, 5, &out));
  NAPI_CALL(env, napi_create_int32(env, family, &v));
  NAPI_CALL(env, napi_set_element(env, out, 0, v));
  NAPI_CALL(env, napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_element(env, out, 1, v));
  NAPI_CALL(env, napi_create_int32(env, sport, &v));
  NAPI_CALL(env, napi_set_element(env, out, 2, v));
  NAPI_CALL(env, napi_create_string_utf8(env, d, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_element(env, out, 3, v));
  NAPI_CALL(env, napi_create_int32(env, dport, &v));
  NAPI_CALL(env, napi_set_element(env, out, 4, v));
  return out;
}

/* One end of an origin ({host, port} or {path}) as a socket address; AF_UNSPEC if neither. */
static bool origin_end(napi_env env, napi_value obj, const char *name, struct sockaddr_storage *ss,
                       socklen_t *len) {
  const char *what = "proxyHeader";
  napi_value end;
  bool has, has_host, has_path;
  char host[INET6_ADDRSTRLEN + 64], path[4097];
  int32_t port;
  memset(ss, 0, sizeof *ss);
  *len = sizeof *ss;
  ss->ss_family = AF_UNSPEC;
  if (!wh_field(env, obj, name, &end, &has)) return false;
  if (!has || !wh_is_object(env, end)) return wh_bad_field(env, what, name, "{host, port} or {path}");
  if (!wh_str_field(env, end, what, "host", host, sizeof host, &has_host) ||
      !wh_int_field(env, end, what, "port", 0, 65535, 0, &port) ||
      !wh_str_field(env, end, what, "path", path, sizeof path, &has_path))
    return false;
  if (has_host) {
    host[strcspn(host, "%")] = '\0'; /* a zone (fe80::1%eth0) is no part of the address */
    if (!wh_sockaddr(AF_INET, host, port, ss, len) && !wh_sockaddr(AF_INET6, host, port, ss, len))
      ss->ss_family = AF_UNSPEC; /* not an IP address: the header says UNKNOWN */
  } else if (has_path) {
    /* as the kernel has it: "" unnamed, "@name" abstract (a NUL, then the name), or a path */
    struct sockaddr_un *u = (struct sockaddr_un *)ss;
    size_t n = strnlen(path, sizeof u->sun_path);
    u->sun_family = AF_UNIX;
    memcpy(u->sun_path, path, n);
    if (path[0] == '@') u->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  }
  return true;
}

/*
 * proxyHeader(version, origin | null) -> Buffer: the header of PROXY protocol version 1 or 2
 * for a connection from origin.src (the client) to origin.dst (the head), each {host, port}
 * or {path}; null: an origin nobody said (v1 UNKNOWN, v2 unspecified).
 */
static napi_value proxy_header_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t version;
  if (argc < 2 || !wh_int_arg(env, argv[0], "version", &version)) return NULL;
  if (version != 1 && version != 2) {
    napi_throw_range_error(env, "EINVAL", "proxyHeader: version must be 1 or 2");
    return NULL;
  }
  struct sockaddr_storage src, dst;
  socklen_t slen = sizeof src, dlen = sizeof dst;
  memset(&src, 0, sizeof src);
  memset(&dst, 0, sizeof dst);
  src.ss_family = dst.ss_family = AF_UNSPEC;
  if (wh_is_object(env, argv[1]) &&
      (!origin_end(env, argv[1], "src", &src, &slen) || !origin_end(env, argv[1], "dst", &dst, &dlen)))
    return NULL;
  uint8_t buf[WH_PROXY_MAX];
  size_t n = wh_proxy_header(version, &src, slen, &dst, dlen, NULL, buf);
  void *data;
  NAPI_CALL(env, napi_create_buffer_copy(env, n, buf, &data, &out));
  return out;
}

napi_value wh_proxyproto_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fdOrigin", NULL, fd_origin, NULL, NULL, NULL, napi_enumerable, NULL},
      {"proxyHeader", NULL, proxy_header_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
