/*
 * listen: a group's head. The engine accepts on it when it is ready (a batch at a time, so
 * that one busy head does not starve the others), counts the connection against the group's
 * cap (over it: refused at once with a reset, so the client sees a refusal, not a hang), and
 * starts dialing a tail for it (conn.c). Out of fds or memory, accepting pauses for a tenth
 * of a second instead of spinning on a listener that stays ready.
 *
 * The engine also stops short of the fd limit: it keeps the last FD_RESERVE descriptors for
 * the daemon itself, so that a flood of clients cannot take the API socket's accept (and with
 * it `wormhole delete`, the operator's way out) along with everything else. The limit is read
 * once per batch: an operator may raise or lower it under a running daemon (prlimit).
 *
 * A group with an `allow` list (checked when JavaScript makes the group: allow_from_js) refuses
 * a client from any other network the same way, before it counts as open or accepted (so it
 * never reaches JavaScript, a trigger, or idle's view of activity), and counts it refused.
 *
 * With `wake-on-data` a client is held unread until its first byte (conn.c): only then is it
 * counted and dialed, so a connect-and-close (a port scan, a TCP check) wakes nothing.
 *
 * The open count is shared with JavaScript, which holds connections too (handed back, or a
 * peer's attach): it acquires and releases on the same counter (groupAcquire, groupRelease),
 * so the cap counts every open connection of the head.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "engine.h"

void release_open(struct group *g) { __atomic_sub_fetch(&g->open, 1, __ATOMIC_RELAXED); }

bool acquire_open(struct group *g) {
  int64_t cur = __atomic_load_n(&g->open, __ATOMIC_RELAXED);
  do {
    if (cur >= g->max) return false;
  } while (!__atomic_compare_exchange_n(&g->open, &cur, cur + 1, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
  __atomic_add_fetch(&g->total, 1, __ATOMIC_RELAXED);
  return true;
}

/* Watch (EPOLLIN) or stop watching (0) every listener of a group. */
static void watch_listeners(struct engine *e, struct group *g, uint32_t events) {
  for (int i = 0; i < g->nls; i++) {
    struct epoll_event ev = {.events = events, .data.ptr = &g->ls[i].w};
    /* (a listener the kernel dropped is left: nothing is waiting on it, and unlisten closes it) */
    if (epoll_ctl(e->ep, EPOLL_CTL_MOD, g->ls[i].fd, &ev) != 0) continue;
  }
}

static void pause_listener(struct engine *e, struct group *g) {
  if (g->paused) return;
  clock_gettime(CLOCK_MONOTONIC, &e->resume_at);
  e->resume_at.tv_nsec += 100 * 1000000L; /* a tenth of a second */
  if (e->resume_at.tv_nsec >= 1000000000L) {
    e->resume_at.tv_sec++;
    e->resume_at.tv_nsec -= 1000000000L;
  }
  watch_listeners(e, g, 0);
  g->paused = true;
  g->paused_next = e->paused;
  e->paused = g;
}

void resume_listeners(struct engine *e) {
  for (struct group *g = e->paused; g; g = g->paused_next) {
    g->paused = false;
    watch_listeners(e, g, EPOLLIN);
  }
  e->paused = NULL;
}

/* A group that closes leaves the paused list: resume_listeners must never reach it once freed. */
void forget_paused(struct engine *e, struct group *g) {
  if (!g->paused) return;
  for (struct group **p = &e->paused; *p; p = &(*p)->paused_next)
    if (*p == g) {
      *p = g->paused_next;
      break;
    }
  g->paused = false;
  g->paused_next = NULL;
}

/* The highest fd the engine keeps for a client: the soft limit less the daemon's reserve.
 * Fds are handed out lowest first, so an fd number near it means that many are open. */
static int fd_ceiling(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur > (rlim_t)1 << 30)
    return 1 << 30;
  int limit = (int)rl.rlim_cur;
  int reserve = limit / 4 < FD_RESERVE ? limit / 4 : FD_RESERVE;
  return limit - reserve;
}

bool allow_from_js(napi_env env, napi_value v, struct allow_net **out, int *n) {
  *out = NULL;
  *n = 0;
  napi_valuetype t;
  bool is_buf = false;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) return true;
  uint8_t *data = NULL;
  size_t len = 0;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, v, (void **)&data, &len) != napi_ok || len % ALLOW_NET_BYTES != 0 ||
      len / ALLOW_NET_BYTES > 4096) {
    napi_throw_type_error(env, "EINVAL", "allow must be a Buffer of 18-byte entries (at most 4096)");
    return false;
  }
  size_t count = len / ALLOW_NET_BYTES;
  if (count == 0) return true;
  struct allow_net *a = calloc(count, sizeof *a);
  if (!a) {
    wh_throw_errno(env, ENOMEM, "allow");
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    const uint8_t *p = data + i * ALLOW_NET_BYTES;
    if ((p[0] != 4 && p[0] != 6) || p[1] > (p[0] == 4 ? 32 : 128)) {
      free(a);
      napi_throw_range_error(env, "EINVAL", "allow: an entry's family must be 4 or 6, its prefix fit it");
      return false;
    }
    a[i].family = p[0];
    a[i].prefix = p[1];
    memcpy(a[i].addr, p + 2, 16);
  }
  *out = a;
  *n = (int)count;
  return true;
}

bool allowed(const struct group *g, const struct sockaddr_storage *ss) {
  if (g->nallow == 0) return true;
  uint8_t family;
  const uint8_t *a;
  if (ss->ss_family == AF_INET) {
    family = 4;
    a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
  } else if (ss->ss_family == AF_INET6) {
    const struct in6_addr *in6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    /* an IPv4 client of a dual-stack head is matched as the IPv4 address it is */
    family = IN6_IS_ADDR_V4MAPPED(in6) ? 4 : 6;
    a = family == 4 ? in6->s6_addr + 12 : in6->s6_addr;
  } else {
    return false; /* no address to check: not from an allowed network */
  }
  for (int i = 0; i < g->nallow; i++) {
    const struct allow_net *n = &g->allow[i];
    if (n->family != family) continue;
    int whole = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, a, (size_t)whole) != 0) continue;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    if ((n->addr[whole] & mask) == (a[whole] & mask)) return true;
  }
  return false;
}

void accept_some(struct engine *e, struct listener *l) {
  struct group *g = l->g;
  int ceiling = fd_ceiling();
  /* (l->fd is checked each time: unlisten sets it to -1, and keeps l until the turn's end) */
  for (int i = 0; i < ACCEPT_BATCH && l->fd >= 0; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ss.ss_family = AF_UNSPEC;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= ceiling) {
      /* into the daemon's reserve: this client is turned away as if the fds had run out */
      reset_close(fd);
      fd = -1;
      errno = EMFILE;
    }
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      /* out of fds or memory: stop accepting for a moment instead of spinning */
      emit(e, EV_ACCEPT_ERROR, g, 0, errno, 0, 0);
      pause_listener(e, g);
      return;
    }
    if (!allowed(g, &ss)) {
      /* from elsewhere (`allow`): counted, no event (a scan wakes no JavaScript), a reset */
      __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
      reset_close(fd);
      continue;
    }
    if (g->wake_on_data) {
      nodelay(fd);
      conn_wait_data(e, g, fd, (int)(l - g->ls)); /* counted and dialed at its first byte (conn.c) */
      continue;
    }
    if (!acquire_open(g)) {
      __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
      emit(e, EV_REFUSED, g, 0, 0, 0, 0);
      reset_close(fd); /* refused at once: the client sees a reset, not a hang */
      continue;
    }
    nodelay(fd);
    /* (a range's listeners are in port order: this one's place is the client's in the range) */
    struct conn *c = conn_new(e, g, fd, (int)(l - g->ls));
    __atomic_store_n(&g->last, e->now_ms, __ATOMIC_RELAXED);
    if (!c || !watch_fd(e, fd, &c->w[0])) {
      if (c) {
        unlink_conn(c);
        free(c);
      }
      release_open(g);
      reset_close(fd);
      continue;
    }
    conn_dial(e, c);
  }
}
