/*
 * pick: which tail a connection dials, for a group with several (`also`, `docker-label`).
 * One implementation for both movers: the engine calls pick() for the connections it dials,
 * and JavaScript calls the same function through pickTail (engine_napi.c) for those it
 * carries itself (WORMHOLE_ENGINE=off, a peer's attach, UDP sessions), so that a client maps
 * to the same tail whichever mover carries it.
 *
 * Policies: round-robin (the next slot after the cursor); least-conn (the fewest open
 * connections, ties going round from the cursor); source (rendezvous hashing of the client's
 * address against each tail's key: a client keeps its tail while that tail stays, and only
 * the clients of a tail that goes move). Healthy tails first; when none is, the others (a
 * stale check must not refuse a client a tail that works). A tail already tried for this
 * connection is skipped: -1 when every one was.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "engine.h"

/* 64-bit mixing (splitmix64's finaliser): spreads nearby inputs over the whole range. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t pick_key(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return mix64(h);
}

uint64_t pick_client_text(const char *text) {
  /* as JavaScript has it: "1.2.3.4", "::ffff:1.2.3.4", "[::1]" (brackets), "fe80::1%eth0" */
  char buf[INET6_ADDRSTRLEN + 2];
  size_t n = strnlen(text, sizeof buf);
  if (n == sizeof buf) return 0;
  if (text[0] == '[') text++, n--;
  memcpy(buf, text, n);
  buf[n] = '\0';
  char *end = strpbrk(buf, "]%");
  if (end) *end = '\0';
  uint8_t addr[16];
  /* the same bytes the engine reads with getpeername: 4 for IPv4, 16 for IPv6 */
  if (inet_pton(AF_INET, buf, addr) == 1) return pick_key(addr, 4);
  if (inet_pton(AF_INET6, buf, addr) == 1) return pick_key(addr, 16);
  return 0; /* a unix client, or none: as the engine, which cannot read one either */
}

int pick(uint8_t policy, const struct pick_tail *tails, int n, uint32_t *rr, uint64_t src) {
  for (int pass = 0; pass < 2; pass++) {
    bool any = pass == 1;
    int best = -1;
    int64_t best_open = INT64_MAX;
    uint64_t best_score = 0;
    for (int k = 0; k < n; k++) {
      int i = (int)((*rr + (uint32_t)k) % (uint32_t)n);
      const struct pick_tail *t = &tails[i];
      if (!t->set || t->tried || !(any || t->up)) continue;
      if (policy == B_ROUND_ROBIN) {
        *rr = (uint32_t)i + 1;
        return i;
      }
      if (policy == B_LEAST_CONN) {
        if (t->open < best_open) best_open = t->open, best = i;
      } else {
        /* rendezvous hashing: a client keeps its tail while that tail stays */
        uint64_t score = mix64(src ^ t->key);
        if (best < 0 || score > best_score) best_score = score, best = i;
      }
    }
    if (best >= 0) {
      if (policy == B_LEAST_CONN) *rr = (uint32_t)best + 1; /* ties go round */
      return best;
    }
  }
  return -1;
}

int pick_tail(struct group *g, struct conn *c) {
  struct pick_tail view[MAX_TAILS];
  int n = g->ntails;
  for (int i = 0; i < n; i++) {
    const struct tail *t = slot_tail(g, i);
    if (!t) {
      view[i] = (struct pick_tail){.set = false};
      continue;
    }
    view[i] = (struct pick_tail){
        .set = t->set,
        .up = t->up,
        .tried = (c->tried & (1ULL << i)) != 0,
        .open = __atomic_load_n(&t->open, __ATOMIC_RELAXED),
        .key = t->key,
    };
  }
  return pick(g->policy, view, n, &g->rr, c->src);
}
