-- cf._zlib: the streaming inflater behind the HTTP client's gzip and deflate
-- Content-Encoding. Compressed inputs are made by Python's zlib module.
local cf = require "cfuture"
local support = require "support"

-- Compress data with Python: mode "gzip", "zlib" or "raw"; level 6.
local function compress(mode, data)
  local prog = [[
import sys, zlib
mode = sys.argv[1]
data = sys.stdin.buffer.read()
wbits = {"gzip": 31, "zlib": 15, "raw": -15}[mode]
c = zlib.compressobj(6, zlib.DEFLATED, wbits)
sys.stdout.buffer.write(c.compress(data) + c.flush())
]]
  return cf.block_on(function()
    local code, out, err = cf.process.run("/usr/bin/python3", { "-c", prog, mode },
      { input = data, env = { LD_PRELOAD = false } }):await()
    assert(code == 0, err)
    return out
  end)
end

-- Some text that compresses, but not to nothing.
local function text(n)
  local parts, i = {}, 0
  local len = 0
  while len < n do
    i = i + 1
    local line = ("line %d: %s\n"):format(i, ("abcdefghij"):rep(i % 7))
    parts[#parts + 1] = line
    len = len + #line
  end
  return table.concat(parts):sub(1, n)
end

-- Feed data in pieces of `step` bytes (or random sizes when step is nil),
-- draining each with push(""), at most max bytes per call; returns the
-- output and the largest piece any call returned.
local function inflate_all(z, data, max, step)
  local out, biggest = {}, 0
  local pos = 1
  while pos <= #data do
    local n = step or math.random(1, 5000)
    local piece = data:sub(pos, pos + n - 1)
    pos = pos + n
    local o, more = z:push(piece, max)
    assert(o, more)
    out[#out + 1] = o
    biggest = math.max(biggest, #o)
    while more do
      o, more = z:push("", max)
      assert(o, more)
      out[#out + 1] = o
      biggest = math.max(biggest, #o)
    end
  end
  return table.concat(out), biggest
end

describe("cf._zlib.inflater", function()
  local plain = text(300000)

  for _, fmt in ipairs { { "gzip", "gzip" }, { "zlib", "zlib" }, { "raw", "raw" },
    { "deflate", "zlib" }, { "deflate", "raw" } } do
    it(("inflates %s data as %q in pieces, at most max bytes a call"):format(fmt[2], fmt[1]), function()
      local packed = compress(fmt[2], plain)
      assert.is_true(#packed < #plain / 4)
      for _, step in ipairs { 1, 7, 4096, false } do
        local z = cf._zlib.inflater(fmt[1])
        local out, biggest = inflate_all(z, packed, 1000, step or nil)
        assert.are.equal(#plain, #out)
        assert.is_true(out == plain)
        assert.is_true(biggest <= 1000 and biggest > 0)
        assert.is_true(z:ended())
        assert.is_true(z:finish())
        assert.are.same({ "", false }, { z:push("") })
        z:close()
      end
    end)
  end

  it("keeps a bomb bounded: 64 MiB of zeros come out max bytes at a time", function()
    local packed = compress("gzip", ("\0"):rep(math.floor(64 * 1024 * 1024 / support.slow)))
    assert.is_true(#packed < 200000)
    local z = cf._zlib.inflater("gzip")
    local o, more = z:push(packed, 65536)
    assert.are.equal(65536, #o)
    assert.is_true(more)
    o, more = z:push("", 10)
    assert.are.same({ ("\0"):rep(10), true }, { o, more })
    assert.is_false(z:ended())
    -- a later push queues its data behind what is held: nothing is lost
    z:close()
    assert.has_error(function() z:push("") end, "inflater:push: the inflater is closed")
  end)

  it("takes several gzip members one after another and ignores zero padding", function()
    local a, b = compress("gzip", "first member\n"), compress("gzip", "second member\n")
    local z = cf._zlib.inflater("gzip")
    assert.are.equal("first member\nsecond member\n", inflate_all(z, a .. b .. "\0\0\0", 64, 3))
    assert.is_true(z:finish())
  end)

  it("refuses bytes after the end of the stream", function()
    local z = cf._zlib.inflater("gzip")
    local packed = compress("gzip", "abc")
    assert.are.same({ nil, "zlib: data after the end of the compressed stream", "EPROTO" },
      { z:push(packed .. "junk") })
    -- the object keeps answering its error
    assert.are.same({ nil, "zlib: data after the end of the compressed stream", "EPROTO" }, { z:push("") })
    assert.are.same({ nil, "zlib: data after the end of the compressed stream", "EPROTO" }, { z:finish() })
    local z2 = cf._zlib.inflater("zlib")
    local out = z2:push(compress("zlib", "abc"))
    assert.are.equal("abc", out)
    assert.are.same({ nil, "zlib: data after the end of the compressed stream", "EPROTO" }, { z2:push("\0") })
  end)

  it("reports truncated and empty streams at finish", function()
    local packed = compress("gzip", plain)
    local z = cf._zlib.inflater("gzip")
    local out = inflate_all(z, packed:sub(1, #packed - 10), 65536, 1000)
    assert.is_true(#out > 0 and #out <= #plain)
    assert.is_false(z:ended())
    assert.are.same({ nil, "zlib: the compressed stream is truncated", "EPROTO" }, { z:finish() })
    assert.are.same({ nil, "zlib: the compressed stream is empty", "EPROTO" },
      { cf._zlib.inflater("deflate"):finish() })
    -- one byte of a deflate body is held until the second tells the format
    local z2 = cf._zlib.inflater("deflate")
    local zl = compress("zlib", "hello")
    assert.are.same({ "", false }, { z2:push(zl:sub(1, 1)) })
    assert.are.equal("hello", (z2:push(zl:sub(2))))
    assert.is_true(z2:finish())
  end)

  it("returns errors for garbage and mutated input, never crashes", function()
    local packed = { gzip = compress("gzip", text(5000)), zlib = compress("zlib", text(5000)),
      raw = compress("raw", text(5000)) }
    local z = cf._zlib.inflater("gzip")
    local r = { z:push("this is not gzip at all") }
    assert.are.same({ nil, "zlib: incorrect header check", "EPROTO" }, r)
    local rounds = math.max(50, math.floor(3000 / support.slow))
    local errors = 0
    for i = 1, rounds do
      local fmt = ({ "gzip", "zlib", "raw" })[i % 3 + 1]
      local src = packed[fmt]
      local bytes = { src:byte(1, -1) }
      for _ = 1, math.random(1, 8) do
        local at = math.random(1, #bytes)
        bytes[at] = math.random(0, 255)
      end
      local data = string.char(table.unpack(bytes))
      if i % 5 == 0 then data = data:sub(1, math.random(0, #data)) end
      local inf = cf._zlib.inflater(i % 2 == 0 and fmt or (fmt == "raw" and "raw" or "deflate"))
      local ok, res, msg, code = pcall(function()
        local o, more = inf:push(data, 512)
        while o and more do o, more = inf:push("", 512) end
        if not o then return o, more, select(3, inf:push("")) end
        return inf:finish()
      end)
      assert.is_true(ok, res)
      if not res then
        errors = errors + 1
        assert.are.equal("EPROTO", code)
        assert.matches("^zlib: ", msg)
      end
    end
    assert.is_true(errors > 0)
  end)

  it("raises on misuse, naming the function and argument", function()
    assert.has_error(function() cf._zlib.inflater("brotli") end,
      'zlib.inflater: argument #1 must be "gzip", "deflate", "zlib" or "raw" (got "brotli")')
    assert.has_error(function() cf._zlib.inflater() end,
      'zlib.inflater: argument #1 must be "gzip", "deflate", "zlib" or "raw" (got no value)')
    local z = cf._zlib.inflater("raw")
    assert.has_error(function() z:push(42) end, "inflater:push: argument #2 must be a string (got number)")
    assert.has_error(function() z:push("", 0) end)
    assert.has_error(function() z.push({}, "") end,
      "inflater:push: argument #1 must be a cfuture.Inflater (call it with a colon; got table)")
    assert.matches("^cfuture.Inflater%(raw%): ", tostring(z))
    assert.is_string(cf._zlib.version)
  end)
end)
