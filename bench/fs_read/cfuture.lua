-- W7 fs_read on cfuture: each round spawns one task per file; a task awaits
-- cf.fs.read_file (open + fstat + read + close in one thread-pool job,
-- default 4 threads) and checks the data. The main task joins them all.
-- N files (argv[1], default 1000) of 4 KiB, ROUNDS rounds (argv[2], default 20).
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")

local N = B.arg_int(1, 1000)
local ROUNDS = B.arg_int(2, 20)
local SIZE = 4096
local dir, paths = B.make_files(N, SIZE)
local expect = B.files_checksum(N, SIZE)
local read_file, spawn = cf.fs.read_file, cf.spawn

local function read_one(path)
  local data = assert(read_file(path):await())
  return data:byte(1) + #data
end

local t0 = B.now()
cf.block_on(function()
  for _ = 1, ROUNDS do
    local hs = {}
    for i = 1, N do hs[i] = spawn(read_one, paths[i]) end
    local sum = 0
    for i = 1, N do sum = sum + hs[i]:await() end
    B.check(sum == expect, "checksum")
  end
end)
local dt = B.now() - t0

B.remove_files(dir, paths)
B.report("fs_read", "cfuture", N, dt, ("rounds=%d ms_per_round=%.3f threadpool=%s"):format(
  ROUNDS, dt / ROUNDS * 1e3, os.getenv("UV_THREADPOOL_SIZE") or "4"))
