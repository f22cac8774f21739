-- http_get: fetch a URL over HTTP/1.1, or HTTPS, and print the body; the
-- status line and headers go to stderr. Handles Content-Length, chunked
-- and read-until-close bodies.
--
--   lua5.4 examples/http_get.lua http://127.0.0.1:8080/ [timeout_ms]
--   lua5.4 examples/http_get.lua https://example.org/
--
-- HTTPS verifies the server against the system's CA store; SSL_CERT_FILE
-- (OpenSSL's variable) names another CA file: SSL_CERT_FILE=ca.pem ...
local cf = require "cfuture"

local url = arg and arg[1]
local scheme, host, port, path = (url or ""):match("^(https?)://([^/:]+):?(%d*)(/?.*)$")
if not host then
  io.stderr:write("usage: http_get.lua http[s]://host[:port]/path [timeout_ms]\n")
  os.exit(2)
end
port = tonumber(port) or (scheme == "https" and 443 or 80)
path = path ~= "" and path or "/"
local timeout = tonumber(arg[2]) or 10000

local get = cf.async(function()
  local conn, err, code
  if scheme == "https" then
    conn, err, code = cf.tls.connect(host, port, { alpn = { "http/1.1" } }):await()
  else
    conn, err, code = cf.net.connect(host, port):await()
  end
  if not conn then return nil, ("%s (%s)"):format(err, code) end
  local _ <close> = conn
  conn:write(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cfuture-http-get\r\n" ..
    "Connection: close\r\n\r\n"):format(path, host)):await()
  local status = conn:read_line():await()
  if not status then return nil, "connection closed before a response" end
  io.stderr:write(status, "\n")
  local headers = {}
  while true do
    local line = assert(conn:read_line():await(), "truncated headers")
    if line == "" then break end
    io.stderr:write(line, "\n")
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  if headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(conn:read_line():await()):match("^%x+"), 16)
      if size == 0 then break end
      parts[#parts + 1] = conn:read_exact(size):await()
      conn:read_line():await() -- the CRLF after each chunk
    end
    return table.concat(parts), tonumber(status:match(" (%d%d%d)"))
  elseif headers["content-length"] then
    return conn:read_exact(tonumber(headers["content-length"])):await(),
      tonumber(status:match(" (%d%d%d)"))
  end
  return conn:read_all():await(), tonumber(status:match(" (%d%d%d)"))
end)

local body, status = cf.block_on(cf.timeout(timeout, get()))
if not body then
  io.stderr:write("http_get: ", tostring(status), "\n")
  os.exit(1)
end
io.write(body)
os.exit(status and status < 400 and 0 or 1)
