-- Large sequential reads: a MiB-sized file (argv[1] MiB, default 256) read
-- whole with cf.fs.read_file, and in 1 MiB pieces with file:read, against
-- `cat file > /dev/null` (the floor) and Lua's io.open():read("a") in the
-- same run. Page cache warm; each time is the best of 3.
--   lua5.4 bench/fs_large/run.lua [MiB]
local B, cf, best = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local MIB = B.arg_int(1, 256)
local path = os.tmpname()
do
  local f = assert(io.open(path, "wb"))
  local block = ("0123456789abcdef"):rep(65536) -- 1 MiB
  for _ = 1, MIB do f:write(block) end
  f:close()
end

local function time(fn) return best(3, fn) end

os.execute("cat " .. path .. " > /dev/null") -- warm the page cache
local t_cat = time(function() os.execute("cat " .. path .. " > /dev/null") end)
local t_io = time(function()
  local f = assert(io.open(path, "rb"))
  B.check(#f:read("a") == MIB << 20, "size")
  f:close()
end)
local t_whole = time(function()
  local data = cf.block_on(cf.fs.read_file(path))
  B.check(#data == MIB << 20, "size")
end)
local t_pieces = time(function()
  cf.block_on(function()
    local f <close> = assert(cf.fs.open(path):await())
    local n = 0
    while true do
      local piece = f:read(1 << 20):await()
      if not piece then break end
      n = n + #piece
    end
    B.check(n == MIB << 20, "size")
  end)
end)
os.remove(path)
print(("fs_large %d MiB: cat %.3f s | io read('a') %.3f s (%.2fx) | cf.fs.read_file %.3f s (%.2fx)"
  .. " | file:read 1 MiB pieces %.3f s (%.2fx)"):format(MIB, t_cat, t_io, t_io / t_cat, t_whole,
  t_whole / t_cat, t_pieces, t_pieces / t_cat))
