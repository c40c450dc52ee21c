/*
 * An iperf-like throughput pair for unix sockets, which iperf3 cannot use (built by the
 * sockets scene with gcc):
 *
 *   sink listen PATH              a unix stream server: each connection (a process of its
 *                                 own) is read to its end, then answered with the number of
 *                                 bytes read, as text, and closed
 *   sink send HOST PORT SECONDS   a TCP client pushing 1 MiB blocks for SECONDS, then FIN,
 *   sink send PATH - SECONDS      or a unix one; prints {"bytes": N, "seconds": S, "gbps": G}
 *                                 where N is what the sink says it read and S runs from the
 *                                 first write to its answer (the last bytes' drain included)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1 << 20)

static int unix_addr(const char *path, struct sockaddr_un *sun) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sun->sun_path) return -1;
  strcpy(sun->sun_path, path);
  return 0;
}

static int serve(const char *path) {
  struct sockaddr_un sun;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  unlink(path);
  if (s < 0 || unix_addr(path, &sun) != 0 || bind(s, (struct sockaddr *)&sun, sizeof sun) != 0 ||
      listen(s, 1024) != 0) {
    perror("sink listen");
    return 1;
  }
  signal(SIGCHLD, SIG_IGN);
  static char buf[BLOCK];
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    if (fork() == 0) {
      unsigned long long n = 0;
      ssize_t r;
      while ((r = read(c, buf, sizeof buf)) > 0) n += (unsigned long long)r;
      char out[32];
      int len = snprintf(out, sizeof out, "%llu\n", n);
      if (write(c, out, (size_t)len) < 0) _exit(1);
      _exit(0);
    }
    close(c);
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int send_for(const char *host, const char *port, double seconds) {
  int s;
  if (strcmp(port, "-") == 0) {
    struct sockaddr_un sun;
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || unix_addr(host, &sun) != 0 || connect(s, (struct sockaddr *)&sun, sizeof sun) != 0) {
      perror("sink send: connect");
      return 1;
    }
  } else {
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons((unsigned short)atoi(port));
    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || inet_pton(AF_INET, host, &in.sin_addr) != 1 || connect(s, (struct sockaddr *)&in, sizeof in) != 0) {
      perror("sink send: connect");
      return 1;
    }
  }
  static char buf[BLOCK];
  double start = now(), stop = start + seconds;
  while (now() < stop) {
    for (size_t off = 0; off < sizeof buf;) {
      ssize_t w = write(s, buf + off, sizeof buf - off);
      if (w <= 0) {
        perror("sink send: write");
        return 1;
      }
      off += (size_t)w;
    }
  }
  shutdown(s, SHUT_WR);
  char answer[32] = "";
  ssize_t r = read(s, answer, sizeof answer - 1);
  double took = now() - start;
  if (r <= 0) {
    fprintf(stderr, "sink send: no answer from the sink\n");
    return 1;
  }
  unsigned long long n = strtoull(answer, NULL, 10);
  printf("{\"bytes\": %llu, \"seconds\": %.3f, \"gbps\": %.3f}\n", n, took, (double)n * 8 / took / 1e9);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "listen") == 0) return serve(argv[2]);
  if (argc == 5 && strcmp(argv[1], "send") == 0) return send_for(argv[2], argv[3], atof(argv[4]));
  fprintf(stderr, "usage: sink listen PATH | sink send HOST PORT SECONDS | sink send PATH - SECONDS\n");
  return 2;
}
