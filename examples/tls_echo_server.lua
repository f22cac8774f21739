-- tls_echo_server: the echo server over TLS, a task per connection.
--
--   lua5.4 examples/tls_echo_server.lua [port] [certfile] [keyfile] [host]
--     (default 7001 on 127.0.0.1; cert.pem and key.pem in the current directory)
--   then: openssl s_client -connect 127.0.0.1:7001 -CAfile ca.pem -quiet
--   or:   socat - OPENSSL:127.0.0.1:7001,cafile=ca.pem
--
-- A throwaway certificate for trying it out:
--   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
--     -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
--     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
--   (then the certificate is its own CA: -CAfile cert.pem)
--
-- Prints "listening on HOST:PORT" once ready; Ctrl-C stops it cleanly.
local cf = require "cfuture"

local port = tonumber(arg and arg[1]) or 7001
local certfile = arg and arg[2] or "cert.pem"
local keyfile = arg and arg[3] or "key.pem"
local host = arg and arg[4] or "127.0.0.1"

local function serve(conn)
  local peer, pport = conn:peer_address()
  -- the handshake runs on the first read; awaiting it first tells a client
  -- that failed it (a bad certificate, not TLS at all) from one that left
  local ok, msg = conn:handshake():await()
  if not ok then
    io.stderr:write(("%s:%d: %s\n"):format(peer, pport, msg))
    return conn:close()
  end
  local info = conn:tls_info()
  io.stderr:write(("connection from %s:%d, %s %s\n"):format(peer, pport, info.protocol, info.cipher))
  local done, err = pcall(function()
    for data in conn:chunks() do
      assert(conn:write(data):await())
    end
  end)
  if not done then io.stderr:write(err, "\n") end
  conn:shutdown() -- close_notify: the client sees a clean end
  conn:close()
end

cf.block_on(function()
  local listener = assert(cf.tls.listen(host, port, { certfile = certfile, keyfile = keyfile }))
  local h, p = listener:local_address()
  print(("listening on %s:%d"):format(h, p))
  io.stdout:flush()
  local server = cf.spawn(function()
    for conn in listener:incoming() do cf.spawn(serve, conn) end
  end)
  cf.signal.wait("SIGINT"):await()
  listener:close()
  server:abort()
  print("bye")
end)
