/*
 * engine_napi: the engine's JavaScript face. Commands are checked here, on the main thread
 * (a bad argument throws a TypeError or RangeError with code EINVAL, and nothing is sent),
 * then queued for the engine thread (engine.c), which runs them in order; counters are read
 * here with atomic loads, without stopping the engine. Handles are Externals.
 *
 * Exports:
 *   engineConstants                      the numbers below (event kinds and size, counter
 *                                        slots, policies), from engine.h
 *   engineStart(onEvents[, pipeBudget]) -> engine   onEvents(Float64Array: eventDoubles numbers
 *                                        per event); pipeBudget: bytes grown pipes may hold
 *                                        beyond their first size (PIPE_BUDGET by default)
 *   engineStats(engine) -> {pipeGrown, pipeBudget, pipeDenied}   the pipe budget's use
 *   engineStop(engine)
 *   engineRef(engine, on)                keep the event loop alive while JavaScript waits on it
 *   groupCreate(engine, id, maxOpen, reportCloses[, headName[, dialMs[, allow[, wakeOnData]]]])
 *                                        -> group
 *                                        headName: a unix head's address, for a PROXY v2
 *                                        header; dialMs: how long a tail may take to answer (0:
 *                                        the kernel's); allow: a Buffer of ALLOW_NET_BYTES
 *                                        entries [family, prefix, 16 address bytes] (null: any);
 *                                        wakeOnData: hold each client until its first byte
 *   groupListen(engine, group, fd)       the engine owns fd from now on
 *   groupUnlisten(engine, group)         stop accepting (daemon stop); connections go on
 *   groupTail(engine, group, slot, {nsFd, host, port | path, rootFd, proxy, mark, key} | null)
 *                                        -> the command's number, which EV_TAIL_SET gives back
 *                                        once the engine has applied it
 *   groupHealth(engine, group, slot, up) groupBalance(engine, group, policy)
 *   groupTailCount(engine, group, slot, +1|-1)   a connection JS carries to a tail (least-conn)
 *   groupDial(engine, group, fd[, dialMs])   dial the tail for a client fd JavaScript holds,
 *                                        each tail given dialMs to answer (0: the group's)
 *   groupAcquire(group) -> bool, groupRelease(group)   count a connection JS holds
 *   groupStats(group)                    -> Float64Array, groupStatCount numbers
 *   groupTailStats(group)                -> Float64Array, tailStatCount numbers per slot
 *   groupClose(engine, group)            close the head and every connection (event when done)
 *   groupAttachable                      see chan_napi.c (a peer's streams dialed to the group)
 *   pickTail({policy, client, cursor, tails}) -> {slot, cursor}   the engine's pick (pick.c)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"

void cmd_discard(struct cmd *c) {
  if (c->ns >= 0) close(c->ns);
  if (c->root >= 0) close(c->root);
  free(c->path);
  free(c->data);
  free(c->target);
  if (c->type == CMD_CHAN_OPEN || c->type == CMD_CHAN_REBIND) close(c->arg);
  if (c->ch) {
    /* (an ADD never run: the engine's reference goes too) */
    if (c->type == CMD_CHAN_ADD) chan_unref(c->ch);
    chan_unref(c->ch);
  }
  free(c);
}

bool send_cmd(napi_env env, struct engine *e, struct cmd *c) {
  if (e->stopped) {
    cmd_discard(c);
    napi_throw_error(env, "ESHUTDOWN", "the engine has stopped");
    return false;
  }
  c->next = NULL;
  pthread_mutex_lock(&e->mu);
  if (e->cmds_tail) e->cmds_tail->next = c;
  else e->cmds = c;
  e->cmds_tail = c;
  pthread_mutex_unlock(&e->mu);
  uint64_t one = 1;
  if (write(e->wake, &one, sizeof one) < 0 && errno != EAGAIN) {
    wh_throw_errno(env, errno, "wake the engine");
    return false;
  }
  return true;
}

struct cmd *new_cmd(napi_env env, enum cmd_type type, struct group *g) {
  struct cmd *c = calloc(1, sizeof *c);
  if (!c) napi_throw_error(env, "ENOMEM", "out of memory");
  else {
    c->type = type;
    c->g = g;
    c->ns = c->root = -1;
  }
  return c;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  NAPI_CALL(env, napi_get_undefined(env, &u));
  return u;
}

/* Read (engine, group) from the first two arguments. */
static bool engine_group_args(napi_env env, napi_value *argv, struct engine **e, struct group **g) {
  return wh_ptr_arg(env, argv[0], "engine", (void **)e) && wh_ptr_arg(env, argv[1], "group", (void **)g);
}

/* A command that takes (engine, group) and, when int_name is given, one number. */
static napi_value group_cmd(napi_env env, napi_callback_info info, enum cmd_type type, const char *int_name) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t arg = -1;
  if (argc < (int_name ? 3u : 2u) || !engine_group_args(env, argv, &e, &g) ||
      (int_name && !wh_int_arg(env, argv[2], int_name, &arg)))
    return NULL;
  if (e->stopped && (type == CMD_UNLISTEN || type == CMD_CLOSE_GROUP))
    return undefined(env); /* the engine has let go of everything already */
  struct cmd *c = new_cmd(env, type, g);
  if (!c) return NULL;
  c->arg = arg;
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

static napi_value engine_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, handle;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  if (argc < 1 || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "engineStart(onEvents[, pipeBudget])");
    return NULL;
  }
  double budget = PIPE_BUDGET;
  if (argc >= 2) {
    NAPI_CALL(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined && (t != napi_number || napi_get_value_double(env, argv[1], &budget) != napi_ok ||
                                !(budget >= 0 && budget <= (double)INT64_MAX / 2))) {
      napi_throw_range_error(env, "EINVAL", "engineStart: pipeBudget must be a number of bytes, 0 or more");
      return NULL;
    }
  }
  struct engine *e = calloc(1, sizeof *e);
  if (!e) return wh_throw_errno(env, ENOMEM, "engine");
  e->pipe_budget = (int64_t)budget;
  e->wake_w.kind = W_WAKE;
  e->ep = epoll_create1(EPOLL_CLOEXEC);
  e->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int err = errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->wake_w};
  if (e->ep < 0 || e->wake < 0 || e->home < 0 || epoll_ctl(e->ep, EPOLL_CTL_ADD, e->wake, &ev) != 0) {
    err = errno ? errno : err;
    goto fail;
  }
  pthread_mutex_init(&e->mu, NULL);
  NAPI_CALL(env, napi_create_string_utf8(env, "wormhole-engine", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, e, deliver,
                                      &e->tsfn) != napi_ok) {
    err = EINVAL;
    goto fail;
  }
  /* The engine never keeps the daemon alive by itself. */
  napi_unref_threadsafe_function(env, e->tsfn);
  err = pthread_create(&e->th, NULL, engine_main, e);
  if (err != 0) {
    napi_release_threadsafe_function(e->tsfn, napi_tsfn_abort);
    goto fail;
  }
  NAPI_CALL(env, napi_create_external(env, e, NULL, NULL, &handle));
  return handle;
fail:
  if (e->ep >= 0) close(e->ep);
  if (e->wake >= 0) close(e->wake);
  if (e->home >= 0) close(e->home);
  free(e);
  return wh_throw_errno(env, err, "start the engine");
}

static napi_value engine_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e)) return NULL;
  if (e->stopped) return undefined(env);
  struct cmd *c = new_cmd(env, CMD_STOP, NULL);
  if (!c || !send_cmd(env, e, c)) return NULL;
  e->stopped = true;
  pthread_join(e->th, NULL);
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
  /* Connections still open end with the process; the engine's own fds go now. */
  close(e->ep);
  close(e->wake);
  pipe_pool_drain(e);
  free(e->ls_dead); /* (the arrays in it went at the end of the last turn) */
  e->ls_dead = NULL;
  e->nls_dead = e->ls_deadcap = 0;
  return undefined(env);
}

/* engineStats(engine): the pipe budget's use, read with atomic loads while the engine runs. */
static napi_value engine_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e)) return NULL;
  const struct {
    const char *name;
    int64_t value;
  } fields[] = {
      {"pipeGrown", __atomic_load_n(&e->pipe_grown, __ATOMIC_RELAXED)},
      {"pipeBudget", e->pipe_budget},
      {"pipeDenied", __atomic_load_n(&e->pipe_denied, __ATOMIC_RELAXED)},
  };
  NAPI_CALL(env, napi_create_object(env, &out));
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    NAPI_CALL(env, napi_create_double(env, (double)fields[i].value, &v));
    NAPI_CALL(env, napi_set_named_property(env, out, fields[i].name, v));
  }
  return out;
}

/* While JavaScript waits on the engine (a group closing), the engine keeps the loop alive. */
static napi_value engine_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  bool on = false;
  if (argc < 2 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e)) return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[1], &on));
  if (!e->stopped) {
    if (on) NAPI_CALL(env, napi_ref_threadsafe_function(env, e->tsfn));
    else NAPI_CALL(env, napi_unref_threadsafe_function(env, e->tsfn));
  }
  return undefined(env);
}

static napi_value group_create(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], handle;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  int32_t id, max;
  bool report = false;
  if (argc < 4 || !wh_ptr_arg(env, argv[0], "engine", (void **)&e) || !wh_int_arg(env, argv[1], "id", &id) ||
      !wh_int_arg(env, argv[2], "maxOpen", &max))
    return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[3], &report));
  int32_t dial_ms = 0;
  if (argc >= 6 && !wh_int_arg(env, argv[5], "dialMs", &dial_ms)) return NULL;
  /* a unix head's address as the user named it, for a PROXY v2 header */
  char name[112] = "";
  if (argc >= 5) {
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[4], &t));
    size_t len = 0;
    if (t == napi_string) NAPI_CALL(env, napi_get_value_string_utf8(env, argv[4], name, sizeof name, &len));
    else if (t != napi_null && t != napi_undefined) {
      napi_throw_type_error(env, "EINVAL", "headName must be a string or null");
      return NULL;
    }
  }
  struct allow_net *allow = NULL;
  int nallow = 0;
  bool wake_on_data = false;
  if (argc >= 8) NAPI_CALL(env, napi_get_value_bool(env, argv[7], &wake_on_data));
  if (argc >= 7 && !allow_from_js(env, argv[6], &allow, &nallow)) return NULL;
  struct group *g = calloc(1, sizeof *g);
  if (!g || (name[0] && !(g->head_name = strdup(name)))) {
    free(g);
    free(allow);
    return wh_throw_errno(env, ENOMEM, "group");
  }
  g->allow = allow;
  g->nallow = nallow;
  g->wake_on_data = wake_on_data;
  g->id = id;
  g->max = max > 0 ? max : INT32_MAX;
  g->dial_ms = dial_ms > 0 ? dial_ms : 0;
  g->report = report;
  NAPI_CALL(env, napi_create_external(env, g, NULL, NULL, &handle));
  return handle;
}

/*
 * groupListen(engine, group, fd | fds): accept on a listening fd, or on every fd of an array
 * (a port range, in port order: a client's place in it is its port less the first's). The
 * engine owns them from here.
 */
static napi_value group_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  if (argc < 3 || !engine_group_args(env, argv, &e, &g)) {
    if (argc < 3) napi_throw_type_error(env, "EINVAL", "groupListen(engine, group, fd | fds)");
    return NULL;
  }
  bool is_array = false;
  uint32_t n = 1;
  NAPI_CALL(env, napi_is_array(env, argv[2], &is_array));
  if (is_array) NAPI_CALL(env, napi_get_array_length(env, argv[2], &n));
  if (n < 1 || n > MAX_LISTENERS) {
    napi_throw_range_error(env, "EINVAL", "groupListen: 1 to 10000 fds");
    return NULL;
  }
  struct listener *ls = listeners_from_js(env, argv[2], is_array, n, g);
  if (!ls) return NULL;
  struct cmd *c = new_cmd(env, CMD_LISTEN, g);
  if (!c) {
    free(ls);
    return NULL;
  }
  c->arg = (int32_t)n;
  c->data = (uint8_t *)ls; /* (freed with the command if it never runs) */
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

static napi_value group_unlisten(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_UNLISTEN, NULL);
}

/* A slot argument, checked: 0..MAX_TAILS-1. */
static bool slot_arg(napi_env env, napi_value v, int32_t *slot) {
  if (!wh_int_arg(env, v, "slot", slot)) return false;
  if (*slot < 0 || *slot >= MAX_TAILS) {
    napi_throw_range_error(env, "EINVAL", "a tail slot is 0 to 63");
    return false;
  }
  return true;
}

/* ---- groupTail ------------------------------------------------------------------------- */

/*
 * groupTail(engine, group, slot, tail | null) -> number: set a slot to a tail (tail_of), or
 * empty it. The number (one more per call on the group) comes back in EV_TAIL_SET once the
 * engine thread has applied the command: until then a connection may still go to the old tail.
 */
static napi_value group_tail(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t slot;
  if (argc < 4) {
    napi_throw_type_error(env, "EINVAL", "groupTail(engine, group, slot, tail | null)");
    return NULL;
  }
  if (!engine_group_args(env, argv, &e, &g) || !slot_arg(env, argv[2], &slot)) return NULL;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[3], &t));
  if (t != napi_null && t != napi_object) {
    napi_throw_type_error(env, "EINVAL", "groupTail: the tail must be an object, or null to empty the slot");
    return NULL;
  }
  struct cmd *c = new_cmd(env, CMD_TAIL, g);
  if (!c) return NULL;
  c->arg = slot;
  if (t == napi_object && !tail_from_js(env, argv[3], c)) {
    cmd_discard(c);
    return NULL;
  }
  uint32_t seq = c->seq = g->tail_seq + 1; /* (c is the engine's once sent: read no more of it) */
  if (!send_cmd(env, e, c)) return NULL;
  g->tail_seq = seq; /* only a command sent takes a number */
  napi_value out;
  NAPI_CALL(env, napi_create_uint32(env, seq, &out));
  return out;
}

/*
 * A command on one slot, (engine, group, slot, value): groupHealth's value is up (a check
 * passed or failed); groupTailCount's is +1 or -1, a connection JavaScript carries to the
 * slot's tail opened or closed (in order with groupTail, so a count lands on the tail it was
 * meant for).
 */
static napi_value slot_cmd(napi_env env, napi_callback_info info, enum cmd_type type) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t slot, delta = 0;
  bool up = false;
  if (argc < 4 || !engine_group_args(env, argv, &e, &g) || !slot_arg(env, argv[2], &slot)) return NULL;
  if (type == CMD_HEALTH) {
    NAPI_CALL(env, napi_get_value_bool(env, argv[3], &up));
  } else if (!wh_int_arg(env, argv[3], "delta", &delta)) {
    return NULL;
  } else if (delta != 1 && delta != -1) {
    napi_throw_range_error(env, "EINVAL", "groupTailCount: delta must be 1 or -1");
    return NULL;
  }
  struct cmd *c = new_cmd(env, type, g);
  if (!c) return NULL;
  c->arg = slot;
  c->flag = up;
  c->delta = delta;
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

static napi_value group_health(napi_env env, napi_callback_info info) {
  return slot_cmd(env, info, CMD_HEALTH);
}

static napi_value group_tail_count(napi_env env, napi_callback_info info) {
  return slot_cmd(env, info, CMD_TAIL_COUNT);
}

/* groupBalance(engine, group, policy): 0 round-robin, 1 least-conn, 2 source. */
static napi_value group_balance(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_BALANCE, "policy");
}

/* groupTailStats(group): each slot's counters (enum tail_stat) up to the last slot ever set. */
static napi_value group_tail_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  int n = __atomic_load_n(&g->ntails, __ATOMIC_RELAXED);
  double *v;
  NAPI_CALL(env, napi_create_arraybuffer(env, (size_t)n * TS_COUNT * sizeof(double), (void **)&v, &ab));
  for (int i = 0; i < n; i++, v += TS_COUNT) {
    struct tail *t = slot_tail(g, i);
    if (!t) {
      for (int k = 0; k < TS_COUNT; k++) v[k] = 0; /* (never set: empty) */
      continue;
    }
    v[TS_OPEN] = (double)__atomic_load_n(&t->open, __ATOMIC_RELAXED);
    v[TS_TOTAL] = (double)__atomic_load_n(&t->total, __ATOMIC_RELAXED);
    v[TS_FAILED] = (double)__atomic_load_n(&t->failed, __ATOMIC_RELAXED);
    v[TS_OK_AT] = (double)__atomic_load_n(&t->ok_at, __ATOMIC_RELAXED);
    v[TS_FAILED_AT] = (double)__atomic_load_n(&t->failed_at, __ATOMIC_RELAXED);
    v[TS_SET] = __atomic_load_n(&t->set, __ATOMIC_RELAXED) ? 1 : 0;
  }
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, (size_t)n * TS_COUNT, ab, 0, &out));
  return out;
}

static napi_value group_dial(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct engine *e;
  struct group *g;
  int32_t fd, dial_ms = 0;
  if (argc < 3 || !engine_group_args(env, argv, &e, &g) || !wh_int_arg(env, argv[2], "fd", &fd) ||
      (argc >= 4 && !wh_int_arg(env, argv[3], "dialMs", &dial_ms)))
    return NULL;
  struct cmd *c = new_cmd(env, CMD_DIAL, g);
  if (!c) return NULL;
  c->arg = fd;
  c->delta = dial_ms > 0 ? dial_ms : 0;
  return send_cmd(env, e, c) ? undefined(env) : NULL;
}

static napi_value group_acquire(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  bool ok = acquire_open(g);
  if (!ok) __atomic_add_fetch(&g->refused, 1, __ATOMIC_RELAXED);
  NAPI_CALL(env, napi_get_boolean(env, ok, &out));
  return out;
}

static napi_value group_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  release_open(g);
  return undefined(env);
}

/* groupStats(group): the group's counters (enum group_stat). */
static napi_value group_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct group *g;
  if (argc < 1 || !wh_ptr_arg(env, argv[0], "group", (void **)&g)) return NULL;
  double *v;
  NAPI_CALL(env, napi_create_arraybuffer(env, GS_COUNT * sizeof(double), (void **)&v, &ab));
  v[GS_OPEN] = (double)__atomic_load_n(&g->open, __ATOMIC_RELAXED);
  v[GS_TOTAL] = (double)__atomic_load_n(&g->total, __ATOMIC_RELAXED);
  v[GS_REFUSED] = (double)__atomic_load_n(&g->refused, __ATOMIC_RELAXED);
  v[GS_UP] = (double)__atomic_load_n(&g->up, __ATOMIC_RELAXED);
  v[GS_DOWN] = (double)__atomic_load_n(&g->down, __ATOMIC_RELAXED);
  v[GS_DIAL_FAILED] = (double)__atomic_load_n(&g->dial_failed, __ATOMIC_RELAXED);
  v[GS_LAST] = (double)__atomic_load_n(&g->last, __ATOMIC_RELAXED);
  v[GS_DIAL_OK_AT] = (double)__atomic_load_n(&g->dial_ok_at, __ATOMIC_RELAXED);
  v[GS_DIAL_FAILED_AT] = (double)__atomic_load_n(&g->dial_failed_at, __ATOMIC_RELAXED);
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, GS_COUNT, ab, 0, &out));
  return out;
}

static napi_value group_close_js(napi_env env, napi_callback_info info) {
  return group_cmd(env, info, CMD_CLOSE_GROUP, NULL);
}

/* ---- pickTail: the engine's pick for the JavaScript mover ------------------------------- */

/*
 * pickTail({policy, client, cursor, tails}) -> {slot, cursor}: the slot the engine would dial
 * (pick.c), for connections JavaScript carries. tails: one entry per slot, null for an empty
 * one, else {key, up, open, tried}; client: the client's address in text ("" or absent:
 * unknown); cursor: the last call's (0 at first). slot -1: every tail was tried.
 */
static napi_value pick_tail_js(napi_env env, napi_callback_info info) {
  const char *what = "pickTail";
  size_t argc = 1;
  napi_value argv[1], tails, out, v;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !wh_is_object(env, argv[0])) {
    napi_throw_type_error(env, "EINVAL", "pickTail({policy, client, cursor, tails})");
    return NULL;
  }
  int32_t policy, cursor;
  char client[INET6_ADDRSTRLEN + 16];
  bool has_client, is_array = false, has;
  if (!wh_int_field(env, argv[0], what, "policy", B_ROUND_ROBIN, B_SOURCE, B_ROUND_ROBIN, &policy) ||
      !wh_int_field(env, argv[0], what, "cursor", 0, INT32_MAX, 0, &cursor) ||
      !wh_str_field(env, argv[0], what, "client", client, sizeof client, &has_client) ||
      !wh_field(env, argv[0], "tails", &tails, &has))
    return NULL;
  uint32_t n = 0;
  if (has) NAPI_CALL(env, napi_is_array(env, tails, &is_array));
  if (!is_array || napi_get_array_length(env, tails, &n) != napi_ok || n > MAX_TAILS) {
    wh_bad_field(env, what, "tails", "an array of at most 64 slots");
    return NULL;
  }
  struct pick_tail view[MAX_TAILS];
  memset(view, 0, sizeof view);
  for (uint32_t i = 0; i < n; i++) {
    NAPI_CALL(env, napi_get_element(env, tails, i, &v));
    if (!wh_is_object(env, v)) continue; /* null: an empty slot */
    char key[4097];
    bool has_key;
    double open = 0;
    napi_value o;
    if (!wh_bool_field(env, v, what, "up", true, &view[i].up) ||
        !wh_bool_field(env, v, what, "tried", false, &view[i].tried) ||
        !wh_str_field(env, v, what, "key", key, sizeof key, &has_key) || !wh_field(env, v, "open", &o, &has) ||
        (has && napi_get_value_double(env, o, &open) != napi_ok && !wh_bad_field(env, what, "open", "a number")))
      return NULL;
    view[i].set = true;
    view[i].open = (int64_t)open;
    view[i].key = pick_key((const uint8_t *)key, strlen(key));
  }
  uint32_t rr = (uint32_t)cursor;
  int slot = pick((uint8_t)policy, view, (int)n, &rr, has_client ? pick_client_text(client) : 0);
  NAPI_CALL(env, napi_create_object(env, &out));
  NAPI_CALL(env, napi_create_int32(env, slot, &v));
  NAPI_CALL(env, napi_set_named_property(env, out, "slot", v));
  NAPI_CALL(env, napi_create_uint32(env, rr, &v));
  NAPI_CALL(env, napi_set_named_property(env, out, "cursor", v));
  return out;
}

/* ---- engineConstants: the numbers JavaScript reads, from engine.h ------------------------ */

/* One name -> number pair of a table. */
struct named {
  const char *name;
  int32_t value;
};

/* A table as an object of numbers; NULL (and an exception) on failure. */
static napi_value table(napi_env env, const struct named *t, size_t n) {
  napi_value obj, v;
  NAPI_CALL(env, napi_create_object(env, &obj));
  for (size_t i = 0; i < n; i++) {
    NAPI_CALL(env, napi_create_int32(env, t[i].value, &v));
    NAPI_CALL(env, napi_set_named_property(env, obj, t[i].name, v));
  }
  return obj;
}

#define TABLE(env, t) table((env), (t), sizeof(t) / sizeof((t)[0]))

/*
 * engineConstants: {events: kind -> number, eventDoubles, eventAddress (the double where an
 * event's address starts), groupStats: name -> slot, groupStatCount, tailStats: name -> slot,
 * tailStatCount, policies: name -> id, maxTails}. The names are src/proxy/engine.ts's.
 */
static napi_value engine_constants(napi_env env) {
  static const struct named events[] = {
      {"closed", EV_CLOSED},           {"handoff", EV_HANDOFF},         {"dialed", EV_DIALED},
      {"refused", EV_REFUSED},         {"acceptError", EV_ACCEPT_ERROR}, {"groupClosed", EV_GROUP_CLOSED},
      {"dialBroken", EV_DIAL_BROKEN},  {"tailSet", EV_TAIL_SET},         {"chanClosed", EV_CHAN_CLOSED},
      {"chanStream", EV_CHAN_STREAM},  {"chanReset", EV_CHAN_RESET},     {"chanPong", EV_CHAN_PONG},
      {"chanGoAway", EV_CHAN_GOAWAY},  {"chanStreamEnd", EV_CHAN_STREAM_END},
  };
  static const struct named group_stats[] = {
      {"open", GS_OPEN},         {"total", GS_TOTAL},
      {"refused", GS_REFUSED},   {"bytesUp", GS_UP},
      {"bytesDown", GS_DOWN},    {"dialFailures", GS_DIAL_FAILED},
      {"lastActive", GS_LAST},   {"dialOkAt", GS_DIAL_OK_AT},
      {"dialFailedAt", GS_DIAL_FAILED_AT},
  };
  static const struct named tail_stats[] = {
      {"open", TS_OPEN}, {"total", TS_TOTAL},       {"failed", TS_FAILED},
      {"okAt", TS_OK_AT}, {"failedAt", TS_FAILED_AT}, {"set", TS_SET},
  };
  static const struct named policies[] = {
      {"round-robin", B_ROUND_ROBIN}, {"least-conn", B_LEAST_CONN}, {"source", B_SOURCE}};
  static const struct named numbers[] = {
      {"eventDoubles", EV_DOUBLES},    {"eventAddress", EV_NUMBERS}, {"groupStatCount", GS_COUNT},
      {"tailStatCount", TS_COUNT},     {"maxTails", MAX_TAILS},
  };
  _Static_assert(sizeof group_stats / sizeof group_stats[0] == GS_COUNT, "every group counter is named");
  _Static_assert(sizeof tail_stats / sizeof tail_stats[0] == TS_COUNT, "every tail counter is named");
  napi_value out = TABLE(env, numbers), t;
  if (!out) return NULL;
  if (!(t = TABLE(env, events))) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, out, "events", t));
  if (!(t = TABLE(env, group_stats))) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, out, "groupStats", t));
  if (!(t = TABLE(env, tail_stats))) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, out, "tailStats", t));
  if (!(t = TABLE(env, policies))) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, out, "policies", t));
  NAPI_CALL(env, napi_object_freeze(env, out));
  return out;
}

napi_value wh_engine_init(napi_env env, napi_value exports) {
  napi_value constants = engine_constants(env);
  if (!constants) return NULL;
  napi_property_descriptor props[] = {
      {"engineStart", NULL, engine_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineStop", NULL, engine_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineRef", NULL, engine_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineStats", NULL, engine_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupCreate", NULL, group_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupListen", NULL, group_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupUnlisten", NULL, group_unlisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupTail", NULL, group_tail, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupHealth", NULL, group_health, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupBalance", NULL, group_balance, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupTailStats", NULL, group_tail_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupTailCount", NULL, group_tail_count, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupDial", NULL, group_dial, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupAcquire", NULL, group_acquire, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupRelease", NULL, group_release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupStats", NULL, group_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupClose", NULL, group_close_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pickTail", NULL, pick_tail_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineConstants", NULL, NULL, NULL, NULL, constants, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return wh_chan_init(env, exports);
}
