-- bench/tls_echo on cfuture: a TLS echo server. `lua5.4 cfuture.lua CERT KEY
-- [PORT]` (or TLS_CERT / TLS_KEY in the environment). Binds 127.0.0.1 (PORT,
-- default 0 = any free port), prints the bound port, and serves until killed:
-- a task per connection iterates over the chunks it receives and awaits
-- write() of each (bench/tcp_echo/cfuture.lua over cf.tls), until the end of
-- the stream. The handshake runs on the first read. Exits 3 if this cfuture
-- has no cf.tls.listen.
local B, cf = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/../prelude.lua")
local _ = B

local certfile = arg[1] or os.getenv("TLS_CERT")
local keyfile = arg[2] or os.getenv("TLS_KEY")
local port = tonumber(arg[3]) or 0
if not (certfile and keyfile) then
  io.stderr:write("usage: lua5.4 cfuture.lua CERT KEY [PORT]\n")
  os.exit(2)
end
if not (cf.tls and cf.tls.listen) then
  io.stderr:write("cfuture.lua: this cfuture has no cf.tls.listen\n")
  os.exit(3)
end

local listener = assert(cf.tls.listen("127.0.0.1", port, { certfile = certfile, keyfile = keyfile }))

local function echo(conn)
  for data in conn:chunks() do
    conn:write(data):await()
  end
end

local function serve(conn)
  pcall(echo, conn) -- a failed handshake or a reset ends this connection only
  conn:close()
end

cf.block_on(function()
  io.stdout:write(select(2, listener:local_address()), "\n")
  io.stdout:flush()
  local spawn = cf.spawn
  for conn in listener:incoming() do
    spawn(serve, conn)
  end
end)
