-- W5 tcp_echo on cfuture: a task per connection iterates over the chunks
-- it receives and awaits write() of each, until end of stream. Binds 127.0.0.1 (port argv[1],
-- default 0 = any free port), prints the bound port, runs until killed by
-- lib/tcp_client.c.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")
local _ = B

local port = tonumber(arg[1]) or 0
local listener = assert(cf.net.listen("127.0.0.1", port, { backlog = 1024 }))

local function echo(conn)
  for data in conn:chunks() do
    conn:write(data):await()
  end
  conn:close()
end

cf.block_on(function()
  io.stdout:write(select(2, listener:local_address()), "\n")
  io.stdout:flush()
  local spawn = cf.spawn
  while true do
    local conn = listener:accept():await()
    if conn then spawn(echo, conn) end
  end
end)
