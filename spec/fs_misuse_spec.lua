-- cf.fs misuse: every entry point refuses bad arguments with an error that
-- names the function and the argument (never a crash, a wrap or a silent
-- truncation), checks everything before it allocates, refuses foreign and
-- closed selves, and raises once the runtime has closed.
local cf = require "cfuture"
local support = require "support"
local fs = cf.fs

local in_tempdir = support.in_tempdir

-- The message of the error fn raises (without a position prefix).
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

-- A value whose conversion to a string raises.
local raising = setmetatable({}, { __tostring = function() error("conversion raised") end })

describe("cf.fs argument checks", function()
  it("refuses NUL bytes in every string argument", function()
    local nul = "fs.%s: argument #%d must not contain a NUL byte"
    for _, name in ipairs { "read_file", "stat", "lstat", "mkdir", "readdir", "unlink", "rmdir",
      "mkdtemp", "open" } do
      assert.has_error(function() fs[name]("/tmp/a\0b") end, nul:format(name, 1))
    end
    assert.has_error(function() fs.write_file("/tmp/a\0b", "") end, nul:format("write_file", 1))
    assert.has_error(function() fs.rename("/tmp/a\0b", "/tmp/c") end, nul:format("rename", 1))
    assert.has_error(function() fs.rename("/tmp/a", "/tmp/c\0d") end, nul:format("rename", 2))
    -- a mode cut at the NUL would have opened the file for reading
    assert.has_error(function() fs.open("/tmp/x", "r\0w") end, nul:format("open", 2))
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/f", "line\nrest"):await())
      local f = assert(fs.open(dir .. "/f"):await())
      assert.has_error(function() f:read("a\0") end, "file:read: argument #2 must not contain a NUL byte")
      assert.has_error(function() f:seek("set\0") end, "file:seek: argument #2 must not contain a NUL byte")
      assert.are.equal("line", f:read("l"):await())
      -- data is bytes: NUL bytes in it are written, not refused
      local g = assert(fs.open(dir .. "/g", "w+"):await())
      assert.is_true(g:write("a\0b"):await())
      assert.are.equal(0, g:seek("set"):await())
      assert.are.equal("a\0b", g:read_all():await())
      f:close():await()
      g:close():await()
    end)
  end)

  it("validates open modes fully", function()
    local bad = 'fs.open: argument #2 must be a mode such as "r", "w", "a", "r+", "w+", "a+" or "wx" (got "%s")'
    for _, mode in ipairs { "", "q", "rw", "r++", "rbb", "rx", "ax", "wxx", "r+q", "b", "+r", "w x" } do
      assert.has_error(function() fs.open("/tmp/x", mode) end, bad:format(mode))
    end
    assert.has_error(function() fs.open("/tmp/x", {}) end, "fs.open: argument #2 must be a string (got table)")
    in_tempdir(function(dir)
      local p = dir .. "/m"
      for _, mode in ipairs { "w", "wb", "w+", "w+b", "wb+", "a", "a+", "ab", "r", "rb", "r+", "r+b", "rb+" } do
        local f = assert(fs.open(p, mode):await())
        assert.is_true(f:close():await())
      end
      assert(fs.unlink(p):await())
      for _, mode in ipairs { "wx", "w+x", "wbx", "wxb" } do
        local f = assert(fs.open(p, mode):await())
        assert.is_true(f:close():await())
        assert.are.equal("EEXIST", select(3, fs.open(p, mode):await()))
        assert(fs.unlink(p):await())
      end
    end)
  end)

  it("checks permission modes: integers from 0 to 0o7777, never wrapped", function()
    local msg = "fs.%s: option mode must be an integer from 0 to 4095 (got %s)"
    for _, name in ipairs { "mkdir", "write_file" } do
      local function call(mode)
        if name == "mkdir" then return fs.mkdir("/tmp/x", { mode = mode }) end
        return fs.write_file("/tmp/x", "", { mode = mode })
      end
      assert.has_error(function() call(-1) end, msg:format(name, "-1"))
      assert.has_error(function() call(4096) end, msg:format(name, "4096"))
      assert.has_error(function() call(2 ^ 32 + 420) end, msg:format(name, tostring(2 ^ 32 + 420)))
      assert.has_error(function() call(420.5) end, msg:format(name, "420.5"))
      assert.has_error(function() call(0 / 0) end, msg:format(name, tostring(0 / 0)))
      assert.has_error(function() call(math.huge) end, msg:format(name, tostring(math.huge)))
      assert.has_error(function() call("420") end, ("fs.%s: option mode must be a number (got string)"):format(name))
    end
    in_tempdir(function(dir)
      assert.is_true(fs.mkdir(dir .. "/d", { mode = 448.0 }):await()) -- an integral float is fine
      assert.are.equal(448, fs.stat(dir .. "/d"):await().mode)
    end)
  end)

  it("checks every argument before allocating anything (no leak when a check raises)", function()
    -- under ASan and valgrind a job allocated before the raising check leaks
    for _ = 1, 50 do
      assert.has_error(function() fs.mkdir("/tmp/x", { mode = raising }) end,
        "fs.mkdir: option mode must be a number (got table)")
      local opts = setmetatable({}, { __index = function(_, k) error("option " .. k .. " raised", 0) end })
      assert.are.equal("option parents raised", err_of(fs.mkdir, "/tmp/x", opts))
      assert.are.equal("option atomic raised", err_of(fs.write_file, "/tmp/x", "", opts))
      assert.are.equal("option recursive raised", err_of(fs.rmdir, "/tmp/x", opts))
      assert.has_error(function() fs.write_file("/tmp/x", "", { mode = raising }) end,
        "fs.write_file: option mode must be a number (got table)")
      assert.has_error(function() fs.rename("/tmp/x", raising) end,
        "fs.rename: argument #2 must be a path string (got table)")
      assert.has_error(function() fs.open("/tmp/x", raising) end,
        "fs.open: argument #2 must be a string (got table)")
    end
  end)

  it("checks read counts and formats, seek whences and offsets", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/f", "abc"):await())
      local f = assert(fs.open(dir .. "/f"):await())
      local count = "file:read: argument #2 must be an integer from 0 to 9007199254740992 (got %s)"
      assert.has_error(function() f:read(-1) end, count:format("-1"))
      assert.has_error(function() f:read(1.5) end, count:format("1.5"))
      assert.has_error(function() f:read(0 / 0) end, count:format(tostring(0 / 0)))
      assert.has_error(function() f:read(math.huge) end, count:format(tostring(math.huge)))
      assert.has_error(function() f:read(2 ^ 63) end, count:format(tostring(2 ^ 63)))
      local fmt = 'file:read: argument #2 must be a byte count, "a" or "l" (got %s)'
      for _, m in ipairs { "x", "all", "line", "", "**a", "5" } do
        assert.has_error(function() f:read(m) end, fmt:format('"' .. m .. '"'))
      end
      assert.has_error(function() f:read({}) end, fmt:format("table"))
      assert.has_error(function() f:read(true) end, fmt:format("boolean"))
      -- a huge count reads what there is (it reserves nothing up front)
      assert.are.equal("abc", f:read(2 ^ 53):await())
      assert.are.equal(0, f:seek("set"):await())
      assert.are.equal("abc", f:read("*a"):await())
      assert.are.equal(0, f:seek("set"):await())
      assert.are.equal("abc", f:read("*l"):await())
      local whence = 'file:seek: argument #2 must be "set", "cur" or "end" (got "%s")'
      assert.has_error(function() f:seek("begin") end, whence:format("begin"))
      assert.has_error(function() f:seek("SET") end, whence:format("SET"))
      assert.has_error(function() f:seek({}) end, "file:seek: argument #2 must be a string (got table)")
      local off = "file:seek: argument #3 must be an integer from -9007199254740992 to 9007199254740992 (got %s)"
      assert.has_error(function() f:seek("set", 0 / 0) end, off:format(tostring(0 / 0)))
      assert.has_error(function() f:seek("set", 2 ^ 63) end, off:format(tostring(2 ^ 63)))
      assert.has_error(function() f:seek("set", -2 ^ 63) end, off:format(tostring(-2 ^ 63)))
      assert.has_error(function() f:seek("set", 0.5) end, off:format("0.5"))
      assert.has_error(function() f:seek("set", "1") end, "file:seek: argument #3 must be a number (got string)")
      assert.are.equal(2, f:seek("set", 2):await())
      assert.are.equal("c", f:read_all():await())
      assert.are.equal("EINVAL", select(3, f:seek("set", -1):await()))
      assert.are.equal(1, f:seek("end", -2):await())
      assert.has_error(function() f:write({}) end, "file:write: argument #2 must be a string (got table)")
      f:close():await()
    end)
  end)

  it("reads lines from a file whose first read is a line (no NULL to memchr)", function()
    in_tempdir(function(dir)
      assert(fs.write_file(dir .. "/l", "one\ntwo\n"):await())
      local f = assert(fs.open(dir .. "/l"):await())
      local lines = {}
      for line in f:lines() do lines[#lines + 1] = line end
      assert.are.same({ "one", "two" }, lines)
      f:close():await()
      assert(fs.write_file(dir .. "/e", ""):await())
      local e = assert(fs.open(dir .. "/e"):await())
      assert.is_nil(e:read_line():await())
      assert.is_nil(e:read(4):await())
      assert.are.equal("", e:read_all():await())
      e:close():await()
    end)
  end)
end)

describe("cf.fs files: foreign, missing and closed selves", function()
  it("names the method when self is not a file", function()
    in_tempdir(function(dir)
      local f = assert(fs.open(dir, "r"):await())
      local future = fs.stat(dir)
      for _, m in ipairs { "read", "read_line", "read_all", "write", "seek", "sync", "stat", "close",
        "is_closed" } do
        for _, self in ipairs { {}, 42, io.stdout, future } do
          assert.has_error(function() fs.File[m](self) end,
            ("file:%s: argument #1 must be a file (call it with a colon; got %s)"):format(m, type(self)))
        end
        assert.has_error(function() fs.File[m]() end,
          ("file:%s: argument #1 must be a file (call it with a colon; got no value)"):format(m))
      end
      local mt = getmetatable(f)
      assert.has_error(function() mt.__tostring({}) end, "file:__tostring: argument #1 must be a file (got table)")
      assert.has_error(function() mt.__tostring(io.stdout) end, "file:__tostring: argument #1 must be a file (got userdata)")
      assert.has_error(function() mt.__close(future) end, "file:__close: argument #1 must be a file (got userdata)")
      assert.has_error(function() mt.__close() end, "file:__close: argument #1 must be a file (got no value)")
      -- __gc never raises: a foreign or missing self is left alone
      mt.__gc({})
      mt.__gc(io.stdout)
      mt.__gc(future)
      mt.__gc()
      assert.are.equal("file", io.type(io.stdout)) -- untouched
      assert.is_false(f:is_closed())
      assert.is_table(f:stat():await())
      -- a direct __gc on the file itself closes it at once, once
      mt.__gc(f)
      mt.__gc(f)
      assert.is_true(f:is_closed())
      assert.are.equal("cfuture.File(closed)", tostring(f))
      assert.has_error(function() f:read(1) end, "file:read: the file is closed")
      mt.__close(f)
      future:await()
    end)
  end)

  it("raises for every method of a closed file", function()
    in_tempdir(function(dir)
      local f = assert(fs.open(dir, "r"):await())
      assert.is_true(f:close():await())
      for _, m in ipairs { "read", "read_line", "read_all", "write", "seek", "sync", "stat", "close" } do
        assert.has_error(function() f[m](f, "x") end, ("file:%s: the file is closed"):format(m))
      end
      assert.is_true(f:is_closed())
    end)
  end)
end)

describe("cf.fs after the runtime closed", function()
  -- A finaliser that runs after the runtime's own (an object made before
  -- require "cfuture" is finalised after it at lua_close) calls in.
  it("raises from every entry point but __gc #lua54", function()
    local out, code, _, err = support.run_lua([[
      local results = {}
      local probe = setmetatable({}, { __gc = function(self)
        local cf, f = self.cf, self.f
        local fs = cf.fs
        local calls = {
          function() return fs.read_file("/tmp/x") end,
          function() return fs.write_file("/tmp/x", "y") end,
          function() return fs.stat("/tmp/x") end,
          function() return fs.lstat("/tmp/x") end,
          function() return fs.mkdir("/tmp/x", { mode = 448 }) end,
          function() return fs.readdir("/tmp") end,
          function() return fs.unlink("/tmp/x") end,
          function() return fs.rename("/tmp/x", "/tmp/y") end,
          function() return fs.rmdir("/tmp/x") end,
          function() return fs.mkdtemp() end,
          function() return fs.open("/tmp/x") end,
          function() return f:read(1) end,
          function() return f:read_line() end,
          function() return f:read_all() end,
          function() return f:write("x") end,
          function() return f:seek("set", 0) end,
          function() return f:sync() end,
          function() return f:stat() end,
          function() return f:close() end,
          function() return f:is_closed() end,
          function() return tostring(f) end,
          function() return getmetatable(f).__close(f) end,
        }
        local n = 0
        for i, call in ipairs(calls) do
          local ok, e = pcall(call)
          if not ok and tostring(e):match("the cfuture runtime is closed") then n = n + 1
          else io.write("call ", i, ": ", tostring(ok), " ", tostring(e), "\n") end
        end
        -- __gc never raises (the file's own finaliser ran before the
        -- runtime's: it was made after it; it closed the fd)
        local gc_ok = pcall(getmetatable(f).__gc, f)
        local still = io.open("/proc/self/fd/" .. self.fd)
        io.write(n, " of ", #calls, " raised; __gc ", tostring(gc_ok), "; fd ",
          still and "open" or "closed", "\n")
      end })
      probe.cf = require "cfuture"
      probe.f = probe.cf.block_on(function() return assert(probe.cf.fs.open("/etc/hostname"):await()) end)
      probe.fd = tonumber(tostring(probe.f):match("fd (%d+)"))
    ]])
    assert.are.equal("22 of 22 raised; __gc true; fd closed\n", out)
    assert.are.equal(0, code, err)
  end)
end)
