/*
 * fs.c — the blocking side of cf.fs: each job does its system calls on the
 * thread pool and records a negative libuv error (-errno) on failure.
 *
 * Ground rules
 * - run() touches only its job and, for file jobs, the file's fd and
 *   read-ahead, which no one else touches while the file is busy.
 * - Results move to Lua on the loop thread; what an orphaned job produced
 *   is released by its free hook (an fd opened for nobody is closed, a read
 *   nobody took stays in the file's read-ahead for the next read).
 * - File descriptors are opened O_CLOEXEC so child processes never inherit
 *   them.
 */
#define _GNU_SOURCE
#include "fs.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK 65536

static mode_t process_umask = 022;

/* Small read buffers are recycled: a fresh allocation per small file in a
 * pool thread costs page faults as the thread's malloc arena shrinks and
 * grows again, more than reading the file itself. */
#define SMALL_BUF 16384
#define SMALL_KEEP 32
static uv_mutex_t small_lock;
static uv_once_t small_once = UV_ONCE_INIT;
static void *small_free[SMALL_KEEP];
static int small_n;
static int small_users; /* runtimes open: the last one to close empties the cache */

static void small_init(void) { uv_mutex_init(&small_lock); }

static char *small_get(void) {
  void *p = NULL;
  uv_mutex_lock(&small_lock);
  if (small_n > 0) p = small_free[--small_n];
  uv_mutex_unlock(&small_lock);
  return p ? p : malloc(SMALL_BUF);
}

/* Buffers of BIG_BUF bytes or more are mapped pre-faulted: one system call
 * instead of a page fault per 4 KiB, which dominates reading a large file. */
#define BIG_BUF (4u << 20)

static char *big_get(size_t cap) {
  void *p =
      mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static char *buf_get(size_t cap) {
  if (cap == SMALL_BUF) return small_get();
  return cap >= BIG_BUF ? big_get(cap) : malloc(cap);
}

/* Free a buffer of `cap` bytes, keeping small ones. */
static void buf_free(char *p, size_t cap) {
  if (p && cap >= BIG_BUF) {
    munmap(p, cap);
    return;
  }
  if (p && cap == SMALL_BUF) {
    uv_mutex_lock(&small_lock);
    if (small_n < SMALL_KEEP) {
      small_free[small_n++] = p;
      p = NULL;
    }
    uv_mutex_unlock(&small_lock);
  }
  free(p);
}

void cfu_fs_init(void) {
  uv_once(&small_once, small_init);
  uv_mutex_lock(&small_lock);
  small_users++;
  uv_mutex_unlock(&small_lock);
  mode_t m = umask(0);
  umask(m);
  process_umask = m;
}

void cfu_fs_close(void) {
  uv_mutex_lock(&small_lock);
  if (--small_users == 0) /* the module may be unloaded next: keep nothing */
    while (small_n > 0)
      free(small_free[--small_n]);
  uv_mutex_unlock(&small_lock);
}

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- whole-file and path operations ------------------------------------ */

static int read_all_fd(int fd, char **data, size_t *len, size_t *capp, size_t hint) {
  /* a regular file's size is known: one byte more detects that it grew */
  size_t cap = hint < SMALL_BUF ? SMALL_BUF : hint + 1, n = 0;
  char *buf = buf_get(cap);
  if (!buf) return UV_ENOMEM;
  for (;;) {
    if (n == cap) {
      char *nb = buf_get(cap * 2);
      if (!nb) {
        buf_free(buf, cap);
        return UV_ENOMEM;
      }
      memcpy(nb, buf, n);
      buf_free(buf, cap);
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = -errno;
      buf_free(buf, cap);
      return e;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  *data = buf;
  *len = n;
  *capp = cap;
  return 0;
}

static int write_all_fd(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static int do_read_file(cfu_fsjob *j) {
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  size_t hint = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size : 0;
  int e = read_all_fd(fd, &j->data, &j->len, &j->cap, hint);
  close(fd);
  return e;
}

static int do_write_file(cfu_fsjob *j) {
  mode_t mode = (mode_t)(j->mode >= 0 ? j->mode : 0666) & ~process_umask;
  if (!(j->opts & CFU_FS_ATOMIC)) {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (j->opts & CFU_FS_APPEND ? O_APPEND : O_TRUNC);
    int fd = open(j->path, flags, mode);
    if (fd < 0) return -errno;
    int e = write_all_fd(fd, j->data, j->len);
    if (close(fd) != 0 && e == 0) e = -errno;
    return e;
  }
  /* atomic: a temporary file next to the target, renamed over it, so
   * readers see the old contents or the new ones, never a part */
  size_t n = strlen(j->path);
  char *tmp = malloc(n + 8);
  if (!tmp) return UV_ENOMEM;
  memcpy(tmp, j->path, n);
  memcpy(tmp + n, ".XXXXXX", 8);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    free(tmp);
    return -errno;
  }
  struct stat st;
  if (j->mode < 0 && stat(j->path, &st) == 0) mode = st.st_mode & 07777; /* keep the old mode */
  int e = write_all_fd(fd, j->data, j->len);
  if (e == 0 && fchmod(fd, mode) != 0) e = -errno;
  if (e == 0 && fsync(fd) != 0) e = -errno;
  if (close(fd) != 0 && e == 0) e = -errno;
  if (e == 0 && rename(tmp, j->path) != 0) e = -errno;
  if (e != 0) unlink(tmp);
  free(tmp);
  return e;
}

static int do_mkdir(cfu_fsjob *j) {
  mode_t mode = (mode_t)(j->mode >= 0 ? j->mode : 0777);
  if (!(j->opts & CFU_FS_PARENTS)) return mkdir(j->path, mode) == 0 ? 0 : -errno;
  char *p = j->path;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      int r = mkdir(p, mode);
      int err = errno;
      *s = c;
      if (r != 0 && err != EEXIST) return -err;
      if (c == '\0') break;
    }
  }
  struct stat st;
  if (stat(p, &st) != 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : UV_EEXIST;
}

static unsigned char dirent_type(int dirfd, const struct dirent *e) {
  if (e->d_type != DT_UNKNOWN) return e->d_type;
  struct stat st;
  if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
  return IFTODT(st.st_mode);
}

static int do_readdir(cfu_fsjob *j) {
  DIR *d = opendir(j->path);
  if (!d) return -errno;
  size_t cap = 0;
  int e = 0;
  struct dirent *ent;
  errno = 0;
  while ((ent = readdir(d))) {
    if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
    if (j->n == cap) {
      cap = cap ? cap * 2 : 32;
      char **nn = realloc(j->names, cap * sizeof *nn);
      if (nn) j->names = nn;
      unsigned char *nt = realloc(j->types, cap);
      if (nt) j->types = nt;
      if (!nn || !nt) {
        e = UV_ENOMEM;
        break;
      }
    }
    char *name = dup_str(ent->d_name);
    if (!name) {
      e = UV_ENOMEM;
      break;
    }
    j->types[j->n] = dirent_type(dirfd(d), ent);
    j->names[j->n++] = name;
    errno = 0;
  }
  if (!e && errno) e = -errno;
  closedir(d);
  return e;
}

static CF_THREAD_LOCAL int rm_err;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int r = flag == FTW_DP ? rmdir(path) : unlink(path);
  if (r != 0 && errno != ENOENT) {
    rm_err = -errno;
    return 1;
  }
  return 0;
}

static int do_rmdir(cfu_fsjob *j) {
  if (!(j->opts & CFU_FS_RECURSIVE)) return rmdir(j->path) == 0 ? 0 : -errno;
  struct stat st;
  if (lstat(j->path, &st) != 0) return -errno;
  if (!S_ISDIR(st.st_mode)) return UV_ENOTDIR;
  rm_err = 0;
  if (nftw(j->path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) != 0 && rm_err == 0) rm_err = -errno;
  return rm_err;
}

static int do_mkdtemp(cfu_fsjob *j) {
  size_t n = strlen(j->path);
  char *t = malloc(n + 7);
  if (!t) return UV_ENOMEM;
  memcpy(t, j->path, n);
  memcpy(t + n, "XXXXXX", 7);
  if (!mkdtemp(t)) {
    free(t);
    return -errno;
  }
  j->data = t;
  j->len = n + 6;
  return 0;
}

static int do_open(cfu_fsjob *j) {
  int fd = open(j->path, j->opts | O_CLOEXEC, 0666);
  if (fd < 0) return -errno;
  j->fd = fd;
  return 0;
}

/* ---- open files -------------------------------------------------------- */

/* One fill reads at most this much: a huge count (f:read(2^53)) grows the
 * read-ahead as bytes arrive instead of reserving the count up front. */
#define FILL_MAX ((size_t)16 << 20)

/* Make room for `more` bytes after the buffered ones. */
static int file_reserve(cfu_file *f, size_t more) {
  if (f->off > 0 && f->len > 0) memmove(f->buf, f->buf + f->off, f->len);
  f->off = 0;
  if (more > SIZE_MAX / 4 - f->len) return UV_ENOMEM; /* the doubling below cannot wrap */
  if (f->len + more <= f->cap) return 0;
  size_t cap = f->cap ? f->cap : CHUNK;
  while (cap < f->len + more)
    cap *= 2;
  char *nb = realloc(f->buf, cap);
  if (!nb) return UV_ENOMEM;
  f->buf = nb;
  f->cap = cap;
  return 0;
}

/* Read up to `want` more bytes into the read-ahead; 0 at end of file. */
static ssize_t file_fill(cfu_file *f, size_t want) {
  if (file_reserve(f, want) != 0) return UV_ENOMEM;
  for (;;) {
    ssize_t r = read(f->fd, f->buf + f->len, want);
    if (r >= 0) {
      f->len += (size_t)r;
      return r;
    }
    if (errno != EINTR) return -errno;
  }
}

static int do_read(cfu_fsjob *j) {
  cfu_file *f = j->file;
  ssize_t r = 1;
  switch (j->mode) {
  case CFU_READ_N:
    while (f->len < (size_t)j->off && r > 0) {
      size_t need = (size_t)j->off - f->len;
      r = file_fill(f, need < CHUNK ? CHUNK : need > FILL_MAX ? FILL_MAX : need);
    }
    break;
  case CFU_READ_LINE: {
    /* f->buf is NULL until the first fill: memchr is never given it */
    size_t scanned = 0;
    while (r > 0 &&
           (f->len == scanned || !memchr(f->buf + f->off + scanned, '\n', f->len - scanned))) {
      scanned = f->len;
      r = file_fill(f, CHUNK);
    }
    break;
  }
  default: {
    struct stat st;
    if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode)) {
      off_t pos = lseek(f->fd, 0, SEEK_CUR);
      if (pos >= 0 && st.st_size > pos && file_reserve(f, (size_t)(st.st_size - pos) + 1) != 0)
        return UV_ENOMEM;
    }
    while (r > 0) {
      size_t room = f->cap - f->len;
      r = file_fill(f, room < CHUNK ? CHUNK : room > FILL_MAX ? FILL_MAX : room);
    }
    break;
  }
  }
  return r < 0 ? (int)r : 0;
}

/* The kernel's offset runs ahead of the reader by the read-ahead: give it
 * back before a write or a relative seek. */
static int file_unread(cfu_file *f) {
  if (f->len == 0) return 0;
  if (!f->append && lseek(f->fd, -(off_t)f->len, SEEK_CUR) < 0) return -errno;
  f->len = f->off = 0;
  return 0;
}

static int do_file_job(cfu_fsjob *j) {
  cfu_file *f = j->file;
  if (f->fd < 0) return UV_EBADF;
  int e;
  switch (j->op) {
  case CFU_FS_READ: return do_read(j);
  case CFU_FS_WRITE:
    if ((e = file_unread(f)) != 0) return e;
    return write_all_fd(f->fd, j->data, j->len);
  case CFU_FS_SEEK: {
    off_t off = (off_t)j->off;
    if (j->whence == SEEK_CUR) off -= (off_t)f->len;
    off_t pos = lseek(f->fd, off, j->whence);
    if (pos < 0) return -errno;
    f->len = f->off = 0;
    j->off = pos;
    return 0;
  }
  case CFU_FS_SYNC: return fsync(f->fd) == 0 ? 0 : -errno;
  case CFU_FS_FSTAT: return fstat(f->fd, &j->st) == 0 ? 0 : -errno;
  case CFU_FS_CLOSE: {
    int fd = f->fd;
    f->fd = -1;
    return close(fd) == 0 ? 0 : -errno;
  }
  default: return UV_EINVAL;
  }
}

/* ---- job plumbing ------------------------------------------------------ */

static void fs_run(cfu_job *job) {
  cfu_fsjob *j = (cfu_fsjob *)job;
  int e;
  switch (j->op) {
  case CFU_FS_READ_FILE: e = do_read_file(j); break;
  case CFU_FS_WRITE_FILE: e = do_write_file(j); break;
  case CFU_FS_STAT:
    e = (j->opts & CFU_FS_LSTAT ? lstat(j->path, &j->st) : stat(j->path, &j->st)) == 0 ? 0 : -errno;
    break;
  case CFU_FS_MKDIR: e = do_mkdir(j); break;
  case CFU_FS_READDIR: e = do_readdir(j); break;
  case CFU_FS_UNLINK: e = unlink(j->path) == 0 ? 0 : -errno; break;
  case CFU_FS_RENAME: e = rename(j->path, j->path2) == 0 ? 0 : -errno; break;
  case CFU_FS_RMDIR: e = do_rmdir(j); break;
  case CFU_FS_MKDTEMP: e = do_mkdtemp(j); break;
  case CFU_FS_OPEN: e = do_open(j); break;
  default: e = do_file_job(j); break;
  }
  j->job.err = e;
}

static void fs_after(cfu_job *job) {
  cfu_fsjob *j = (cfu_fsjob *)job;
  cfu_file *f = j->file;
  if (!f || !f->busy) return;
  f->busy = 0;
  if (j->op == CFU_FS_WRITE && cfu_job_orphaned(&j->job) && j->job.err && !f->werr)
    f->werr = j->job.err;
  if (j->op == CFU_FS_READ && !cfu_job_orphaned(&j->job) && !j->job.err) {
    /* move the result out now: the next operation may run before the
     * reader is resumed (a read nobody takes stays in the read-ahead) */
    j->data = cfu_file_take(f, j->mode, j->off, &j->len);
    if (!j->data && f->len > 0) j->job.err = UV_ENOMEM;
  }
  cf_waitlist_wake_all(&f->waiters);
}

static void file_unref(cfu_file *f) {
  assert(f->refs > 0);
  if (--f->refs > 0) return;
  if (f->fd >= 0) close(f->fd);
  free(f->buf);
  free(f->path);
  free(f);
}

static void fs_free(cfu_job *job) {
  cfu_fsjob *j = (cfu_fsjob *)job;
  if (j->fd >= 0) close(j->fd); /* opened for a future that was dropped */
  if (j->op == CFU_FS_MKDTEMP && j->data && cfu_job_orphaned(&j->job)) rmdir(j->data);
  for (size_t i = 0; i < j->n; i++)
    free(j->names[i]);
  free(j->names);
  free(j->types);
  buf_free(j->data, j->cap);
  free(j->path);
  free(j->path2);
  if (j->file) file_unref(j->file); /* the last user closes the fd */
  free(j);
}

static const cfu_job_vt fs_vt = {fs_run, fs_after, fs_free};

cfu_fsjob *cfu_fsjob_new(cfu_fs_op op, const char *path) {
  cfu_fsjob *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  cfu_job_init(&j->job, &fs_vt);
  j->op = op;
  j->fd = -1;
  j->mode = -1;
  if (path && !(j->path = dup_str(path))) {
    free(j);
    return NULL;
  }
  return j;
}

cfu_fsjob *cfu_fsjob_on(cfu_fs_op op, cfu_file *f) {
  cfu_fsjob *j = cfu_fsjob_new(op, NULL);
  if (!j) return NULL;
  assert(f->refs > 0);
  j->file = f;
  f->refs++;
  return j;
}

int cfu_fsjob_take_err(cfu_fsjob *j) {
  int err = j->job.err;
  cfu_file *f = j->file;
  if (f && !err && f->werr &&
      (j->op == CFU_FS_WRITE || j->op == CFU_FS_SYNC || j->op == CFU_FS_CLOSE)) {
    err = f->werr; /* a write whose future was dropped failed */
    f->werr = 0;
  }
  return err;
}

int cfu_fsjob_turn(cfu_fsjob *j, cf_context *cx) {
  cfu_file *f = j->file;
  if (f->busy) {
    cf_waitlist_register(&f->waiters, cx);
    return 0;
  }
  if (cx->waiter && cf_waiter_linked(cx->waiter)) cf_waiter_cancel(cx->waiter);
  f->busy = 1;
  return 1;
}

cfu_file *cfu_file_new(int fd, const char *path, int append) {
  cfu_file *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->fd = fd;
  f->refs = 1;
  f->append = (uint8_t)append;
  f->path = dup_str(path);
  cf_waitlist_init(&f->waiters);
  return f;
}

void cfu_file_release(cfu_file *f) {
  f->closed = 1;
  if (!f->busy && f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  }
  file_unref(f);
}

char *cfu_file_take(cfu_file *f, int mode, int64_t n, size_t *len) {
  if (f->len == 0) return NULL;
  size_t k = f->len;
  if (mode == CFU_READ_N && (size_t)n < k) k = (size_t)n;
  size_t skip = 0;
  if (mode == CFU_READ_LINE) {
    char *nl = memchr(f->buf + f->off, '\n', f->len);
    if (nl) {
      k = (size_t)(nl - (f->buf + f->off));
      skip = 1;
      if (k > 0 && nl[-1] == '\r') k--, skip++;
    }
  }
  char *s = malloc(k + 1);
  if (!s) return NULL;
  memcpy(s, f->buf + f->off, k);
  *len = k;
  f->off += k + skip;
  f->len -= k + skip;
  if (f->len == 0) f->off = 0;
  return s;
}
