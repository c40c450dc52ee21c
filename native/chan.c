/*
 * chan: a channel to a peer daemon, carried by the engine (issue 17's engine phase). The TLS
 * handshake and the `channel` request happen in Node (src/peer); then both daemons derive
 * keys from the handshake (its exporter), Node lets go of the raw TCP connection, and the
 * engine speaks sealed records on it (engine.h: the record format) holding the frames of
 * src/peer/frame.ts. Streams are stream.c's; this file is the connection's side:
 *
 * - Out: frames queue in `plain` (a DATA frame's payload is read straight into it, stream.c);
 *   a record is sealed when the next frame does not fit, and at the end of every loop turn
 *   (chan_flush_dirty), so that what a turn produced leaves in few records and one write.
 *   While sealed bytes wait over CHAN_OUT_HIGH, streams stop reading their sockets (the
 *   blocked list) and start again as the connection drains.
 * - In: reads of up to two records' worth; each whole record is opened in place (a record
 *   that fails authentication ends the channel) and its frames handled one by one.
 * - The dialing side speaks first (its first record goes at once); the accepting side sends
 *   nothing before a record came, so that no byte of the new format can reach Node's TLS on
 *   either side while Node still holds the connection.
 * - Anything the format or the rules forbid ends the channel with one reason (EV_CHAN_CLOSED):
 *   its streams are reset, the other channels and every local connection go on.
 */
#include <openssl/evp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

/* ---- the records ------------------------------------------------------------------------- */

static void nonce(const uint8_t base[12], uint64_t seq, uint8_t out[12]) {
  memcpy(out, base, 12);
  for (int i = 0; i < 8; i++) out[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

bool chan_keys(struct chan *ch, const uint8_t keys[CHAN_KEYS]) {
  /* keys: the dialer's way (key, nonce base), then the acceptor's */
  const uint8_t *mine = ch->dialer ? keys : keys + 44, *theirs = ch->dialer ? keys + 44 : keys;
  EVP_CIPHER_CTX *tx = EVP_CIPHER_CTX_new(), *rx = EVP_CIPHER_CTX_new();
  if (!tx || !rx || EVP_EncryptInit_ex(tx, EVP_aes_256_gcm(), NULL, mine, NULL) != 1 ||
      EVP_DecryptInit_ex(rx, EVP_aes_256_gcm(), NULL, theirs, NULL) != 1) {
    EVP_CIPHER_CTX_free(tx);
    EVP_CIPHER_CTX_free(rx);
    return false;
  }
  ch->tx = tx;
  ch->rx = rx;
  memcpy(ch->tx_iv, mine + 32, 12);
  memcpy(ch->rx_iv, theirs + 32, 12);
  return true;
}

bool chan_seal(void *ctx, const uint8_t iv[12], uint64_t seq, const uint8_t *plain, uint32_t n, uint8_t *out) {
  uint8_t nc[12];
  int len = 0, fin = 0;
  nonce(iv, seq, nc);
  uint32_t clen = n + REC_TAG;
  out[0] = (uint8_t)(clen >> 24);
  out[1] = (uint8_t)(clen >> 16);
  out[2] = (uint8_t)(clen >> 8);
  out[3] = (uint8_t)clen;
  return EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nc) == 1 && EVP_EncryptUpdate(ctx, NULL, &len, out, REC_HDR) == 1 &&
         EVP_EncryptUpdate(ctx, out + REC_HDR, &len, plain, (int)n) == 1 &&
         EVP_EncryptFinal_ex(ctx, out + REC_HDR + len, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, REC_TAG, out + REC_HDR + n) == 1;
}

/* Open a record in place (rec: its header, ciphertext, tag); false: it is not authentic. */
static bool chan_open_rec(struct chan *ch, uint8_t *rec, uint32_t n) {
  uint8_t nc[12];
  int len = 0, fin = 0;
  nonce(ch->rx_iv, ch->rx_seq, nc);
  EVP_CIPHER_CTX *ctx = ch->rx;
  return EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nc) == 1 && EVP_DecryptUpdate(ctx, NULL, &len, rec, REC_HDR) == 1 &&
         EVP_DecryptUpdate(ctx, rec + REC_HDR, &len, rec + REC_HDR, (int)n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, REC_TAG, rec + REC_HDR + n) == 1 &&
         EVP_DecryptFinal_ex(ctx, rec + REC_HDR + len, &fin) == 1;
}

/* ---- out --------------------------------------------------------------------------------- */

static void mark_dirty(struct engine *e, struct chan *ch) {
  if (ch->dirty) return;
  ch->dirty = true;
  ch->dirty_next = e->dirty;
  e->dirty = ch;
}

/* Seal the frames queued into one record at the end of out; false: the channel ended. */
static bool seal(struct engine *e, struct chan *ch) {
  if (ch->plain_len == 0 || ch->dead) return !ch->dead;
  if (ch->tx_seq == UINT64_MAX - 1) {
    chan_end(e, ch, CW_WORN, 0, 0);
    return false;
  }
  size_t need = ch->out_len + REC_HDR + ch->plain_len + REC_TAG;
  if (need > ch->out_cap) {
    if (ch->out_off > 0) {
      memmove(ch->out, ch->out + ch->out_off, ch->out_len - ch->out_off);
      ch->out_len -= ch->out_off;
      need -= ch->out_off;
      ch->out_off = 0;
    }
    if (need > ch->out_cap) {
      size_t cap = ch->out_cap ? ch->out_cap : REC_MAX;
      while (cap < need) cap *= 2;
      uint8_t *n = realloc(ch->out, cap);
      if (!n) {
        chan_end(e, ch, CW_NOMEM, ENOMEM, 0);
        return false;
      }
      ch->out = n;
      ch->out_cap = cap;
    }
  }
  if (!chan_seal(ch->tx, ch->tx_iv, ch->tx_seq, ch->plain, ch->plain_len, ch->out + ch->out_len)) {
    chan_end(e, ch, CW_NOMEM, EIO, 0);
    return false;
  }
  ch->tx_seq++;
  ch->out_len += REC_HDR + ch->plain_len + REC_TAG;
  ch->plain_len = 0;
  return true;
}

bool chan_full(struct chan *ch) {
  return ch->out_len - ch->out_off > CHAN_OUT_HIGH;
}

/* Write what is sealed until the connection would block; streams blocked on it read again. */
static void write_out(struct engine *e, struct chan *ch) {
  while (!ch->dead && ch->out_off < ch->out_len) {
    ssize_t n = send(ch->fd, ch->out + ch->out_off, ch->out_len - ch->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) chan_end(e, ch, CW_IO, errno, 0);
      return; /* EAGAIN: EPOLLOUT brings us back */
    }
    ch->out_off += (size_t)n;
    __atomic_add_fetch(&ch->bytes_up, n, __ATOMIC_RELAXED);
  }
  if (ch->dead) return;
  ch->out_off = ch->out_len = 0;
  /* room again: the streams that waited for it read their sockets */
  while (ch->blocked && !chan_full(ch) && !ch->dead) {
    struct stream *st = ch->blocked;
    ch->blocked = st->bnext;
    st->blocked = false;
    stream_pump(e, st);
  }
}

/* Make room for `n` more bytes in the record being made: seal it if they do not fit. */
static bool room_for(struct engine *e, struct chan *ch, uint32_t n) {
  if (ch->plain_len + n <= REC_PLAIN) return true;
  return seal(e, ch);
}

void chan_frame(struct engine *e, struct chan *ch, int type, uint32_t stream, const void *p, uint32_t n) {
  if (ch->dead || !room_for(e, ch, FRAME_HDR + n)) return;
  uint8_t *h = ch->plain + ch->plain_len;
  h[0] = (uint8_t)type;
  h[1] = 0;
  h[2] = (uint8_t)(stream >> 24);
  h[3] = (uint8_t)(stream >> 16);
  h[4] = (uint8_t)(stream >> 8);
  h[5] = (uint8_t)stream;
  h[6] = (uint8_t)(n >> 24);
  h[7] = (uint8_t)(n >> 16);
  h[8] = (uint8_t)(n >> 8);
  h[9] = (uint8_t)n;
  if (n) memcpy(h + FRAME_HDR, p, n);
  ch->plain_len += FRAME_HDR + n;
  mark_dirty(e, ch);
}

uint8_t *chan_data_room(struct engine *e, struct chan *ch, uint32_t *room) {
  /* (a frame of at least a few KiB, else a new record: no record full of tiny pieces) */
  if (ch->plain_len + FRAME_HDR + 4096 > REC_PLAIN && !seal(e, ch)) return NULL;
  uint32_t left = REC_PLAIN - ch->plain_len - FRAME_HDR;
  *room = left < FRAME_MAX ? left : FRAME_MAX;
  return ch->plain + ch->plain_len + FRAME_HDR;
}

void chan_data_commit(struct engine *e, struct chan *ch, uint32_t stream, uint32_t n) {
  /* the payload is in place: write the header in front of it (chan_frame with no copy) */
  uint8_t *h = ch->plain + ch->plain_len;
  h[0] = FT_DATA;
  h[1] = 0;
  for (int i = 0; i < 4; i++) h[2 + i] = (uint8_t)(stream >> (24 - 8 * i));
  for (int i = 0; i < 4; i++) h[6 + i] = (uint8_t)(n >> (24 - 8 * i));
  ch->plain_len += FRAME_HDR + n;
  mark_dirty(e, ch);
}

void chan_flush_dirty(struct engine *e) {
  while (e->dirty) {
    struct chan *ch = e->dirty;
    e->dirty = ch->dirty_next;
    ch->dirty = false;
    if (ch->dead) continue;
    /* the accepting side says nothing before the dialer's first record (see the top) */
    if (!ch->dialer && !ch->heard) continue;
    if (seal(e, ch)) write_out(e, ch);
  }
}

/* ---- the stream table -------------------------------------------------------------------- */

struct stream *chan_find(struct chan *ch, uint32_t id) {
  if (!ch->nbuckets) return NULL;
  for (struct stream *s = ch->buckets[id & (ch->nbuckets - 1)]; s; s = s->hnext)
    if (s->id == id) return s;
  return NULL;
}

bool chan_insert(struct chan *ch, struct stream *st) {
  if ((uint32_t)ch->nstreams + 1 > ch->nbuckets) {
    /* grow: as many buckets as streams, a power of two */
    uint32_t nb = ch->nbuckets ? ch->nbuckets * 2 : 64;
    struct stream **b = calloc(nb, sizeof *b);
    if (!b) return false;
    for (uint32_t i = 0; i < ch->nbuckets; i++) {
      while (ch->buckets[i]) {
        struct stream *s = ch->buckets[i];
        ch->buckets[i] = s->hnext;
        s->hnext = b[s->id & (nb - 1)];
        b[s->id & (nb - 1)] = s;
      }
    }
    free(ch->buckets);
    ch->buckets = b;
    ch->nbuckets = nb;
  }
  struct stream **head = &ch->buckets[st->id & (ch->nbuckets - 1)];
  st->hnext = *head;
  *head = st;
  st->hashed = true;
  st->next = ch->streams;
  if (ch->streams) ch->streams->prev = st;
  ch->streams = st;
  __atomic_add_fetch(&ch->nstreams, 1, __ATOMIC_RELAXED);
  return true;
}

void chan_unhash(struct chan *ch, struct stream *st) {
  if (!st->hashed) return;
  st->hashed = false;
  for (struct stream **p = &ch->buckets[st->id & (ch->nbuckets - 1)]; *p; p = &(*p)->hnext)
    if (*p == st) {
      *p = st->hnext;
      __atomic_sub_fetch(&ch->nstreams, 1, __ATOMIC_RELAXED);
      break;
    }
}

void chan_unlist(struct chan *ch, struct stream *st) {
  if (st->prev) st->prev->next = st->next;
  else if (ch->streams == st) ch->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = NULL;
  if (st->blocked) {
    for (struct stream **p = &ch->blocked; *p; p = &(*p)->bnext)
      if (*p == st) {
        *p = st->bnext;
        break;
      }
    st->blocked = false;
  }
}

/* ---- in ---------------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Monotonic nanoseconds: a keepalive's payload, echoed back by PONG. */
static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* One frame of an opened record; false once the channel has ended. */
static bool on_frame(struct engine *e, struct chan *ch, const uint8_t *f, uint32_t len) {
  int type = f[0];
  uint32_t id = be32(f + 2);
  const uint8_t *p = f + FRAME_HDR;
  bool control = type == FT_PING || type == FT_PONG || type == FT_GOAWAY;
  static const int8_t fixed[] = {-1, 0, 0, 0, 4, 8, 8, 0};
  /* (an OPEN may name a target: streamdial.c) */
  bool bad_len = type == FT_OPEN         ? len > OPEN_MAX
                 : type > FT_GOAWAY     ? true
                 : fixed[type] < 0      ? len < 1 || len > FRAME_MAX
                                        : len != (uint32_t)fixed[type];
  if (type > FT_GOAWAY || f[1] != 0 || bad_len || control != (id == 0)) {
    chan_end(e, ch, CW_FRAME, type, id);
    return false;
  }
  switch (type) {
  case FT_PING:
    chan_frame(e, ch, FT_PONG, 0, p, 8);
    return true;
  case FT_PONG: {
    uint64_t sent = 0;
    for (int i = 0; i < 8; i++) sent = sent << 8 | p[i];
    uint64_t now = mono_ns();
    if (sent > now) return true; /* not one of ours */
    double ms = (double)(now - sent) / 1e6;
    __atomic_store_n(&ch->rtt_ms, (int64_t)(ms * 1000), __ATOMIC_RELAXED);
    emit(e, EV_CHAN_PONG, NULL, ch->id, ms, 0, 0);
    return true;
  }
  case FT_GOAWAY:
    if (!ch->dialer) {
      chan_end(e, ch, CW_FRAME, type, 0);
      return false;
    }
    ch->draining = true;
    emit(e, EV_CHAN_GOAWAY, NULL, ch->id, 0, 0, 0);
    if (ch->nstreams == 0) {
      chan_end(e, ch, CW_DRAINED, 0, 0);
      return false;
    }
    return true;
  case FT_OPEN:
    if (ch->dialer || id % 2 == 0 || id <= ch->last_id) {
      chan_end(e, ch, CW_STREAM, type, id);
      return false;
    }
    ch->last_id = id;
    /* past the cap, or draining: the stream is refused, the channel goes on */
    if (ch->draining || ch->nstreams >= CHAN_MAX_STREAMS) chan_frame(e, ch, FT_RST, id, NULL, 0);
    else stream_accept(e, ch, id, p, len);
    return !ch->dead;
  }
  struct stream *st = chan_find(ch, id);
  if (!st) {
    /* what the peer sent before it knew the stream had ended here; any other id is a breach */
    if (id % 2 == 1 && id <= ch->last_id) return true;
    chan_end(e, ch, CW_STREAM, type, id);
    return false;
  }
  int why = 0;
  if (!stream_frame(e, st, type, p, len, &why)) {
    chan_end(e, ch, why, type, id);
    return false;
  }
  return !ch->dead;
}

bool chan_receive(struct engine *e, struct chan *ch) {
  uint32_t off = 0;
  while (!ch->dead && ch->in_len - off >= REC_HDR) {
    uint8_t *rec = ch->in + off;
    uint32_t clen = be32(rec);
    if (clen < REC_TAG + FRAME_HDR || clen > REC_PLAIN + REC_TAG) {
      chan_end(e, ch, CW_RECORD, 0, 0);
      return false;
    }
    if (ch->in_len - off < REC_HDR + clen) break;
    uint32_t n = clen - REC_TAG;
    if (ch->rx_seq == UINT64_MAX - 1) {
      chan_end(e, ch, CW_WORN, 0, 0);
      return false;
    }
    if (!chan_open_rec(ch, rec, n)) {
      chan_end(e, ch, CW_AUTH, 0, 0);
      return false;
    }
    ch->rx_seq++;
    if (!ch->heard) {
      ch->heard = true;
      mark_dirty(e, ch); /* the accepting side may speak now */
    }
    __atomic_store_n(&ch->heard_at, e->now_ms, __ATOMIC_RELAXED);
    /* its frames, whole, one after the other */
    const uint8_t *p = rec + REC_HDR, *end = p + n;
    while (p < end) {
      if (end - p < FRAME_HDR || be32(p + 6) > (uint32_t)(end - p - FRAME_HDR)) {
        chan_end(e, ch, CW_FRAME, p[0], 0);
        return false;
      }
      uint32_t len = be32(p + 6);
      if (!on_frame(e, ch, p, len)) return false;
      p += FRAME_HDR + len;
    }
    off += REC_HDR + clen;
  }
  if (ch->dead) return false;
  if (off > 0) {
    memmove(ch->in, ch->in + off, ch->in_len - off);
    ch->in_len -= off;
  }
  return true;
}

/*
 * Read what the connection holds. A read shorter than asked took all there was: the next
 * byte to arrive wakes epoll again (edge-triggered: each arrival is an edge), so the read
 * that would say EAGAIN is saved (one syscall per wakeup, on the round trip's path) unless
 * the event said the peer closed (`to_eof`: that is read on to its 0).
 */
static void chan_read(struct engine *e, struct chan *ch, bool to_eof) {
  while (!ch->dead) {
    size_t want = 2 * REC_MAX - ch->in_len;
    ssize_t n = recv(ch->fd, ch->in + ch->in_len, want, MSG_DONTWAIT);
    if (n == 0) return chan_end(e, ch, CW_EOF, 0, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) chan_end(e, ch, CW_IO, errno, 0);
      return;
    }
    __atomic_add_fetch(&ch->bytes_down, n, __ATOMIC_RELAXED);
    ch->in_len += (uint32_t)n;
    if (!chan_receive(e, ch)) return;
    if ((size_t)n < want && !to_eof) return;
  }
}

void chan_event(struct engine *e, struct chan *ch, uint32_t events) {
  if (ch->dead) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    chan_read(e, ch, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  if (!ch->dead && (events & EPOLLOUT) && (ch->dialer || ch->heard)) write_out(e, ch);
}

/* ---- life -------------------------------------------------------------------------------- */

void chan_add(struct engine *e, struct chan *ch) {
  ch->w.kind = W_CHAN;
  ch->next = e->chans;
  if (e->chans) e->chans->prev = ch;
  e->chans = ch;
  __atomic_store_n(&ch->heard_at, e->now_ms, __ATOMIC_RELAXED);
  if (!watch_fd(e, ch->fd, &ch->w)) return chan_end(e, ch, CW_IO, errno, 0);
  /* the dialer speaks first: a keepalive, which also measures the first round trip */
  if (ch->dialer) {
    uint8_t p[8];
    uint64_t now = mono_ns();
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(now >> (56 - 8 * i));
    chan_frame(e, ch, FT_PING, 0, p, 8);
  }
}

void chan_end(struct engine *e, struct chan *ch, int why, int detail, uint32_t stream) {
  if (ch->dead) return;
  if ((why == CW_DRAINED || why == CW_ASKED) && (ch->dialer || ch->heard)) {
    /* a clean end: what was queued (the last stream's FIN, RSTs) goes first, as far as the
       socket takes it now (a few frames: it does) */
    if (!seal(e, ch) || ch->dead) return;
    while (ch->out_off < ch->out_len) {
      ssize_t n = send(ch->fd, ch->out + ch->out_off, ch->out_len - ch->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      ch->out_off += (size_t)n;
      __atomic_add_fetch(&ch->bytes_up, n, __ATOMIC_RELAXED);
    }
  }
  ch->dead = true;
  while (ch->streams) stream_drop(e, ch->streams, true);
  epoll_ctl(e->ep, EPOLL_CTL_DEL, ch->fd, NULL);
  close(ch->fd);
  ch->fd = -1;
  if (ch->prev) ch->prev->next = ch->next;
  else if (e->chans == ch) e->chans = ch->next;
  if (ch->next) ch->next->prev = ch->prev;
  EVP_CIPHER_CTX_free(ch->tx);
  EVP_CIPHER_CTX_free(ch->rx);
  ch->tx = ch->rx = NULL;
  free(ch->in);
  free(ch->plain);
  free(ch->out);
  free(ch->buckets);
  ch->in = ch->plain = ch->out = NULL;
  ch->buckets = NULL;
  ch->nbuckets = 0;
  emit(e, EV_CHAN_CLOSED, NULL, ch->id, why, detail, stream);
  /* the engine's reference goes after this turn: later events of the turn may still name it */
  ch->dead_next = e->chans_dead;
  e->chans_dead = ch;
}

void chan_unref(struct chan *ch) {
  if (__atomic_sub_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  /* (a channel never started still has its ciphers and buffers) */
  EVP_CIPHER_CTX_free(ch->tx);
  EVP_CIPHER_CTX_free(ch->rx);
  if (ch->fd >= 0 && !ch->dead) close(ch->fd);
  free(ch->in);
  free(ch->plain);
  free(ch->out);
  free(ch->buckets);
  free(ch->key_name);
  free(ch);
}
