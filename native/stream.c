/*
 * stream: one stream of a channel (chan.c), pumped between a local socket and the channel.
 * The local socket is a client's TCP connection the engine was given (a `remote` segment's
 * connection: no JavaScript per byte, nor per connection past the hand-over), or one end of a
 * socketpair whose other end JavaScript holds (calls between the daemons, what a peer opens).
 *
 * Each way, TCP's meaning is kept:
 * - local -> peer: reads go straight into the record being made, as DATA frames, never more
 *   than the window the peer granted (send_win) nor while the channel's sealed bytes wait over
 *   CHAN_OUT_HIGH; the local end's EOF is a FIN; a reset (ECONNRESET), or JavaScript closing
 *   its end both ways before the peer's FIN was passed on, is an RST.
 * - peer -> local: DATA is written to the socket at once; what it cannot take waits in `pend`
 *   (never more than the window: a peer sending more breaks the rules); a WINDOW frame grants
 *   the peer more each time the socket took STREAM_CREDIT, so a reader that stalls holds only
 *   its own stream. FIN is shutdown(SHUT_WR) once pend is empty; RST resets a TCP socket
 *   (SO_LINGER 0), and for a socketpair tells JavaScript (EV_CHAN_RESET), whose end then
 *   closes: until then the stream is a zombie, off the table, its socket still watched.
 * - A stream ends cleanly once FIN went both ways and pend is empty.
 *
 * A peer's OPEN may name a segment (streamdial.c): the engine dials its tail and the tail's
 * socket is the stream's local end from the start (fd -1 while it dials: what comes meanwhile
 * waits in pend); when it cannot, the stream goes to JavaScript (stream_to_js) as any other.
 *
 * The dialer's attach (src/peer) sends the request as the stream's first bytes and the
 * client's bytes right behind it; the peer's reply is the stream's first frame of the API
 * (a 4-byte length, then JSON), dropped here (`skipping`): a refusal is followed by an RST,
 * which resets the client.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

void stream_drop(struct engine *e, struct stream *st, bool rst) {
  struct chan *ch = st->ch;
  /* one the engine dialed (or dials) is nobody's in JavaScript: the group hears of its end */
  bool dialed = st->dialing || st->target || st->g;
  if (st->dialing) {
    /* (its dial is abandoned: the connection lets go of the stream first) */
    struct conn *c = st->dialing;
    st->dialing = NULL;
    c->st = NULL;
    conn_end(e, c, ECONNABORTED, false);
  }
  free(st->target);
  st->target = NULL;
  if (st->g) streamdial_ended(e, st, rst);
  chan_unhash(ch, st);
  chan_unlist(ch, st);
  if (st->fd >= 0) {
    epoll_ctl(e->ep, EPOLL_CTL_DEL, st->fd, NULL);
    if (rst) reset_close(st->fd);
    else close(st->fd);
    st->fd = -1;
  }
  free(st->pend);
  st->pend = NULL;
  /* a client's connection JavaScript gave: its end is told (counters, the access log) */
  if (!st->notify && !dialed)
    emit(e, EV_CHAN_STREAM_END, NULL, ch->id, st->id, (double)st->sent,
         (double)(st->delivered - st->dropped) + (rst ? 1125899906842624.0 : 0));
  st->dead_next = e->streams_dead;
  e->streams_dead = st;
  /* a channel that takes no new streams closes after its last */
  if (ch->draining && !ch->dead && ch->nstreams == 0) chan_end(e, ch, CW_DRAINED, 0, 0);
}

/* The stream is reset from this side: RST to the peer, the local socket reset. */
static void stream_reset(struct engine *e, struct stream *st) {
  chan_frame(e, st->ch, FT_RST, st->id, NULL, 0);
  stream_drop(e, st, true);
}

/* FIN went both ways and everything received was delivered: a clean end. */
static bool maybe_done(struct engine *e, struct stream *st) {
  if (!(st->fin_out && st->shut_local && st->pend_off == st->pend_len)) return true;
  stream_drop(e, st, false);
  return false;
}

struct stream *stream_new(struct engine *e, struct chan *ch, uint32_t id, int fd, bool notify) {
  struct stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->w.kind = W_STREAM;
  st->id = id;
  st->fd = fd;
  st->ch = ch;
  st->notify = notify;
  st->send_win = STREAM_WINDOW;
  st->recv_limit = STREAM_WINDOW;
  if (!chan_insert(ch, st)) {
    free(st);
    return NULL;
  }
  if (fd >= 0 && !watch_fd(e, fd, &st->w)) {
    chan_unhash(ch, st);
    chan_unlist(ch, st);
    free(st);
    return NULL;
  }
  return st;
}

void stream_pump(struct engine *e, struct stream *st) {
  struct chan *ch = st->ch;
  while (!st->fin_out && !ch->dead && st->fd >= 0 && !st->zombie) {
    if (st->send_win <= 0) return; /* a WINDOW frame pumps again */
    if (chan_full(ch)) {
      if (!st->blocked) {
        st->blocked = true;
        st->bnext = ch->blocked;
        ch->blocked = st;
      }
      return;
    }
    uint32_t room;
    uint8_t *p = chan_data_room(e, ch, &room);
    if (!p) return;
    if (room > st->send_win) room = (uint32_t)st->send_win;
    ssize_t n = recv(st->fd, p, room, MSG_DONTWAIT);
    if (n > 0) {
      chan_data_commit(e, ch, st->id, (uint32_t)n);
      st->send_win -= n;
      st->sent += (uint64_t)n;
      if (st->g) streamdial_count(e, st, false, (uint64_t)n);
      continue;
    }
    if (n == 0) {
      /* closed both ways before the peer's FIN was passed on: what a reset means */
      if (st->hup && !st->shut_local) return stream_reset(e, st);
      st->fin_out = true;
      chan_frame(e, ch, FT_FIN, st->id, NULL, 0);
      maybe_done(e, st);
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) stream_reset(e, st);
    return;
  }
}

/* The local socket took n more bytes: grant the peer as much once it is worth a frame. */
static void delivered(struct engine *e, struct stream *st, uint64_t n) {
  st->delivered += n;
  if (st->g) streamdial_count(e, st, true, n);
  uint64_t grant = st->delivered - st->granted_at;
  if (grant < STREAM_CREDIT) return;
  st->granted_at = st->delivered;
  st->recv_limit += grant;
  uint8_t p[4] = {(uint8_t)(grant >> 24), (uint8_t)(grant >> 16), (uint8_t)(grant >> 8), (uint8_t)grant};
  chan_frame(e, st->ch, FT_WINDOW, st->id, p, 4);
}

/* Write what waits to the local socket; a FIN received is passed on once all is. false: ended. */
static bool flush_pend(struct engine *e, struct stream *st) {
  if (st->fd < 0) return true; /* (a tail still being dialed: stream_connected writes it) */
  while (st->pend_off < st->pend_len) {
    ssize_t n = send(st->fd, st->pend + st->pend_off, st->pend_len - st->pend_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return true; /* EPOLLOUT comes back */
      stream_reset(e, st);
      return false;
    }
    st->pend_off += (uint32_t)n;
    /* (bytes a rebind moved were delivered once already: not granted again) */
    uint64_t twice = st->again < (uint64_t)n ? st->again : (uint64_t)n;
    st->again -= twice;
    delivered(e, st, (uint64_t)n - twice);
  }
  st->pend_off = st->pend_len = 0;
  if (st->pend_cap > 65536) {
    /* (an idle stream holds no big buffer) */
    free(st->pend);
    st->pend = NULL;
    st->pend_cap = 0;
  }
  if (st->fin_in && !st->shut_local) {
    shutdown(st->fd, SHUT_WR);
    st->shut_local = true;
    return maybe_done(e, st);
  }
  return true;
}

/* Drop the peer's reply frame off the front of what it sends (attach); returns bytes used. */
static uint32_t skip_reply(struct stream *st, const uint8_t *p, uint32_t n) {
  uint32_t used = 0;
  while (used < n && st->skip_got < 4) st->skip_hdr[st->skip_got++] = p[used++];
  if (st->skip_got < 4) return used;
  if (st->skip_got == 4) {
    st->skip_left = (uint32_t)st->skip_hdr[0] << 24 | (uint32_t)st->skip_hdr[1] << 16 |
                    (uint32_t)st->skip_hdr[2] << 8 | st->skip_hdr[3];
    st->skip_got = 5; /* (the length is known) */
  }
  uint32_t k = n - used < st->skip_left ? n - used : st->skip_left;
  st->skip_left -= k;
  used += k;
  if (st->skip_left == 0) st->skipping = false;
  return used;
}

/* DATA from the peer. */
static bool on_data(struct engine *e, struct stream *st, const uint8_t *p, uint32_t n, int *why) {
  if (st->fin_in) return *why = CW_ORDER, false;
  if (st->recv_got + n > st->recv_limit) return *why = CW_WINDOW, false;
  st->recv_got += n;
  if (st->skipping) {
    uint32_t k = skip_reply(st, p, n);
    delivered(e, st, k); /* (dropped bytes are taken as far as the window goes) */
    st->dropped += k;
    p += k;
    n -= k;
    if (n == 0) return true;
  }
  if (st->pend_off == st->pend_len && st->fd >= 0) {
    /* nothing waits (and the tail is there): straight to the socket */
    for (;;) {
      ssize_t w = send(st->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno != EAGAIN) {
        stream_reset(e, st);
        return true;
      }
      if (w > 0) {
        p += w;
        n -= (uint32_t)w;
        delivered(e, st, (uint64_t)w);
      }
      break;
    }
    if (n == 0) return true;
  }
  /* the rest waits for the socket (bounded by the window checked above) */
  if (st->pend_len + n > st->pend_cap) {
    if (st->pend_off > 0) {
      memmove(st->pend, st->pend + st->pend_off, st->pend_len - st->pend_off);
      st->pend_len -= st->pend_off;
      st->pend_off = 0;
    }
    if (st->pend_len + n > st->pend_cap) {
      uint32_t cap = st->pend_cap ? st->pend_cap : 16384;
      while (cap < st->pend_len + n) cap *= 2;
      uint8_t *b = realloc(st->pend, cap);
      if (!b) {
        stream_reset(e, st);
        return true;
      }
      st->pend = b;
      st->pend_cap = cap;
    }
  }
  memcpy(st->pend + st->pend_len, p, n);
  st->pend_len += n;
  return true;
}

bool stream_frame(struct engine *e, struct stream *st, int type, const uint8_t *p, uint32_t n, int *why) {
  switch (type) {
  case FT_DATA:
    return on_data(e, st, p, n, why);
  case FT_FIN:
    if (st->fin_in) return *why = CW_ORDER, false;
    st->fin_in = true;
    /* closed before its reply came: the client is reset, as the JavaScript channel does */
    if (st->skipping) stream_reset(e, st);
    else flush_pend(e, st);
    return true;
  case FT_RST:
    if (st->notify) {
      /* JavaScript resets its end on the event; the socket stays until it has closed it */
      emit(e, EV_CHAN_RESET, NULL, st->ch->id, st->id, 0, 0);
      chan_unhash(st->ch, st);
      st->zombie = true;
      if (st->ch->draining && st->ch->nstreams == 0) chan_end(e, st->ch, CW_DRAINED, 0, 0);
    } else {
      stream_drop(e, st, true);
    }
    return true;
  case FT_WINDOW: {
    uint32_t grant = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (grant == 0 || (uint64_t)st->send_win + grant > STREAM_MAX_WINDOW) return *why = CW_WINDOW, false;
    st->send_win += grant;
    stream_pump(e, st);
    return true;
  }
  }
  return *why = CW_FRAME, false;
}

void stream_event(struct engine *e, struct stream *st, uint32_t events) {
  if (st->fd < 0 || st->ch->dead) return;
  if (st->zombie) {
    /* waiting for JavaScript to close its end: whatever it still sends goes nowhere */
    uint8_t sink[4096];
    ssize_t n;
    while ((n = recv(st->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & (EPOLLHUP | EPOLLERR)))
      stream_drop(e, st, false);
    return;
  }
  if (events & EPOLLHUP) st->hup = true;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && !flush_pend(e, st)) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) stream_pump(e, st);
}

/* Put n bytes in front of what waits for the local socket. false: out of memory. */
static bool pend_front(struct stream *st, const uint8_t *p, uint32_t n) {
  uint32_t have = st->pend_len - st->pend_off;
  uint8_t *b = malloc(have + n + 1);
  if (!b) return false;
  memcpy(b, p, n);
  if (have) memcpy(b + n, st->pend + st->pend_off, have);
  free(st->pend);
  st->pend = b;
  st->pend_off = 0;
  st->pend_len = st->pend_cap = have + n;
  return true;
}

void stream_rebind(struct engine *e, struct chan *ch, uint32_t id, int tail, int js, const uint8_t *first,
                   uint32_t n) {
  struct stream *st = ch->dead ? NULL : chan_find(ch, id);
  if (!st || !st->notify || st->zombie) {
    /* the stream ended meanwhile (a reset from the peer): the tail is reset too */
    reset_close(tail);
    close(js);
    emit(e, EV_CHAN_STREAM_END, NULL, ch->id, id, 0, 1125899906842624.0);
    return;
  }
  /* 1. what JavaScript wrote to the stream (the attach's reply) leaves first */
  stream_pump(e, st);
  if (st->fd < 0 || ch->dead) {
    reset_close(tail);
    close(js);
    return;
  }
  /* 2. for the tail: what JavaScript read of the stream, then what still waits at its end */
  uint8_t buf[16384];
  uint64_t moved = n;
  bool ok = true;
  size_t k = 0;
  uint8_t *rest = NULL;
  for (;;) {
    ssize_t r = recv(js, buf, sizeof buf, MSG_DONTWAIT);
    if (r <= 0) break;
    uint8_t *nr = realloc(rest, k + (size_t)r);
    if (!nr) {
      ok = false;
      break;
    }
    rest = nr;
    memcpy(rest + k, buf, (size_t)r);
    k += (size_t)r;
  }
  moved += k;
  ok = ok && (k == 0 || pend_front(st, rest, (uint32_t)k)) && (n == 0 || pend_front(st, first, n));
  free(rest);
  close(js);
  /* 3. the socketpair goes; the tail is the stream's end from here */
  epoll_ctl(e->ep, EPOLL_CTL_DEL, st->fd, NULL);
  close(st->fd);
  st->fd = tail;
  st->notify = false;
  st->hup = false;
  st->again = moved;
  /* the counts from here are the tail's: bytes it gets (not those delivered before), sends */
  st->dropped = st->delivered - moved;
  st->sent = 0;
  /* a FIN received already goes on to the tail, once what waits is written */
  st->shut_local = false;
  nodelay(tail);
  if (!ok || !watch_fd(e, tail, &st->w)) return stream_reset(e, st);
  if (flush_pend(e, st)) stream_pump(e, st);
}

bool stream_open(struct engine *e, struct chan *ch, uint32_t id, int fd, const uint8_t *first, uint32_t n,
                 bool skip, bool notify, const uint8_t *target, uint32_t tn) {
  struct stream *st = stream_new(e, ch, id, fd, notify);
  if (!st) return false;
  if (id > ch->last_id) ch->last_id = id;
  st->skipping = skip;
  chan_frame(e, ch, FT_OPEN, id, target, tn); /* (a target: the peer's engine dials, streamdial.c) */
  /* the first bytes (an attach request) leave with the OPEN, the client's right behind */
  while (n > 0 && !ch->dead) {
    uint32_t room;
    uint8_t *p = chan_data_room(e, ch, &room);
    if (!p) break;
    uint32_t k = n < room ? n : room;
    memcpy(p, first, k);
    chan_data_commit(e, ch, id, k);
    st->send_win -= k;
    first += k;
    n -= k;
  }
  stream_pump(e, st);
  return true;
}

/*
 * What waited for the local socket (the peer's first bytes, sent with its OPEN while the
 * tail was dialed) is written: its buffer goes. Kept, its 16 KiB held a touched page or more
 * in every idle stream (about 4 KiB of RSS each at the tail's daemon).
 */
static void pend_release(struct stream *st) {
  if (st->pend_off != st->pend_len) return;
  free(st->pend);
  st->pend = NULL;
  st->pend_cap = st->pend_off = st->pend_len = 0;
}

void stream_to_js(struct engine *e, struct stream *st, const uint8_t *p, uint32_t n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    return stream_reset(e, st); /* out of fds: this stream is refused, not the channel */
  /* the target first, whole (a new socketpair's buffer takes it at once: OPEN_MAX is small) */
  uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  bool ok = n == 0 || (send(sv[0], len, 4, MSG_NOSIGNAL | MSG_DONTWAIT) == 4 &&
                       send(sv[0], p, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n);
  if (!ok || !watch_fd(e, sv[0], &st->w)) {
    close(sv[0]);
    close(sv[1]);
    return stream_reset(e, st);
  }
  st->fd = sv[0];
  st->notify = true;
  emit(e, EV_CHAN_STREAM, NULL, st->ch->id, st->id, sv[1], n > 0);
  /* what came while the engine dialed (a failed dial) follows the target */
  if (flush_pend(e, st)) pend_release(st);
}

void stream_connected(struct engine *e, struct stream *st, int fd) {
  st->fd = fd;
  if (!watch_fd(e, fd, &st->w)) return stream_reset(e, st);
  if (!flush_pend(e, st)) return;
  pend_release(st);
  stream_pump(e, st);
}

void stream_accept(struct engine *e, struct chan *ch, uint32_t id, const uint8_t *p, uint32_t n) {
  if (n > 0) return streamdial_open(e, ch, id, p, n);
  struct stream *st = stream_new(e, ch, id, -1, false);
  if (!st) {
    chan_frame(e, ch, FT_RST, id, NULL, 0);
    return;
  }
  stream_to_js(e, st, NULL, 0);
}
