/*
 * unixsock: unix stream sockets named by the user, bound and dialed safely in another
 * filesystem root (a container's, through /proc/PID/root) or in the abstract namespace.
 *
 * Addresses come as the user writes them: "/a/path" (a file in the end's filesystem) or
 * "@name" (abstract: it lives in the network namespace of the socket, so the caller makes
 * the socket after setns(2) there, as for TCP).
 *
 * Why a root fd and openat2: the daemon cannot setns(CLONE_NEWNS) into a container's mount
 * namespace (a multi-threaded process shares its fs_struct), and following a path string
 * under /proc/PID/root would let a symlink inside the container ("/run/x -> /etc", or an
 * absolute link to a host socket such as /var/run/docker.sock) lead a root daemon out to the
 * host. So every lookup is openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): "/"
 * and ".." stay at the container's root, absolute symlinks are read as the container would
 * read them, and /proc magic links (a "/proc/self/root/..." planted inside) are refused.
 * The socket is then reached by the fd the lookup gave, through "/proc/self/fd/N": the
 * kernel follows that magic link to the very inode found, never to a path string again.
 * - connect: the socket file itself is opened O_PATH (its last symlink followed inside the
 *   root), then connect("/proc/self/fd/N");
 * - bind: its directory is opened O_PATH, then bind("/proc/self/fd/DIR/NAME"): bind makes a
 *   new inode and never follows a last symlink (an existing name fails with EADDRINUSE).
 * That also lifts sun_path's 108-byte limit on the path, leaving it on the last name.
 *
 * Nothing here touches N-API: the namespace thread (nsfactory.c) and the engine (conn.c)
 * call these from their own threads. Each returns -1 with errno set on failure.
 */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

/* "/proc/self/fd/" + an int + "/" + NAME + NUL must fit sun_path (108). */
#define FD_PREFIX "/proc/self/fd/"

static int openat2_in_root(int root, const char *path, int flags) {
  struct open_how how = {
      .flags = (uint64_t)(flags | O_CLOEXEC),
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

int wh_root_open(const char *root) {
  /* O_PATH: nothing is read; the magic link /proc/PID/root is followed to the container's "/" */
  return open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

bool wh_unix_abstract(const char *name, struct sockaddr_un *sun, socklen_t *len) {
  size_t n = strlen(name);
  if (n == 0 || n > sizeof sun->sun_path - 1) return false;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  /* the name follows a NUL byte and is not NUL-terminated: the length says where it ends */
  memcpy(sun->sun_path + 1, name, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  return true;
}

/* sun_path = "/proc/self/fd/FD[/NAME]"; false (ENAMETOOLONG) if it does not fit. */
static bool fd_addr(int fd, const char *name, struct sockaddr_un *sun, socklen_t *len) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  int n = name ? snprintf(sun->sun_path, sizeof sun->sun_path, FD_PREFIX "%d/%s", fd, name)
               : snprintf(sun->sun_path, sizeof sun->sun_path, FD_PREFIX "%d", fd);
  if (n < 0 || (size_t)n >= sizeof sun->sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
  return true;
}

int wh_unix_connect_in(int sock, int root, const char *path) {
  int target = openat2_in_root(root, path, O_PATH);
  if (target < 0) return -1;
  struct stat st;
  if (fstat(target, &st) != 0) {
    int err = errno;
    close(target);
    errno = err;
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    /* what connect(2) says of a path that is no socket */
    close(target);
    errno = ECONNREFUSED;
    return -1;
  }
  struct sockaddr_un sun;
  socklen_t len;
  int rc = fd_addr(target, NULL, &sun, &len) ? connect(sock, (struct sockaddr *)&sun, len) : -1;
  int err = errno;
  close(target);
  errno = err;
  return rc;
}

/*
 * Split an absolute path into its directory (opened in root) and its last name. The name
 * must be a real name: not empty, ".", ".." (a path ending in "/" names a directory).
 */
static int open_parent(int root, const char *path, const char **name) {
  const char *slash = strrchr(path, '/');
  if (path[0] != '/' || !slash || slash[1] == '\0' || strcmp(slash + 1, ".") == 0 ||
      strcmp(slash + 1, "..") == 0) {
    errno = EINVAL;
    return -1;
  }
  *name = slash + 1;
  size_t dlen = (size_t)(slash - path);
  char *dir = malloc(dlen + 2);
  if (!dir) return -1;
  if (dlen == 0) strcpy(dir, "/");
  else {
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
  }
  int fd = openat2_in_root(root, dir, O_PATH | O_DIRECTORY);
  int err = errno;
  free(dir);
  errno = err;
  return fd;
}

/* Is a socket file (opened O_PATH at dir/name, never through a symlink) still served? */
static int probe(int dir, const char *name, bool *live) {
  int target = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (target < 0) return -1;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun;
  socklen_t len;
  int rc = -1;
  if (s >= 0 && fd_addr(target, NULL, &sun, &len)) {
    /* a listener answers at once (EAGAIN: its backlog is full, but it is there) */
    if (connect(s, (struct sockaddr *)&sun, len) == 0 || errno == EAGAIN) *live = true, rc = 0;
    else if (errno == ECONNREFUSED) *live = false, rc = 0;
  }
  int err = errno;
  if (s >= 0) close(s);
  close(target);
  errno = err;
  return rc;
}

int wh_unix_listen_in(int sock, int root, const char *path, int mode, int backlog, struct wh_unix_bound *out) {
  memset(out, 0, sizeof *out);
  const char *name;
  int err;
  int dir = open_parent(root, path, &name);
  if (dir < 0) {
    out->what = "open its directory";
    return -1;
  }
  struct stat st;
  int rc = -1;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      /* a regular file, a directory, a symlink: never ours to remove */
      out->code = "NOT_A_SOCKET";
      out->what = S_ISLNK(st.st_mode)   ? "exists and is a symbolic link, not a socket"
                  : S_ISDIR(st.st_mode) ? "exists and is a directory, not a socket"
                                        : "exists and is not a socket";
      errno = EEXIST;
      goto done;
    }
    bool live = false;
    if (probe(dir, name, &live) != 0) {
      out->what = "probe the socket there";
      goto done;
    }
    if (live) {
      out->code = "ADDR_IN_USE";
      out->what = "is a socket something listens on";
      errno = EADDRINUSE;
      goto done;
    }
    /* left by a daemon that died (nobody listens): replaced */
    if (unlinkat(dir, name, 0) != 0 && errno != ENOENT) {
      out->what = "remove the stale socket";
      goto done;
    }
  } else if (errno != ENOENT) {
    out->what = "look at the path";
    goto done;
  }
  struct sockaddr_un sun;
  socklen_t len;
  if (!fd_addr(dir, name, &sun, &len)) {
    out->what = "fit the name in a socket address (the last name may have at most 88 bytes)";
    goto done;
  }
  /*
   * The file gets its mode from the umask at bind: set here, on a thread whose fs_struct
   * (umask included) is its own (the caller unshared CLONE_FS), so that the socket never
   * exists with a wider mode, and no chmod by path can be turned onto another file.
   */
  mode_t old = umask((mode_t)(~mode & 0777));
  rc = bind(sock, (struct sockaddr *)&sun, len);
  err = errno;
  umask(old);
  errno = err;
  if (rc != 0) {
    out->what = "bind";
    goto done;
  }
  if (listen(sock, backlog) != 0) {
    out->what = "listen";
    rc = -1;
    goto done;
  }
  /* its identity, so that delete removes this file and not one put there since */
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    out->dev = (uint64_t)st.st_dev;
    out->ino = (uint64_t)st.st_ino;
  }
  rc = 0;
done:
  err = errno;
  close(dir);
  errno = err;
  return rc;
}

int wh_unix_remove_in(int root, const char *path, uint64_t dev, uint64_t ino) {
  const char *name;
  int dir = open_parent(root, path, &name);
  if (dir < 0) return -1;
  struct stat st;
  int rc = 0;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    /* only the socket we bound: a file put there since is someone else's */
    if (S_ISSOCK(st.st_mode) && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino)
      rc = unlinkat(dir, name, 0);
  } else if (errno != ENOENT) {
    rc = -1;
  }
  int err = errno;
  close(dir);
  errno = err;
  return rc;
}
