/*
 * fs.h — file-system jobs for the thread pool, and open files.
 *
 * Each operation is one job that does all of its system calls in the pool
 * (read_file is open + fstat + reads + close in one trip), so the loop
 * thread never blocks and a cancelled operation can clean up after itself.
 */
#ifndef CF_UV_FS_H
#define CF_UV_FS_H

#include <sys/stat.h>

#include "work.h"

typedef enum cfu_fs_op {
  CFU_FS_READ_FILE,
  CFU_FS_WRITE_FILE,
  CFU_FS_STAT,
  CFU_FS_MKDIR,
  CFU_FS_READDIR,
  CFU_FS_UNLINK,
  CFU_FS_RENAME,
  CFU_FS_RMDIR,
  CFU_FS_MKDTEMP,
  CFU_FS_OPEN,
  /* on an open file */
  CFU_FS_READ,
  CFU_FS_WRITE,
  CFU_FS_SEEK,
  CFU_FS_SYNC,
  CFU_FS_FSTAT,
  CFU_FS_CLOSE,
} cfu_fs_op;

/* option bits */
#define CFU_FS_ATOMIC 0x1    /* write_file: temp file, fsync, rename */
#define CFU_FS_APPEND 0x2    /* write_file: append */
#define CFU_FS_PARENTS 0x4   /* mkdir: create missing parents, accept an existing dir */
#define CFU_FS_RECURSIVE 0x8 /* rmdir: remove the whole tree */
#define CFU_FS_LSTAT 0x10    /* stat: do not follow a final symlink */

/* read modes */
enum { CFU_READ_N, CFU_READ_LINE, CFU_READ_ALL };

/* An open file. C memory shared by the Lua file object and the job in
 * flight on it; the last of them to let go frees it (closing the fd if the
 * object was collected without close). Operations on one file run one at a
 * time, in the order they were first polled. */
typedef struct cfu_file {
  int fd;
  int refs;
  uint8_t busy;   /* a job runs on it */
  uint8_t closed; /* close() was called or the object was collected */
  uint8_t append;
  int werr;  /* error of a write nobody awaited, reported by the next operation */
  char *buf; /* read-ahead: the bytes [off, off + len) come next */
  size_t off, len, cap;
  cf_waitlist waiters; /* operations waiting for their turn */
  char *path;
} cfu_file;

typedef struct cfu_fsjob {
  cfu_job job;
  cfu_fs_op op;
  int opts;
  int mode;    /* permission bits; read mode for CFU_FS_READ */
  int whence;  /* seek */
  int64_t off; /* seek offset / result position; read count */
  char *path, *path2;
  char *data; /* write: the bytes to write; reads: the result */
  size_t len, cap;
  int fd; /* open: the new fd, until the file object takes it */
  struct stat st;
  char **names; /* readdir */
  unsigned char *types;
  size_t n;
  cfu_file *file;
} cfu_fsjob;

/* A job for op; path (copied) may be NULL. NULL when out of memory. */
cfu_fsjob *cfu_fsjob_new(cfu_fs_op op, const char *path);
/* A job on an open file (holds a reference on it). */
cfu_fsjob *cfu_fsjob_on(cfu_fs_op op, cfu_file *f);
/* The error a done job reports: its own, else for a write, sync or close
 * the failure of an earlier write on the file whose future was dropped
 * (reported once). */
int cfu_fsjob_take_err(cfu_fsjob *j);
/* The file-system's turn rule for file jobs: 1 if j may run now. */
int cfu_fsjob_turn(cfu_fsjob *j, cf_context *cx);

cfu_file *cfu_file_new(int fd, const char *path, int append);
/* The Lua object lets go (close or collection): the fd is closed now if no
 * job runs on it, else by that job. */
void cfu_file_release(cfu_file *f);
/* Move up to n bytes (n < 0: all) or a line out of the read-ahead into a
 * malloc'ed string; returns NULL when nothing is buffered. */
char *cfu_file_take(cfu_file *f, int mode, int64_t n, size_t *len);

/* A runtime opens: read the process umask (on the loop thread). */
void cfu_fs_init(void);
/* A runtime closed, after its jobs finished: the last one frees the
 * recycled read buffers. */
void cfu_fs_close(void);

#endif
