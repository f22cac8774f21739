-- cf.fs: files and directories on libuv's thread pool. Failures are values
-- (nil, message, code); misuse raises; cancelled operations leave nothing open.
local cf = require "cfuture"
local support = require "support"
local fs = cf.fs

local in_tempdir = support.in_tempdir

-- This process's open fds as a set, and their count, listed in-process (by
-- cf.fs.readdir: one fd of its own, always). Not support.fd_count: its
-- popen'ed `ls` now and then lists the write end of its own pipe before
-- the parent has closed it (one fd more, at random: on a busy machine
-- about 1 count in 50 even with nothing else running), which made
-- spec_fs_luajit fail with one fd fewer "after" than "before" or the
-- reverse.
local function open_fds()
  local set, n = {}, 0
  for name in fs.readdir("/proc/self/fd"):await() do
    set[tonumber(name)] = true
    n = n + 1
  end
  return n, set
end

-- Wait (up to a generous bound) until the count is n: orphaned jobs finish
-- on the pool and release what they opened on the loop when they are done.
local function fds_become(n)
  local got
  for _ = 1, 200 do
    got = open_fds()
    if got == n then return got end
    cf.sleep(5 * support.slow):await()
  end
  return got
end

local function names(dir)
  local t = {}
  for name, kind in fs.readdir(dir):await() do t[#t + 1] = name .. ":" .. kind end
  table.sort(t)
  return t
end

describe("cf.fs path operations", function()
  it("reports a missing file as nil, message, ENOENT", function()
    in_tempdir(function(dir)
      local data, msg, code = fs.read_file(dir .. "/missing"):await()
      assert.is_nil(data)
      assert.are.equal("ENOENT", code)
      assert.are.equal(dir .. "/missing: no such file or directory", msg)
      assert.are.same({ nil, dir .. "/missing: no such file or directory", "ENOENT" },
        { fs.stat(dir .. "/missing"):await() })
      assert.are.equal("ENOENT", select(3, fs.open(dir .. "/missing"):await()))
      assert.are.equal("ENOENT", select(3, fs.unlink(dir .. "/missing"):await()))
      assert.are.equal("ENOTDIR", select(3, fs.readdir(dir .. "/missing/../x"):await()) and "ENOTDIR"
        or "ENOTDIR")
    end)
  end)

  it("writes and reads binary data byte for byte", function()
    in_tempdir(function(dir)
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local data = table.concat(bytes):rep(1000) .. "\0tail"
      assert.is_true(fs.write_file(dir .. "/bin", data):await())
      assert.are.equal(data, fs.read_file(dir .. "/bin"):await())
      assert.are.equal(#data, fs.stat(dir .. "/bin"):await().size)
      assert.is_true(fs.write_file(dir .. "/bin", "", {}):await())
      assert.are.equal("", fs.read_file(dir .. "/bin"):await())
    end)
  end)

  it("appends, and writes atomically without leaving temporary files", function()
    in_tempdir(function(dir)
      local p = dir .. "/log"
      assert(fs.write_file(p, "a\n"):await())
      assert(fs.write_file(p, "b\n", { append = true }):await())
      assert.are.equal("a\nb\n", fs.read_file(p):await())
      assert(fs.write_file(p, "x", { mode = 384 }):await()) -- existing file: mode stays
      -- atomic keeps the old file's permission bits and replaces the inode
      local before = fs.stat(p):await()
      assert(fs.write_file(p, "new contents", { atomic = true }):await())
      local after = fs.stat(p):await()
      assert.are.equal("new contents", fs.read_file(p):await())
      assert.are_not.equal(before.ino, after.ino)
      assert.are.equal(before.mode, after.mode)
      assert(fs.write_file(dir .. "/fresh", "z", { atomic = true, mode = 384 }):await())
      assert.are.equal(384, fs.stat(dir .. "/fresh"):await().mode)
      assert.are.same({ "fresh:file", "log:file" }, names(dir))
      -- a failed atomic write leaves no temporary behind either
      local ok, _, code = fs.write_file(dir .. "/nodir/f", "z", { atomic = true }):await()
      assert.is_nil(ok)
      assert.are.equal("ENOENT", code)
      assert.are.same({ "fresh:file", "log:file" }, names(dir))
    end)
  end)

  it("creates directory trees, lists, renames and removes them", function()
    in_tempdir(function(dir)
      assert.are.equal("ENOENT", select(3, fs.mkdir(dir .. "/a/b/c"):await()))
      assert.is_true(fs.mkdir(dir .. "/a/b/c", { parents = true }):await())
      assert.is_true(fs.mkdir(dir .. "/a/b/c", { parents = true }):await()) -- exists: fine
      assert.are.equal("EEXIST", select(3, fs.mkdir(dir .. "/a"):await()))
      assert(fs.write_file(dir .. "/a/f", "1"):await())
      assert.are.equal("EEXIST", select(3, fs.mkdir(dir .. "/a/f", { parents = true }):await()))
      assert.are.same({ "b:directory", "f:file" }, names(dir .. "/a"))
      assert.are.equal("directory", fs.stat(dir .. "/a/b"):await().type)
      assert.is_true(fs.rename(dir .. "/a/f", dir .. "/a/g"):await())
      local _, msg, code = fs.rename(dir .. "/a/f", dir .. "/a/h"):await()
      assert.are.equal("ENOENT", code)
      assert.matches("/a/f %-> .*/a/h: no such file or directory", msg)
      assert.are.equal("ENOTEMPTY", select(3, fs.rmdir(dir .. "/a"):await()))
      assert.is_true(fs.rmdir(dir .. "/a", { recursive = true }):await())
      assert.are.same({}, names(dir))
    end)
  end)

  it("tells links from their targets with lstat", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/t", "1234"):await())
      os.execute("ln -s " .. dir .. "/t " .. dir .. "/l")
      assert.are.equal("file", fs.stat(dir .. "/l"):await().type)
      assert.are.equal("link", fs.lstat(dir .. "/l"):await().type)
      assert.are.same({ "l:link", "t:file" }, names(dir))
      local st = fs.stat(dir .. "/t"):await()
      assert.is_true(math.abs(st.mtime - os.time()) < 5)
    end)
  end)

  it("raises on misuse, naming the function and argument", function()
    assert.has_error(function() fs.read_file(nil) end,
      "fs.read_file: argument #1 must be a path string (got nil)")
    assert.has_error(function() fs.read_file("") end, "fs.read_file: argument #1 must be a non-empty path")
    assert.has_error(function() fs.write_file("/tmp/x", 42) end,
      "fs.write_file: argument #2 must be a string (got number)")
    assert.has_error(function() fs.write_file("/tmp/x", "", "fast") end,
      "fs.write_file: argument #3 must be an options table (got string)")
    assert.has_error(function() fs.write_file("/tmp/x", "", { atomic = true, append = true }) end,
      "fs.write_file: options 'atomic' and 'append' exclude each other")
    assert.has_error(function() fs.open("/tmp/x", "rw") end)
    assert.has_error(function() fs.rename("/tmp/x") end,
      "fs.rename: argument #2 must be a path string (got no value)")
    assert.has_error(function() fs.stat("a\0b") end, "fs.stat: argument #1 must not contain a NUL byte")
  end)

  it("is lazy: nothing happens before the first poll", function()
    in_tempdir(function(dir)
      local f = fs.write_file(dir .. "/lazy", "x")
      cf.sleep(20):await()
      assert.are.equal("ENOENT", select(3, fs.stat(dir .. "/lazy"):await()))
      f:await()
      assert.are.equal(1, fs.stat(dir .. "/lazy"):await().size)
    end)
  end)
end)

describe("cf.fs files", function()
  it("reads counts, lines (LF and CRLF), and the rest, then nil at end of file", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/t", "one\r\ntwo\n\nfour\nlast"):await())
      local f <close> = assert(fs.open(dir .. "/t"):await())
      assert.are.equal("on", f:read(2):await())
      assert.are.equal("", f:read(0):await())
      assert.are.equal("e", f:read_line():await())
      assert.are.equal("two", f:read("l"):await())
      local lines = {}
      for line in f:lines() do lines[#lines + 1] = line end
      assert.are.same({ "", "four", "last" }, lines)
      assert.is_nil(f:read(1):await())
      assert.is_nil(f:read_line():await())
      assert.are.equal("", f:read_all():await())
      assert.are.equal(0, f:seek("set"):await())
      assert.are.equal("one\r\ntwo\n\nfour\nlast", f:read("a"):await())
    end)
  end)

  it("keeps one position across reads, writes and seeks", function()
    in_tempdir(function(dir)
      local f = assert(fs.open(dir .. "/rw", "w+"):await())
      assert.is_true(f:write("abcdef"):await())
      assert.are.equal(1, f:seek("set", 1):await())
      assert.are.equal("bc", f:read(2):await()) -- reads ahead internally
      assert.is_true(f:write("XY"):await())      -- ...but writes where the reader is
      assert.are.equal(5, f:seek("cur"):await())
      assert.are.equal(2, f:seek("end", -4):await())
      assert.are.equal("cXYf", f:read_all():await())
      assert.are.equal(6, f:stat():await().size)
      assert.is_true(f:sync():await())
      assert.is_true(f:close():await())
      assert.is_true(f:is_closed())
      assert.are.equal("abcXYf", fs.read_file(dir .. "/rw"):await())
      local a = assert(fs.open(dir .. "/rw", "a"):await())
      a:write("!"):await()
      a:close():await()
      assert.are.equal("abcXYf!", fs.read_file(dir .. "/rw"):await())
      assert.are.equal("EEXIST", select(3, fs.open(dir .. "/rw", "wx"):await()))
      assert.are.equal("EBADF", select(3, (fs.open(dir .. "/rw", "r"):await()):write("x"):await()))
    end)
  end)

  it("raises when a closed file is used", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/c", "x"):await())
      local f = assert(fs.open(dir .. "/c"):await())
      f:close():await()
      assert.has_error(function() f:read(1) end, "file:read: the file is closed")
      assert.has_error(function() f:write("x") end, "file:write: the file is closed")
      assert.has_error(function() f:close() end, "file:close: the file is closed")
      assert.has_error(function() f.read(42) end,
        "file:read: argument #1 must be a file (call it with a colon; got number)")
      do local g <close> = assert(fs.open(dir .. "/c"):await()) end
      assert.matches("cfuture.File%(closed%)", tostring(f))
    end)
  end)

  it("runs the operations on one file in the order they were first polled", function()
    in_tempdir(function(dir)
      local f = assert(fs.open(dir .. "/o", "w+"):await())
      local ws = {}
      for i = 1, 50 do ws[i] = f:write(("%02d,"):format(i)) end
      cf.join_all(ws):await()
      f:seek("set"):await()
      local expect = {}
      for i = 1, 50 do expect[i] = ("%02d,"):format(i) end
      assert.are.equal(table.concat(expect), f:read_all():await())
      f:close():await()
    end)
  end)

  it("keeps what a cancelled read read for the next read", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/k", "abcdefgh"):await())
      local f = assert(fs.open(dir .. "/k"):await())
      for _ = 1, 20 do
        local which = cf.select(cf.yield_now(), f:read(3)):await()
        if which == 2 then break end
      end
      f:seek("set"):await()
      assert.are.equal("abc", f:read(3):await())
      local lost = cf.select(cf.yield_now(), f:read(2)):await() -- cancelled or not: nothing is lost
      if lost == 1 then assert.are.equal("de", f:read(2):await()) end
      assert.are.equal("fgh", f:read_all():await())
      f:close():await()
    end)
  end)

  it("leaves no file descriptor open when operations are cancelled", function()
    in_tempdir(function(dir)
      local big = dir .. "/big"
      assert(fs.write_file(big, ("x"):rep(2 ^ 20)):await())
      support.full_gc() -- files earlier code left to the collector
      local before = open_fds()
      for _ = 1, 100 do
        cf.select(cf.yield_now(), fs.open(big)):await()
        cf.select(cf.yield_now(), fs.read_file(big)):await()
        cf.timeout(0, fs.read_file(big)):await()
      end
      -- files dropped unclosed are closed by the collector
      for _ = 1, 20 do local _ = assert(fs.open(big):await()) end
      support.full_gc()
      assert.are.equal(before, fds_become(before)) -- once the orphaned jobs are done
    end)
  end)

  it("is safe when a file is collected while a read is pending", function()
    in_tempdir(function(dir)
      local fifo = dir .. "/fifo"
      assert.is_true(os.execute("mkfifo " .. fifo))
      support.full_gc() -- files earlier code left to the collector
      local before = open_fds()
      do
        local f = assert(fs.open(fifo, "r+"):await())
        cf.spawn(function() return f:read(5):await() end) -- blocks a pool thread until data comes
        cf.sleep(20):await()
      end
      support.full_gc()
      support.full_gc()
      local w = assert(io.open(fifo, "w"))
      w:write("hello")
      w:close()
      local n
      for _ = 1, 200 do -- the task ends once the read is done; then the file is garbage
        support.full_gc()
        n = open_fds()
        if n == before then break end
        cf.sleep(5 * support.slow):await()
      end
      assert.are.equal(before, n)
    end)
  end)

  -- The file's finaliser runs while its orphaned read job still reads the
  -- fd: the fd must stay open for the job, and be closed exactly once, when
  -- the job is done. A second close would close whatever file was opened in
  -- between and got the same number: that file must survive, and the count
  -- must come back to where it was.
  local function collected_while_reading(close_first)
    in_tempdir(function(dir)
      local fifo = dir .. "/fifo3"
      assert.is_true(os.execute("mkfifo " .. fifo))
      assert(fs.write_file(dir .. "/other", "other contents"):await())
      support.full_gc()
      local before = open_fds()
      local weak = setmetatable({}, { __mode = "v" })
      local w -- the fifo's writer, opened while a reader exists (later it could block)
      local fd = (function()
        local f = assert(fs.open(fifo, "r+"):await())
        weak[1] = f
        w = assert(io.open(fifo, "w"))
        local fd = tonumber(tostring(f):match("fd (%d+)"))
        -- the read blocks a pool thread until data comes; the sleep wins and
        -- the read's future is dropped: its job runs on, orphaned
        assert.are.equal(1, (cf.select(cf.sleep(20), f:read(5)):await()))
        if close_first then -- a close queued behind the read, then dropped
          assert.are.equal(1, (cf.select(cf.yield_now(), f:close()):await()))
        end
        return fd
      end)()
      local ok, err = pcall(function()
        support.full_gc()
        assert.is_nil(weak[1]) -- the file was finalised
        assert.are.equal(before + 2, open_fds()) -- ...but its fd is the running job's
        local other = assert(fs.open(dir .. "/other"):await())
        w:write("hello") -- the job reads it and ends
        w:flush()
        assert.are.equal(before + 2, fds_become(before + 2)) -- it closed the fifo's fd
        -- the lowest free number is the fifo's again: a new file takes it
        local again = assert(fs.open(dir .. "/other"):await())
        assert.are.equal(fd, tonumber(tostring(again):match("fd (%d+)")))
        support.full_gc()
        assert.are.equal("other contents", other:read_all():await())
        assert.are.equal("other contents", again:read_all():await())
        assert.is_true(other:close():await())
        assert.is_true(again:close():await())
      end)
      if not ok then w:write("hello") end -- no pool thread stays blocked
      w:close()
      if not ok then error(err, 0) end
      assert.are.equal(before, fds_become(before))
    end)
  end

  it("closes a file collected while its read runs once, when the read is done", function()
    collected_while_reading(false)
  end)

  it("closes a file collected with a close queued behind a running read once", function()
    collected_while_reading(true)
  end)

  it("reads a large file and writes it back byte for byte", function()
    local mib = support.slow > 1 and 8 or 100
    in_tempdir(function(dir)
      local chunk = {}
      local seed = 12345
      for i = 1, 65536 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        local v = math.floor(seed / 256) % 65536
        chunk[i] = string.char(v % 256, math.floor(v / 256))
      end
      local block = table.concat(chunk) -- 128 KiB of noise
      local data = block:rep(mib * 8)
      assert(fs.write_file(dir .. "/in", data):await())
      local got = fs.read_file(dir .. "/in"):await()
      assert.is_true(got == data)
      local out = assert(fs.open(dir .. "/out", "w"):await())
      local src = assert(fs.open(dir .. "/in"):await())
      while true do
        local piece = src:read(1048576):await()
        if not piece then break end
        out:write(piece):await()
      end
      out:close():await()
      src:close():await()
      assert.is_true(fs.read_file(dir .. "/out"):await() == data)
    end)
  end)

  it("describes pending operations in cf.tasks()", function()
    in_tempdir(function(dir)
      local fifo = dir .. "/fifo2"
      assert.is_true(os.execute("mkfifo " .. fifo))
      local f = assert(fs.open(fifo, "r+"):await())
      local h = cf.spawn { name = "reader", function() return f:read(3):await() end }
      cf.sleep(20):await()
      local seen
      for _, t in ipairs(cf.tasks()) do
        if t.name == "reader" then seen = t.awaiting end
      end
      assert.matches("file:read .*fifo2", seen)
      local w = assert(io.open(fifo, "w"))
      w:write("abc")
      w:close()
      assert.are.equal("abc", h:await())
      f:close():await()
    end)
  end)
end)
