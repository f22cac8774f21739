/*
 * fs.c — cf.fs: files and directories as futures on libuv's thread pool.
 *
 * Every function returns a future; awaiting it gives the results, or
 * nil, message, code (the libuv error name) when the system call failed.
 * Misuse (a non-string path, a closed file) raises at the call.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../uv/fs.h"
#include "cfl.h"

#define FILE_MT "cfuture.File"

typedef struct cfl_file {
  cfu_file *f;
  uint8_t closed; /* close() was called: methods raise */
} cfl_file;

/* ---- results ------------------------------------------------------------ */

static const char *type_name(mode_t m) {
  switch (m & S_IFMT) {
  case S_IFREG: return "file";
  case S_IFDIR: return "directory";
  case S_IFLNK: return "link";
  case S_IFIFO: return "fifo";
  case S_IFSOCK: return "socket";
  case S_IFCHR: return "char";
  case S_IFBLK: return "block";
  default: return "unknown";
  }
}

static const char *dtype_name(unsigned char t) {
  switch (t) {
  case DT_REG: return "file";
  case DT_DIR: return "directory";
  case DT_LNK: return "link";
  case DT_FIFO: return "fifo";
  case DT_SOCK: return "socket";
  case DT_CHR: return "char";
  case DT_BLK: return "block";
  default: return "unknown";
  }
}

static double ts(struct timespec t) { return (double)t.tv_sec + (double)t.tv_nsec / 1e9; }

static void push_stat(lua_State *L, const struct stat *st) {
  lua_createtable(L, 0, 13);
#define SETI(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
  SETI("size", st->st_size);
  SETI("mode", st->st_mode & 07777);
  SETI("uid", st->st_uid);
  SETI("gid", st->st_gid);
  SETI("ino", st->st_ino);
  SETI("dev", st->st_dev);
  SETI("nlink", st->st_nlink);
  SETI("blocks", st->st_blocks);
  SETI("blksize", st->st_blksize);
#undef SETI
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushnumber(L, ts(st->st_mtim));
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, ts(st->st_atim));
  lua_setfield(L, -2, "atime");
  lua_pushnumber(L, ts(st->st_ctim));
  lua_setfield(L, -2, "ctime");
}

/* iterator of readdir: upvalues names, types, index */
static int readdir_next(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;
  if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL) return 1;
  lua_rawgeti(L, lua_upvalueindex(2), i);
  lua_pushinteger(L, i);
  lua_replace(L, lua_upvalueindex(3));
  return 2;
}

static int push_file_object(lua_State *L, cfu_fsjob *j);

static const char *what_of(cfu_fsjob *j) {
  if (j->file) return j->file->path;
  return j->path;
}

static int fs_push(lua_State *L, cfu_job *job) {
  cfu_fsjob *j = (cfu_fsjob *)job;
  int err = job->err;
  if (j->file && !err && j->file->werr &&
      (j->op == CFU_FS_WRITE || j->op == CFU_FS_SYNC || j->op == CFU_FS_CLOSE)) {
    err = j->file->werr; /* a write whose future was dropped failed */
    j->file->werr = 0;
  }
  if (err) {
    if (j->op == CFU_FS_RENAME) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s -> %s: %s", j->path, j->path2, uv_strerror(err));
      lua_pushstring(L, uv_err_name(err));
      return 3;
    }
    return cfl_push_ioerr(L, err, what_of(j));
  }
  switch (j->op) {
  case CFU_FS_READ_FILE: lua_pushlstring(L, j->data, j->len); return 1;
  case CFU_FS_STAT:
  case CFU_FS_FSTAT: push_stat(L, &j->st); return 1;
  case CFU_FS_READDIR:
    lua_createtable(L, (int)j->n, 0);
    lua_createtable(L, (int)j->n, 0);
    for (size_t i = 0; i < j->n; i++) {
      lua_pushstring(L, j->names[i]);
      lua_rawseti(L, -3, (lua_Integer)i + 1);
      lua_pushstring(L, dtype_name(j->types[i]));
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, readdir_next, 3);
    return 1;
  case CFU_FS_MKDTEMP: lua_pushlstring(L, j->data, j->len); return 1;
  case CFU_FS_OPEN: return push_file_object(L, j);
  case CFU_FS_READ:
    if (j->data)
      lua_pushlstring(L, j->data, j->len);
    else if (j->mode == CFU_READ_ALL || (j->mode == CFU_READ_N && j->off == 0))
      lua_pushliteral(L, "");
    else
      lua_pushnil(L); /* end of file */
    return 1;
  case CFU_FS_SEEK: lua_pushinteger(L, (lua_Integer)j->off); return 1;
  default: lua_pushboolean(L, 1); return 1;
  }
}

static const char *const op_names[] = {"fs.read_file", "fs.write_file", "fs.stat",   "fs.mkdir",
                                       "fs.readdir",   "fs.unlink",     "fs.rename", "fs.rmdir",
                                       "fs.mkdtemp",   "fs.open",       "file:read", "file:write",
                                       "file:seek",    "file:sync",     "file:stat", "file:close"};

static void fs_describe(lua_State *L, cfu_job *job) {
  cfu_fsjob *j = (cfu_fsjob *)job;
  const char *what = what_of(j);
  lua_pushfstring(L, "%s %s", op_names[j->op], what ? what : "");
}

static int file_turn(cfu_job *job, cf_context *cx) { return cfu_fsjob_turn((cfu_fsjob *)job, cx); }

static const cfl_job_kind path_kind = {"fs", fs_push, NULL, fs_describe};
static const cfl_job_kind file_kind = {"file", fs_push, file_turn, fs_describe};

/* ---- argument checks ------------------------------------------------------ */

static const char *check_path(lua_State *L, int idx, const char *fname) {
  const char *p = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  if (!p)
    luaL_error(L, "%s: argument #%d must be a path string (got %s)", fname, idx,
               luaL_typename(L, idx));
  if (!*p) luaL_error(L, "%s: argument #%d must be a non-empty path", fname, idx);
  if (strlen(p) != lua_rawlen(L, idx))
    luaL_error(L, "%s: argument #%d must not contain a zero byte", fname, idx);
  return p;
}

static int opt_table(lua_State *L, int idx, const char *fname) {
  int t = lua_type(L, idx);
  if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE)
    luaL_error(L, "%s: argument #%d must be an options table (got %s)", fname, idx,
               luaL_typename(L, idx));
  return t == LUA_TTABLE;
}

static int opt_flag(lua_State *L, int idx, int has, const char *key, int bit) {
  if (!has) return 0;
  lua_getfield(L, idx, key);
  int on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on ? bit : 0;
}

static int opt_mode(lua_State *L, int idx, int has, const char *fname) {
  if (!has) return -1;
  lua_getfield(L, idx, "mode");
  int mode = -1;
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 07777)
      luaL_error(L, "%s: option 'mode' must be permission bits such as 420 (0644) (got %s)", fname,
                 luaL_tolstring(L, -1, NULL));
    mode = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return mode;
}

static cfu_fsjob *new_job(lua_State *L, cfu_fs_op op, const char *path) {
  cfu_fsjob *j = cfu_fsjob_new(op, path);
  if (!j) luaL_error(L, "%s: out of memory", op_names[op]);
  return j;
}

static int push_job(lua_State *L, cfu_fsjob *j, const cfl_job_kind *kind) {
  cfl_new_job(L, cfl_rt(L), kind, &j->job);
  return 1;
}

/* ---- path operations ----------------------------------------------------- */

/* cf.fs.read_file(path) -> future of the contents */
static int l_read_file(lua_State *L) {
  const char *p = check_path(L, 1, "fs.read_file");
  return push_job(L, new_job(L, CFU_FS_READ_FILE, p), &path_kind);
}

/* cf.fs.write_file(path, data [, {atomic=, append=, mode=}]) -> future of true */
static int l_write_file(lua_State *L) {
  const char *p = check_path(L, 1, "fs.write_file");
  size_t len;
  const char *data = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
  if (!data)
    luaL_error(L, "fs.write_file: argument #2 must be a string (got %s)", luaL_typename(L, 2));
  int has = opt_table(L, 3, "fs.write_file");
  int opts =
      opt_flag(L, 3, has, "atomic", CFU_FS_ATOMIC) | opt_flag(L, 3, has, "append", CFU_FS_APPEND);
  if ((opts & CFU_FS_ATOMIC) && (opts & CFU_FS_APPEND))
    luaL_error(L, "fs.write_file: options 'atomic' and 'append' exclude each other");
  int mode = opt_mode(L, 3, has, "fs.write_file");
  cfu_fsjob *j = new_job(L, CFU_FS_WRITE_FILE, p);
  j->opts = opts;
  j->mode = mode;
  j->data = malloc(len ? len : 1); /* the pool writes from a copy the GC cannot take */
  if (!j->data) {
    j->job.vt->free(&j->job);
    return luaL_error(L, "fs.write_file: out of memory");
  }
  memcpy(j->data, data, len);
  j->len = len;
  return push_job(L, j, &path_kind);
}

static int stat_common(lua_State *L, const char *fname, int opts) {
  cfu_fsjob *j = new_job(L, CFU_FS_STAT, check_path(L, 1, fname));
  j->opts = opts;
  return push_job(L, j, &path_kind);
}
/* cf.fs.stat(path) / cf.fs.lstat(path) -> future of a table */
static int l_stat(lua_State *L) { return stat_common(L, "fs.stat", 0); }
static int l_lstat(lua_State *L) { return stat_common(L, "fs.lstat", CFU_FS_LSTAT); }

/* cf.fs.mkdir(path [, {parents=, mode=}]) -> future of true */
static int l_mkdir(lua_State *L) {
  const char *p = check_path(L, 1, "fs.mkdir");
  int has = opt_table(L, 2, "fs.mkdir");
  cfu_fsjob *j = new_job(L, CFU_FS_MKDIR, p);
  j->opts = opt_flag(L, 2, has, "parents", CFU_FS_PARENTS);
  j->mode = opt_mode(L, 2, has, "fs.mkdir");
  return push_job(L, j, &path_kind);
}

/* cf.fs.readdir(path) -> future of an iterator of name, type */
static int l_readdir(lua_State *L) {
  return push_job(L, new_job(L, CFU_FS_READDIR, check_path(L, 1, "fs.readdir")), &path_kind);
}

/* cf.fs.unlink(path) -> future of true */
static int l_unlink(lua_State *L) {
  return push_job(L, new_job(L, CFU_FS_UNLINK, check_path(L, 1, "fs.unlink")), &path_kind);
}

/* cf.fs.rename(from, to) -> future of true */
static int l_rename(lua_State *L) {
  const char *from = check_path(L, 1, "fs.rename");
  const char *to = check_path(L, 2, "fs.rename");
  cfu_fsjob *j = new_job(L, CFU_FS_RENAME, from);
  j->path2 = strdup(to);
  if (!j->path2) {
    j->job.vt->free(&j->job);
    return luaL_error(L, "fs.rename: out of memory");
  }
  return push_job(L, j, &path_kind);
}

/* cf.fs.rmdir(path [, {recursive=true}]) -> future of true */
static int l_rmdir(lua_State *L) {
  const char *p = check_path(L, 1, "fs.rmdir");
  int has = opt_table(L, 2, "fs.rmdir");
  cfu_fsjob *j = new_job(L, CFU_FS_RMDIR, p);
  j->opts = opt_flag(L, 2, has, "recursive", CFU_FS_RECURSIVE);
  return push_job(L, j, &path_kind);
}

/* cf.fs.mkdtemp([prefix]) -> future of the new directory's path */
static int l_mkdtemp(lua_State *L) {
  const char *prefix = "/tmp/cfuture-";
  if (!lua_isnoneornil(L, 1)) prefix = check_path(L, 1, "fs.mkdtemp");
  return push_job(L, new_job(L, CFU_FS_MKDTEMP, prefix), &path_kind);
}

/* cf.fs.open(path [, mode]) -> future of a file */
static int l_open(lua_State *L) {
  const char *p = check_path(L, 1, "fs.open");
  const char *mode = luaL_optstring(L, 2, "r");
  int flags, plus = strchr(mode, '+') != NULL, ok = 1;
  switch (mode[0]) {
  case 'r': flags = plus ? O_RDWR : O_RDONLY; break;
  case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
  case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
  default: flags = 0, ok = 0;
  }
  for (const char *c = mode + 1; ok && *c; c++) {
    if (*c == 'x' && mode[0] == 'w')
      flags |= O_EXCL;
    else if (*c != '+' && *c != 'b')
      ok = 0;
  }
  if (!ok)
    luaL_error(L,
               "fs.open: argument #2 must be a mode such as \"r\", \"w\", \"a\", \"r+\", \"w+\", "
               "\"a+\" or \"wx\" (got \"%s\")",
               mode);
  cfu_fsjob *j = new_job(L, CFU_FS_OPEN, p);
  j->opts = flags;
  return push_job(L, j, &path_kind);
}

/* ---- files ------------------------------------------------------------------ */

static int push_file_object(lua_State *L, cfu_fsjob *j) {
  cfu_file *cf = cfu_file_new(j->fd, j->path, (j->opts & O_APPEND) != 0);
  if (!cf) return cfl_push_ioerr(L, UV_ENOMEM, j->path); /* the job's free closes the fd */
  j->fd = -1;
  cfl_file *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->f = cf;
  o->closed = 0;
  luaL_setmetatable(L, FILE_MT);
  return 1;
}

static cfl_file *check_file(lua_State *L, const char *fname) {
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (!o)
    luaL_error(L, "%s: argument #1 must be a file (call it with a colon; got %s)", fname,
               luaL_typename(L, 1));
  if (o->closed || !o->f) luaL_error(L, "%s: the file is closed", fname);
  return o;
}

/* A future for op on the file at index 1, which it keeps alive. */
static cfu_fsjob *file_job(lua_State *L, cfl_file *o, cfu_fs_op op) {
  cfu_fsjob *j = cfu_fsjob_on(op, o->f);
  if (!j) luaL_error(L, "%s: out of memory", op_names[op]);
  cfl_new_job(L, cfl_rt(L), &file_kind, &j->job);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return j;
}

/* file:read([n | "a" | "l"]) -> future of a string, or nil at end of file */
static int f_read(lua_State *L) {
  cfl_file *o = check_file(L, "file:read");
  int mode = CFU_READ_LINE;
  lua_Integer n = 0;
  if (lua_isinteger(L, 2)) {
    n = lua_tointeger(L, 2);
    if (n < 0) luaL_error(L, "file:read: argument #2 must be a non-negative count");
    mode = CFU_READ_N;
  } else if (!lua_isnoneornil(L, 2)) {
    const char *m = lua_tostring(L, 2);
    if (m && *m == '*') m++;
    if (m && (*m == 'a'))
      mode = CFU_READ_ALL;
    else if (!m || *m != 'l')
      luaL_error(L, "file:read: argument #2 must be a byte count, \"a\" or \"l\" (got %s)",
                 luaL_tolstring(L, 2, NULL));
  }
  cfu_fsjob *j = file_job(L, o, CFU_FS_READ);
  j->mode = mode;
  j->off = n;
  return 1;
}

/* file:read_line() -> future of the next line without its newline, or nil */
static int f_read_line(lua_State *L) {
  cfl_file *o = check_file(L, "file:read_line");
  file_job(L, o, CFU_FS_READ)->mode = CFU_READ_LINE;
  return 1;
}

/* file:read_all() -> future of the rest of the file */
static int f_read_all(lua_State *L) {
  cfl_file *o = check_file(L, "file:read_all");
  file_job(L, o, CFU_FS_READ)->mode = CFU_READ_ALL;
  return 1;
}

/* file:write(data) -> future of true */
static int f_write(lua_State *L) {
  cfl_file *o = check_file(L, "file:write");
  size_t len;
  const char *data = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  if (!data)
    luaL_error(L, "file:write: argument #2 must be a string (got %s)", luaL_typename(L, 2));
  char *copy = malloc(len ? len : 1);
  if (!copy) luaL_error(L, "file:write: out of memory");
  memcpy(copy, data, len);
  cfu_fsjob *j = cfu_fsjob_on(CFU_FS_WRITE, o->f);
  if (!j) {
    free(copy);
    luaL_error(L, "file:write: out of memory");
  }
  j->data = copy;
  j->len = len;
  cfl_new_job(L, cfl_rt(L), &file_kind, &j->job);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  return 1;
}

/* file:seek([whence [, offset]]) -> future of the new position */
static int f_seek(lua_State *L) {
  static const char *const whences[] = {"set", "cur", "end", NULL};
  static const int values[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  cfl_file *o = check_file(L, "file:seek");
  int w = luaL_checkoption(L, 2, "cur", whences);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  cfu_fsjob *j = file_job(L, o, CFU_FS_SEEK);
  j->whence = values[w];
  j->off = off;
  return 1;
}

/* file:sync() -> future of true, once the data is on disk */
static int f_sync(lua_State *L) {
  file_job(L, check_file(L, "file:sync"), CFU_FS_SYNC);
  return 1;
}

/* file:stat() -> future of a table */
static int f_stat(lua_State *L) {
  file_job(L, check_file(L, "file:stat"), CFU_FS_FSTAT);
  return 1;
}

/* file:close() -> future of true; the file refuses further use at once */
static int f_close(lua_State *L) {
  cfl_file *o = check_file(L, "file:close");
  file_job(L, o, CFU_FS_CLOSE);
  o->closed = 1;
  return 1;
}

/* __gc and __close: let go at once; a job still running closes the fd */
static int f_release(lua_State *L) {
  cfl_file *o = luaL_checkudata(L, 1, FILE_MT);
  if (o->f) {
    cfu_file *f = o->f;
    o->f = NULL;
    o->closed = 1;
    cfu_file_release(f);
  }
  return 0;
}

static int f_tostring(lua_State *L) {
  cfl_file *o = luaL_checkudata(L, 1, FILE_MT);
  if (o->f && !o->closed)
    lua_pushfstring(L, "cfuture.File(%s, fd %d)", o->f->path ? o->f->path : "?", o->f->fd);
  else
    lua_pushliteral(L, "cfuture.File(closed)");
  return 1;
}

/* file:is_closed() -> boolean */
static int f_is_closed(lua_State *L) {
  cfl_file *o = luaL_checkudata(L, 1, FILE_MT);
  lua_pushboolean(L, o->closed || !o->f);
  return 1;
}

static const luaL_Reg file_methods[] = {{"read", f_read},           {"read_line", f_read_line},
                                        {"read_all", f_read_all},   {"write", f_write},
                                        {"seek", f_seek},           {"sync", f_sync},
                                        {"stat", f_stat},           {"close", f_close},
                                        {"is_closed", f_is_closed}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"read_file", l_read_file}, {"write_file", l_write_file},
                                 {"stat", l_stat},           {"lstat", l_lstat},
                                 {"mkdir", l_mkdir},         {"readdir", l_readdir},
                                 {"unlink", l_unlink},       {"rename", l_rename},
                                 {"rmdir", l_rmdir},         {"mkdtemp", l_mkdtemp},
                                 {"open", l_open},           {NULL, NULL}};

/* Module table on top: adds cf.fs (with cf.fs.File, the file methods). */
void cfl_open_fs(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfu_fs_init();
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  cfl_new_class(L, rt, FILE_MT, file_methods, f_release, f_release, f_tostring);
  lua_setfield(L, -2, "File");
  lua_setfield(L, -2, "fs");
}
