/*
 * chan_napi: the channels' JavaScript face (src/peer/enginechannel.ts). Checked here on the
 * main thread (a bad argument throws, nothing is sent), run on the engine thread (chan.c,
 * stream.c). A channel's handle is an External holding a reference: the channel is freed once
 * the engine has ended it and JavaScript has dropped the handle.
 *
 * Exports:
 *   chanConstants                          the frame and record numbers, and the reasons a
 *                                          channel ends (engine.h), for frame.ts to check
 *   chanCreate(engine, id, fd, keys, dialer[, peerKey]) -> chan   fd: the raw TCP connection
 *                                          (dup'ed: Node keeps its own, paused); keys: CHAN_KEYS
 *                                          bytes of the TLS exporter; the dialer speaks first;
 *                                          peerKey {name, all} (accepting side): the key the
 *                                          peer came with, when it may attach (streamdial.c)
 *   chanOpen(engine, chan, fd, first, skipReply[, target]) -> [id, jsFd]   the dialer opens a
 *                                          stream (target: a Buffer the OPEN carries, which the
 *                                          peer's engine dials itself, streamdial.c):
 *                                          on fd (the engine owns it), or, with fd -1, on a
 *                                          socketpair whose other end (jsFd) is JavaScript's;
 *                                          `first` (a Buffer or null) leaves with the OPEN;
 *                                          skipReply: the peer's first API frame is dropped
 *   chanPing(engine, chan), chanGoAway(engine, chan), chanClose(engine, chan)
 *   chanStats(chan) -> Float64Array        [streams, bytesUp, bytesDown, rttMs, heardAt]
 *   chanRebind(engine, chan, id, jsFd, tailFd, first)   an accepted stream's local end
 *                                          becomes the tail's socket (both fds copied; see
 *                                          stream_rebind); JavaScript closes its own after
 *   groupAttachable(engine, group, {id, owner} | null)   a peer's stream whose OPEN names `id`
 *                                          is dialed to the group's tails by the engine, when
 *                                          the peer's key is `owner`'s or has every right
 *                                          (streamdial.c); null: no more
 *   chanTestSeal(keys, fromDialer, seq, plaintext) -> Buffer   one record as a peer seals it
 *   chanTestFeed(keys, dialer, bytes) -> [why, detail, stream]  bytes through a channel's
 *                                          receive path, with no connection (the parser's
 *                                          fuzz test); why -1: it took them all
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"

/* A Buffer argument: its bytes and length; false (and a TypeError) if it is not one. */
static bool buffer_arg(napi_env env, napi_value v, const char *name, uint8_t **p, size_t *n) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is ||
      napi_get_buffer_info(env, v, (void **)p, n) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Buffer", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

/* The keys argument: exactly CHAN_KEYS bytes. */
static bool keys_arg(napi_env env, napi_value v, uint8_t **keys) {
  size_t n;
  if (!buffer_arg(env, v, "keys", keys, &n)) return false;
  if (n != CHAN_KEYS) {
    napi_throw_range_error(env, "EINVAL", "keys must be 88 bytes of the TLS exporter");
    return false;
  }
  return true;
}

static void chan_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  chan_unref(data);
}

/* A channel with its ciphers and buffers, not started (refs: the caller's). */
static struct chan *chan_make(const uint8_t *keys, bool dialer, int refs) {
  struct chan *ch = calloc(1, sizeof *ch);
  if (!ch) return NULL;
  ch->fd = -1;
  ch->refs = refs;
  ch->dialer = dialer;
  ch->next_id = 1;
  ch->in = malloc(2 * REC_MAX);
  ch->plain = malloc(REC_PLAIN);
  if (!ch->in || !ch->plain || !chan_keys(ch, keys)) {
    ch->refs = 1;
    chan_unref(ch);
    return NULL;
  }
  return ch;
}

static napi_value chan_create(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], handle;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  int32_t id, fd;
  uint8_t *keys;
  bool dialer = false, has_name = false, all = false;
  char name[256];
  if (argc < 5 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) || !wh_int_arg(env, argv[1], "id", &id) ||
      !wh_int_arg(env, argv[2], "fd", &fd) || !keys_arg(env, argv[3], &keys))
    return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[4], &dialer));
  if (argc >= 6 && wh_is_object(env, argv[5]) &&
      (!wh_str_field(env, argv[5], "peerKey", "name", name, sizeof name, &has_name) ||
       !wh_bool_field(env, argv[5], "peerKey", "all", false, &all)))
    return NULL;
  /* JavaScript's handle, the engine's, and the ADD command's */
  struct chan *ch = chan_make(keys, dialer, 3);
  if (!ch) return wh_throw_errno(env, ENOMEM, "channel");
  ch->id = id;
  ch->key_all = all;
  if (has_name && name[0] && !(ch->key_name = strdup(name))) {
    ch->refs = 1;
    chan_unref(ch);
    return wh_throw_errno(env, ENOMEM, "channel");
  }
  if ((ch->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
    int err = errno;
    ch->refs = 1;
    chan_unref(ch);
    return wh_throw_errno(env, err, "dup the channel's fd");
  }
  fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK);
  nodelay(ch->fd);
  if (napi_create_external(env, ch, chan_finalize, NULL, &handle) != napi_ok) {
    ch->refs = 1;
    chan_unref(ch);
    return wh_throw_errno(env, ENOMEM, "channel");
  }
  struct cmd *c = new_cmd(env, CMD_CHAN_ADD, NULL);
  if (!c) {
    __atomic_sub_fetch(&ch->refs, 2, __ATOMIC_ACQ_REL); /* (the handle keeps the last) */
    return NULL;
  }
  c->ch = ch;
  return send_cmd(env, e, c) ? handle : NULL;
}

/* A command on a channel alone: (engine, chan). */
static napi_value chan_cmd(napi_env env, napi_callback_info info, enum cmd_type type) {
  size_t argc = 2;
  napi_value argv[2], u;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct chan *ch;
  if (argc < 2 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) || !wh_ptr_arg(env, argv[1], "chan", (void **)&ch))
    return NULL;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  if (e->stopped) return u; /* (the engine let go of everything) */
  struct cmd *c = new_cmd(env, type, NULL);
  if (!c) return NULL;
  __atomic_add_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL);
  c->ch = ch;
  return send_cmd(env, e, c) ? u : NULL;
}

static napi_value chan_ping(napi_env env, napi_callback_info info) {
  return chan_cmd(env, info, CMD_CHAN_PING);
}

static napi_value chan_goaway(napi_env env, napi_callback_info info) {
  return chan_cmd(env, info, CMD_CHAN_GOAWAY);
}

static napi_value chan_close(napi_env env, napi_callback_info info) {
  return chan_cmd(env, info, CMD_CHAN_CLOSE);
}

static napi_value chan_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], out, v;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct chan *ch;
  int32_t fd;
  bool skip = false;
  uint8_t *first = NULL, *target = NULL;
  size_t n = 0, tn = 0;
  napi_valuetype t;
  if (argc < 5 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) ||
      !wh_ptr_arg(env, argv[1], "chan", (void **)&ch) || !wh_int_arg(env, argv[2], "fd", &fd))
    return NULL;
  NAPI_CALL(env, napi_typeof(env, argv[3], &t));
  if (t != napi_null && !buffer_arg(env, argv[3], "first", &first, &n)) return NULL;
  if (n > STREAM_WINDOW) {
    napi_throw_range_error(env, "EINVAL", "a stream's first bytes fit its window");
    return NULL;
  }
  NAPI_CALL(env, napi_get_value_bool(env, argv[4], &skip));
  if (argc >= 6) {
    NAPI_CALL(env, napi_typeof(env, argv[5], &t));
    if (t != napi_null && t != napi_undefined && !buffer_arg(env, argv[5], "target", &target, &tn)) return NULL;
    if (target && (tn == 0 || tn > OPEN_MAX)) {
      napi_throw_range_error(env, "EINVAL", "a stream's target is 1 to 1024 bytes");
      return NULL;
    }
  }
  if (!ch->dialer) {
    napi_throw_error(env, "EINVAL", "only the dialing side opens streams");
    return NULL;
  }
  if (ch->next_id > UINT32_MAX - 2) return wh_throw_errno(env, ERANGE, "stream ids");
  int sv[2] = {fd, -1};
  if (fd < 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    return wh_throw_errno(env, errno, "a stream's socketpair");
  struct cmd *c = new_cmd(env, CMD_CHAN_OPEN, NULL);
  if (!c || (n && !(c->data = malloc(n))) || (tn && !(c->target = malloc(tn)))) {
    if (sv[1] >= 0) close(sv[0]), close(sv[1]);
    if (c) free(c->data), free(c);
    return c ? wh_throw_errno(env, ENOMEM, "stream") : NULL;
  }
  if (n) memcpy(c->data, first, n);
  if (tn) memcpy(c->target, target, tn);
  c->target_len = (uint32_t)tn;
  c->data_len = (uint32_t)n;
  __atomic_add_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL);
  c->ch = ch;
  c->arg = sv[0];
  c->flag = skip;
  c->notify = sv[1] >= 0;
  uint32_t id = c->stream = ch->next_id;
  if (!send_cmd(env, e, c)) {
    if (sv[1] >= 0) close(sv[1]);
    return NULL;
  }
  ch->next_id += 2;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &out));
  NAPI_CALL(env, napi_create_uint32(env, id, &v));
  NAPI_CALL(env, napi_set_element(env, out, 0, v));
  NAPI_CALL(env, napi_create_int32(env, sv[1], &v));
  NAPI_CALL(env, napi_set_element(env, out, 1, v));
  return out;
}

static napi_value chan_rebind(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], u;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct chan *ch;
  int32_t id, js, tail;
  uint8_t *first = NULL;
  size_t n = 0;
  napi_valuetype t;
  if (argc < 6 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) ||
      !wh_ptr_arg(env, argv[1], "chan", (void **)&ch) || !wh_int_arg(env, argv[2], "id", &id) ||
      !wh_int_arg(env, argv[3], "jsFd", &js) || !wh_int_arg(env, argv[4], "tailFd", &tail))
    return NULL;
  NAPI_CALL(env, napi_typeof(env, argv[5], &t));
  if (t != napi_null && !buffer_arg(env, argv[5], "first", &first, &n)) return NULL;
  if (n > STREAM_WINDOW) {
    napi_throw_range_error(env, "EINVAL", "chanRebind: first is more than a window");
    return NULL;
  }
  struct cmd *c = new_cmd(env, CMD_CHAN_REBIND, NULL);
  if (!c) return NULL;
  /* (copies: JavaScript closes its own sockets right after) */
  c->arg = fcntl(tail, F_DUPFD_CLOEXEC, 0);
  c->ns = fcntl(js, F_DUPFD_CLOEXEC, 0);
  if (c->arg < 0 || c->ns < 0 || (n && !(c->data = malloc(n)))) {
    int err = errno ? errno : ENOMEM;
    if (c->arg >= 0) close(c->arg);
    if (c->ns >= 0) close(c->ns);
    free(c);
    return wh_throw_errno(env, err, "chanRebind");
  }
  if (n) memcpy(c->data, first, n);
  c->data_len = (uint32_t)n;
  c->stream = (uint32_t)id;
  __atomic_add_fetch(&ch->refs, 1, __ATOMIC_ACQ_REL);
  c->ch = ch;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  return send_cmd(env, e, c) ? u : NULL;
}

static napi_value chan_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct chan *ch;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "chan", (void **)&ch)) return NULL;
  double *v;
  NAPI_CALL(env, napi_create_arraybuffer(env, 5 * sizeof(double), (void **)&v, &ab));
  v[0] = (double)__atomic_load_n(&ch->nstreams, __ATOMIC_RELAXED);
  v[1] = (double)__atomic_load_n(&ch->bytes_up, __ATOMIC_RELAXED);
  v[2] = (double)__atomic_load_n(&ch->bytes_down, __ATOMIC_RELAXED);
  v[3] = (double)__atomic_load_n(&ch->rtt_ms, __ATOMIC_RELAXED) / 1000;
  v[4] = (double)__atomic_load_n(&ch->heard_at, __ATOMIC_RELAXED);
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, 5, ab, 0, &out));
  return out;
}

/* groupAttachable(engine, group, {id, owner} | null): see the top. */
static napi_value group_attachable(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  if (argc < 3 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) || !wh_ptr_arg(env, argv[1], "group", (void **)&g))
    return NULL;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[2], &t));
  char id[65], owner[256];
  bool has_id = false, has_owner = false;
  if (t != napi_null && (!wh_is_object(env, argv[2]) ||
                         !wh_str_field(env, argv[2], "groupAttachable", "id", id, sizeof id, &has_id) ||
                         !wh_str_field(env, argv[2], "groupAttachable", "owner", owner, sizeof owner, &has_owner)))
    return NULL;
  if (t != napi_null && (!has_id || !has_owner || !id[0] || !owner[0])) {
    napi_throw_type_error(env, "EINVAL", "groupAttachable: id and owner must be non-empty strings");
    return NULL;
  }
  struct cmd *c = new_cmd(env, CMD_ATTACHABLE, g);
  if (!c) return NULL;
  if (t != napi_null) {
    /* "ID\0OWNER\0": the engine takes both (streamdial_register) */
    size_t a = strlen(id), b = strlen(owner);
    if (!(c->data = malloc(a + b + 2))) {
      free(c);
      return wh_throw_errno(env, ENOMEM, "groupAttachable");
    }
    memcpy(c->data, id, a + 1);
    memcpy(c->data + a + 1, owner, b + 1);
    c->data_len = (uint32_t)(a + b + 2);
  }
  napi_value u;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  return send_cmd(env, e, c) ? u : NULL;
}

/* ---- for the tests: sealing as a peer does, feeding the receive path ------------------- */

static napi_value chan_test_seal(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *keys, *plain;
  size_t n;
  bool from_dialer = false;
  int32_t seq;
  if (argc < 4 || !keys_arg(env, argv[0], &keys) || !wh_int_arg(env, argv[2], "seq", &seq) ||
      !buffer_arg(env, argv[3], "plaintext", &plain, &n))
    return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[1], &from_dialer));
  if (n > REC_PLAIN) {
    napi_throw_range_error(env, "EINVAL", "a record holds at most 64 KiB");
    return NULL;
  }
  struct chan *ch = chan_make(keys, from_dialer, 1);
  if (!ch) return wh_throw_errno(env, ENOMEM, "seal");
  void *mem;
  bool ok = napi_create_buffer(env, REC_HDR + n + REC_TAG, &mem, &out) == napi_ok &&
            chan_seal(ch->tx, ch->tx_iv, (uint64_t)seq, plain, (uint32_t)n, mem);
  chan_unref(ch);
  if (!ok) return wh_throw_errno(env, EIO, "seal");
  return out;
}

static napi_value chan_test_feed(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, v;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *keys, *bytes;
  size_t n;
  bool dialer = false;
  if (argc < 3 || !keys_arg(env, argv[0], &keys) || !buffer_arg(env, argv[2], "bytes", &bytes, &n)) return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[1], &dialer));
  /* an engine of its own with no thread, and a socketpair for the channel's connection */
  struct engine *e = calloc(1, sizeof *e);
  struct chan *ch = chan_make(keys, dialer, 1);
  int sv[2] = {-1, -1};
  if (!e || !ch || (e->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    int err = errno ? errno : ENOMEM;
    if (ch) chan_unref(ch);
    if (e && e->ep > 0) close(e->ep);
    free(e);
    return wh_throw_errno(env, err, "chanTestFeed");
  }
  ch->fd = sv[0];
  chan_add(e, ch);
  size_t off = 0;
  while (off < n && !ch->dead) {
    size_t k = 2 * REC_MAX - ch->in_len;
    if (k > n - off) k = n - off;
    memcpy(ch->in + ch->in_len, bytes + off, k);
    ch->in_len += (uint32_t)k;
    off += k;
    if (!chan_receive(e, ch)) break;
    chan_flush_dirty(e);
  }
  double why = -1, detail = 0, stream = 0;
  if (!ch->dead) chan_end(e, ch, CW_ASKED, 0, 0);
  else {
    for (size_t i = 0; i < e->nev; i++)
      if (e->evs[i].v[0] == EV_CHAN_CLOSED) why = e->evs[i].v[3], detail = e->evs[i].v[4], stream = e->evs[i].v[5];
  }
  /* let go of everything: JavaScript's ends of accepted streams, the freed streams, the rest */
  for (size_t i = 0; i < e->nev; i++)
    if (e->evs[i].v[0] == EV_CHAN_STREAM) close((int)e->evs[i].v[4]);
  while (e->streams_dead) {
    struct stream *st = e->streams_dead;
    e->streams_dead = st->dead_next;
    free(st);
  }
  chan_unref(ch);
  close(sv[1]);
  close(e->ep);
  free(e->evs);
  free(e);
  NAPI_CALL(env, napi_create_array_with_length(env, 3, &out));
  NAPI_CALL(env, napi_create_double(env, why, &v));
  NAPI_CALL(env, napi_set_element(env, out, 0, v));
  NAPI_CALL(env, napi_create_double(env, detail, &v));
  NAPI_CALL(env, napi_set_element(env, out, 1, v));
  NAPI_CALL(env, napi_create_double(env, stream, &v));
  NAPI_CALL(env, napi_set_element(env, out, 2, v));
  return out;
}

/* ---- chanConstants ------------------------------------------------------------------------ */

static napi_value set_int(napi_env env, napi_value obj, const char *name, int64_t value) {
  napi_value v;
  NAPI_CALL(env, napi_create_int64(env, value, &v));
  NAPI_CALL(env, napi_set_named_property(env, obj, name, v));
  return obj;
}

static napi_value chan_constants(napi_env env) {
  static const struct {
    const char *name;
    int64_t value;
  } numbers[] = {
      {"frameHeader", FRAME_HDR},   {"frameMax", FRAME_MAX}, {"window", STREAM_WINDOW},
      {"maxWindow", STREAM_MAX_WINDOW}, {"maxStreams", CHAN_MAX_STREAMS}, {"keys", CHAN_KEYS},
      {"recordMax", REC_PLAIN},     {"recordOverhead", REC_HDR + REC_TAG},
  };
  static const char *why[] = {"asked", "eof", "io", "auth", "record", "frame",
                              "stream", "window", "order", "drained", "nomem", "worn"};
  _Static_assert(sizeof why / sizeof why[0] == CW_WORN + 1, "every reason is named");
  napi_value out, w;
  NAPI_CALL(env, napi_create_object(env, &out));
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
    if (!set_int(env, out, numbers[i].name, numbers[i].value)) return NULL;
  NAPI_CALL(env, napi_create_object(env, &w));
  for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
    if (!set_int(env, w, why[i], (int64_t)i)) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, out, "why", w));
  NAPI_CALL(env, napi_object_freeze(env, w));
  NAPI_CALL(env, napi_object_freeze(env, out));
  return out;
}

napi_value wh_chan_init(napi_env env, napi_value exports) {
  napi_value constants = chan_constants(env);
  if (!constants) return NULL;
  napi_property_descriptor props[] = {
      {"chanCreate", NULL, chan_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanOpen", NULL, chan_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanPing", NULL, chan_ping, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanGoAway", NULL, chan_goaway, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanClose", NULL, chan_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanRebind", NULL, chan_rebind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanStats", NULL, chan_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupAttachable", NULL, group_attachable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanTestSeal", NULL, chan_test_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanTestFeed", NULL, chan_test_feed, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chanConstants", NULL, NULL, NULL, NULL, constants, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
