-- cgrep: search a directory tree for a Lua pattern, reading files
-- concurrently with a limit on how many are open at once.
--
--   lua5.4 examples/cgrep.lua PATTERN [DIR] [--jobs N] [--plain]
--
-- Prints path:line:text for every matching line; exits 0 if something
-- matched, 1 if nothing did, 2 on error (like grep).
local cf = require "cfuture"
local fs = cf.fs

local pattern, root, jobs, plain = nil, ".", 16, false
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--jobs" then
      i = i + 1
      jobs = tonumber(arg[i]) or error("--jobs needs a number")
    elseif a == "--plain" then
      plain = true
    elseif not pattern then
      pattern = a
    else
      root = a
    end
    i = i + 1
  end
end
if not pattern then
  io.stderr:write("usage: cgrep.lua PATTERN [DIR] [--jobs N] [--plain]\n")
  os.exit(2)
end

local limit = cf.semaphore(jobs) -- files open at the same time
local matched, failed = 0, 0

local function search(path)
  local _ <close> = limit:acquire():await()
  local data, err = fs.read_file(path):await()
  if not data then
    io.stderr:write("cgrep: ", err, "\n")
    failed = failed + 1
    return
  end
  if data:find("\0", 1, true) then return end -- skip binary files
  local n = 0
  for line in data:gmatch("([^\n]*)\n?") do
    n = n + 1
    if line:find(pattern, 1, plain) then
      matched = matched + 1
      io.write(path, ":", n, ":", line, "\n")
    end
  end
end

-- Walk the tree, starting a search task per file inside the scope; the
-- scope returns once every search is done.
local function walk(s, dir)
  local entries, err = fs.readdir(dir):await()
  if not entries then
    io.stderr:write("cgrep: ", err, "\n")
    failed = failed + 1
    return
  end
  for name, kind in entries do
    local path = dir .. "/" .. name
    if kind == "directory" then
      walk(s, path)
    elseif kind == "file" then
      s:spawn(search, path)
    end
  end
end

cf.block_on(cf.scope(function(s) walk(s, root) end))
os.exit(failed > 0 and 2 or matched > 0 and 0 or 1)
