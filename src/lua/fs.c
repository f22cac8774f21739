/*
 * fs.c — cf.fs: files and directories as futures on libuv's thread pool.
 *
 * Every function returns a future; awaiting it gives the results, or
 * nil, message, code (the libuv error name) when the system call failed.
 * Misuse (a non-string path, a closed file) raises at the call.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
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
  int err = cfu_fsjob_take_err(j);
  if (err) {
    if (j->op == CFU_FS_RENAME) {
      return cfl_push_ioerrf(L, err, "%s -> %s", j->path, j->path2);
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

/* ---- argument checks ------------------------------------------------------
 * Every entry point checks the runtime (cfl_rt) and all of its arguments
 * before it allocates anything, so an argument that raises (a bad option, an
 * option table whose __index raises) leaks nothing. The future is made
 * before the job it will own: if the job's allocation fails, the future is
 * dropped by the collector with no job. */

/* Largest count or offset: exact in a double, so 5.4 and LuaJIT agree. */
#define MAX_EXACT ((lua_Integer)1 << 53)

static const char *check_path(lua_State *L, int idx, const char *fname) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: argument #%d must be a path string (got %s)", fname, idx,
               luaL_typename(L, idx));
  char what[24];
  snprintf(what, sizeof what, "argument #%d", idx);
  size_t len;
  const char *p = cfl_check_cstring(L, idx, fname, what, &len);
  if (len == 0) luaL_error(L, "%s: argument #%d must be a non-empty path", fname, idx);
  return p;
}

/* A number (not a string that converts) that is an integer in [lo, hi]. */
static lua_Integer check_int(lua_State *L, int idx, const char *fname, const char *what,
                             lua_Integer lo, lua_Integer hi) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a number (got %s)", fname, what, luaL_typename(L, idx));
  return cfl_check_int_range(L, idx, fname, what, lo, hi);
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
  if (!lua_isnil(L, -1)) mode = (int)check_int(L, -1, fname, "option mode", 0, 07777);
  lua_pop(L, 1);
  return mode;
}

/* Push a future for a path operation, then the job it owns. */
static cfu_fsjob *path_job(lua_State *L, cf_runtime *rt, cfu_fs_op op, const char *path) {
  cfl_job *f = cfl_new_job(L, rt, &path_kind, NULL);
  cfu_fsjob *j = cfu_fsjob_new(op, path);
  if (!j) luaL_error(L, "%s: out of memory", op_names[op]);
  f->job = &j->job;
  return j;
}

/* ---- path operations ----------------------------------------------------- */

/* cf.fs.read_file(path) -> future of the contents */
static int l_read_file(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  path_job(L, rt, CFU_FS_READ_FILE, check_path(L, 1, "fs.read_file"));
  return 1;
}

/* cf.fs.write_file(path, data [, {atomic=, append=, mode=}]) -> future of true */
static int l_write_file(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
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
  cfu_fsjob *j = path_job(L, rt, CFU_FS_WRITE_FILE, p);
  j->opts = opts;
  j->mode = mode;
  j->data = malloc(len ? len : 1); /* the pool writes from a copy the GC cannot take */
  if (!j->data) return luaL_error(L, "fs.write_file: out of memory");
  memcpy(j->data, data, len);
  j->len = len;
  return 1;
}

static int stat_common(lua_State *L, const char *fname, int opts) {
  cf_runtime *rt = cfl_rt(L);
  path_job(L, rt, CFU_FS_STAT, check_path(L, 1, fname))->opts = opts;
  return 1;
}
/* cf.fs.stat(path) / cf.fs.lstat(path) -> future of a table */
static int l_stat(lua_State *L) { return stat_common(L, "fs.stat", 0); }
static int l_lstat(lua_State *L) { return stat_common(L, "fs.lstat", CFU_FS_LSTAT); }

/* cf.fs.mkdir(path [, {parents=, mode=}]) -> future of true */
static int l_mkdir(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *p = check_path(L, 1, "fs.mkdir");
  int has = opt_table(L, 2, "fs.mkdir");
  int opts = opt_flag(L, 2, has, "parents", CFU_FS_PARENTS);
  int mode = opt_mode(L, 2, has, "fs.mkdir");
  cfu_fsjob *j = path_job(L, rt, CFU_FS_MKDIR, p);
  j->opts = opts;
  j->mode = mode;
  return 1;
}

/* cf.fs.readdir(path) -> future of an iterator of name, type */
static int l_readdir(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  path_job(L, rt, CFU_FS_READDIR, check_path(L, 1, "fs.readdir"));
  return 1;
}

/* cf.fs.unlink(path) -> future of true */
static int l_unlink(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  path_job(L, rt, CFU_FS_UNLINK, check_path(L, 1, "fs.unlink"));
  return 1;
}

/* cf.fs.rename(from, to) -> future of true */
static int l_rename(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *from = check_path(L, 1, "fs.rename");
  const char *to = check_path(L, 2, "fs.rename");
  cfu_fsjob *j = path_job(L, rt, CFU_FS_RENAME, from);
  j->path2 = strdup(to);
  if (!j->path2) return luaL_error(L, "fs.rename: out of memory");
  return 1;
}

/* cf.fs.rmdir(path [, {recursive=true}]) -> future of true */
static int l_rmdir(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *p = check_path(L, 1, "fs.rmdir");
  int has = opt_table(L, 2, "fs.rmdir");
  int opts = opt_flag(L, 2, has, "recursive", CFU_FS_RECURSIVE);
  path_job(L, rt, CFU_FS_RMDIR, p)->opts = opts;
  return 1;
}

/* cf.fs.mkdtemp([prefix]) -> future of the new directory's path */
static int l_mkdtemp(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *prefix = "/tmp/cfuture-";
  if (!lua_isnoneornil(L, 1)) prefix = check_path(L, 1, "fs.mkdtemp");
  path_job(L, rt, CFU_FS_MKDTEMP, prefix);
  return 1;
}

/* The open(2) flags of an io.open mode: [rwa], then '+', 'b' and (after
 * 'w') 'x', each at most once; anything else is refused. */
static int open_flags(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return O_RDONLY;
  size_t len;
  const char *mode = cfl_check_cstring(L, idx, "fs.open", "argument #2", &len);
  int plus = 0, bin = 0, excl = 0, ok = len > 0;
  for (size_t i = 1; ok && i < len; i++) {
    if (mode[i] == '+' && !plus)
      plus = 1;
    else if (mode[i] == 'b' && !bin)
      bin = 1;
    else if (mode[i] == 'x' && !excl && mode[0] == 'w')
      excl = O_EXCL;
    else
      ok = 0;
  }
  int flags = 0;
  switch (ok ? mode[0] : 0) {
  case 'r': flags = plus ? O_RDWR : O_RDONLY; break;
  case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC | excl; break;
  case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
  default:
    luaL_error(L,
               "fs.open: argument #2 must be a mode such as \"r\", \"w\", \"a\", \"r+\", \"w+\", "
               "\"a+\" or \"wx\" (got \"%s\")",
               mode);
  }
  return flags;
}

/* cf.fs.open(path [, mode]) -> future of a file */
static int l_open(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  const char *p = check_path(L, 1, "fs.open");
  int flags = open_flags(L, 2);
  path_job(L, rt, CFU_FS_OPEN, p)->opts = flags;
  return 1;
}

/* ---- files ------------------------------------------------------------------ */

/* Take the opened fd into a new file object (the object first: if making
 * it raises, the job still owns the fd and closes it when freed). */
static int push_file_object(lua_State *L, cfu_fsjob *j) {
  cfl_file *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->f = NULL;
  o->closed = 0;
  luaL_setmetatable(L, FILE_MT);
  cfu_file *cf = cfu_file_new(j->fd, j->path, (j->opts & O_APPEND) != 0);
  if (!cf) {
    lua_pop(L, 1);
    return cfl_push_ioerr(L, UV_ENOMEM, j->path); /* the job's free closes the fd */
  }
  o->f = cf;
  j->fd = -1;
  return 1;
}

/* The file at index 1 (a method's self); raises unless it is an open file.
 * Callers have checked the runtime (cfl_rt) first. */
static cfl_file *check_file(lua_State *L, const char *fname) {
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (!o) cfl_raise_self(L, 1, fname, "a file");
  if (o->closed || !o->f) luaL_error(L, "%s: the file is closed", fname);
  return o;
}

/* Push a future for op on the file at index 1, which it keeps alive, then
 * the job it owns. */
static cfu_fsjob *file_job(lua_State *L, cf_runtime *rt, cfl_file *o, cfu_fs_op op) {
  cfl_job *f = cfl_new_job(L, rt, &file_kind, NULL);
  lua_pushvalue(L, 1);
  cfl_setuservalue(L, -2);
  cfu_fsjob *j = cfu_fsjob_on(op, o->f);
  if (!j) luaL_error(L, "%s: out of memory", op_names[op]);
  f->job = &j->job;
  return j;
}

/* file:read([n | "a" | "l"]) -> future of a string, or nil at end of file */
static int f_read(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:read");
  int mode = CFU_READ_LINE;
  lua_Integer n = 0;
  int t = lua_type(L, 2);
  if (t == LUA_TNUMBER) {
    n = cfl_check_int_range(L, 2, "file:read", "argument #2", 0, MAX_EXACT);
    mode = CFU_READ_N;
  } else if (t == LUA_TSTRING) {
    size_t len;
    const char *m = cfl_check_cstring(L, 2, "file:read", "argument #2", &len);
    if (len == 2 && *m == '*') m++, len--;
    if (len == 1 && *m == 'a')
      mode = CFU_READ_ALL;
    else if (len != 1 || *m != 'l')
      luaL_error(L, "file:read: argument #2 must be a byte count, \"a\" or \"l\" (got \"%s\")",
                 lua_tostring(L, 2));
  } else if (t != LUA_TNONE && t != LUA_TNIL) {
    luaL_error(L, "file:read: argument #2 must be a byte count, \"a\" or \"l\" (got %s)",
               luaL_typename(L, 2));
  }
  cfu_fsjob *j = file_job(L, rt, o, CFU_FS_READ);
  j->mode = mode;
  j->off = n;
  return 1;
}

/* file:read_line() -> future of the next line without its newline, or nil */
static int f_read_line(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:read_line");
  file_job(L, rt, o, CFU_FS_READ)->mode = CFU_READ_LINE;
  return 1;
}

/* file:read_all() -> future of the rest of the file */
static int f_read_all(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:read_all");
  file_job(L, rt, o, CFU_FS_READ)->mode = CFU_READ_ALL;
  return 1;
}

/* file:write(data) -> future of true */
static int f_write(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:write");
  size_t len;
  const char *data = lua_isstring(L, 2) ? lua_tolstring(L, 2, &len) : NULL;
  if (!data)
    luaL_error(L, "file:write: argument #2 must be a string (got %s)", luaL_typename(L, 2));
  cfu_fsjob *j = file_job(L, rt, o, CFU_FS_WRITE);
  j->data = malloc(len ? len : 1); /* the pool writes from a copy the GC cannot take */
  if (!j->data) return luaL_error(L, "file:write: out of memory");
  memcpy(j->data, data, len);
  j->len = len;
  return 1;
}

/* file:seek([whence [, offset]]) -> future of the new position */
static int f_seek(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:seek");
  int whence = SEEK_CUR;
  if (!lua_isnoneornil(L, 2)) {
    const char *w = cfl_check_cstring(L, 2, "file:seek", "argument #2", NULL);
    if (!strcmp(w, "set"))
      whence = SEEK_SET;
    else if (!strcmp(w, "end"))
      whence = SEEK_END;
    else if (strcmp(w, "cur") != 0)
      luaL_error(L, "file:seek: argument #2 must be \"set\", \"cur\" or \"end\" (got \"%s\")", w);
  }
  lua_Integer off = 0;
  if (!lua_isnoneornil(L, 3))
    off = check_int(L, 3, "file:seek", "argument #3", -MAX_EXACT, MAX_EXACT);
  cfu_fsjob *j = file_job(L, rt, o, CFU_FS_SEEK);
  j->whence = whence;
  j->off = off;
  return 1;
}

/* file:sync() -> future of true, once the data is on disk */
static int f_sync(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  file_job(L, rt, check_file(L, "file:sync"), CFU_FS_SYNC);
  return 1;
}

/* file:stat() -> future of a table */
static int f_stat(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  file_job(L, rt, check_file(L, "file:stat"), CFU_FS_FSTAT);
  return 1;
}

/* file:close() -> future of true; the file refuses further use at once */
static int f_close(lua_State *L) {
  cf_runtime *rt = cfl_rt(L);
  cfl_file *o = check_file(L, "file:close");
  file_job(L, rt, o, CFU_FS_CLOSE);
  o->closed = 1;
  return 1;
}

/* Let go of the C file at once; a job still running on it closes the fd. */
static void release(cfl_file *o) {
  if (!o->f) return;
  cfu_file *f = o->f;
  o->f = NULL;
  o->closed = 1;
  cfu_file_release(f);
}

/* __gc: never raises. Anything but a file (a direct call with a foreign or
 * missing self) is left alone. It touches only the object and its C file,
 * never the runtime, so it also runs after the runtime closed (whose close
 * waited for the jobs on its own loop): the fd is not leaked. */
static int f_gc(lua_State *L) {
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (o) release(o);
  return 0;
}

/* __close: the file is closed without waiting (as a collected one). */
static int f_close_var(lua_State *L) {
  cfl_rt(L);
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (!o) luaL_error(L, "file:__close: argument #1 must be a file (got %s)", luaL_typename(L, 1));
  release(o);
  return 0;
}

static int f_tostring(lua_State *L) {
  cfl_rt(L);
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (!o)
    luaL_error(L, "file:__tostring: argument #1 must be a file (got %s)", luaL_typename(L, 1));
  if (o->f && !o->closed)
    lua_pushfstring(L, "cfuture.File(%s, fd %d)", o->f->path ? o->f->path : "?", o->f->fd);
  else
    lua_pushliteral(L, "cfuture.File(closed)");
  return 1;
}

/* file:is_closed() -> boolean */
static int f_is_closed(lua_State *L) {
  cfl_rt(L);
  cfl_file *o = luaL_testudata(L, 1, FILE_MT);
  if (!o) cfl_raise_self(L, 1, "file:is_closed", "a file");
  lua_pushboolean(L, o->closed || !o->f);
  return 1;
}

static const luaL_Reg file_methods[] = {{"read", f_read},           {"read_line", f_read_line},
                                        {"read_all", f_read_all},   {"write", f_write},
                                        {"seek", f_seek},           {"sync", f_sync},
                                        {"stat", f_stat},           {"close", f_close},
                                        {"is_closed", f_is_closed}, {NULL, NULL}};

static const luaL_Reg file_meta[] = {
    {"__gc", f_gc}, {"__close", f_close_var}, {"__tostring", f_tostring}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"read_file", l_read_file}, {"write_file", l_write_file},
                                 {"stat", l_stat},           {"lstat", l_lstat},
                                 {"mkdir", l_mkdir},         {"readdir", l_readdir},
                                 {"unlink", l_unlink},       {"rename", l_rename},
                                 {"rmdir", l_rmdir},         {"mkdtemp", l_mkdtemp},
                                 {"open", l_open},           {NULL, NULL}};

/* Module table on top: adds cf.fs (with cf.fs.File, the file methods). */
/* After the loop's last callbacks, which may have used the buffer cache. */
static void fs_release(cf_runtime *rt) {
  (void)rt;
  cfu_fs_close();
}

static void open_fs(lua_State *L) {
  cf_runtime *rt = cf_runtime_of(L);
  cfu_fs_init();
  lua_newtable(L);
  cfl_setfuncs(L, rt, funcs);
  cfl_new_class(L, rt, FILE_MT, file_methods, file_meta);
  lua_setfield(L, -2, "File");
  lua_setfield(L, -2, "fs");
}

const cfl_module cfl_fs_module = {.name = "fs", .open = open_fs, .release = fs_release};
