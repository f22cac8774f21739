-- http_get: fetch a URL with cfuture's HTTP client and print the body; the
-- status line and headers go to stderr. Redirects are followed, gzip is
-- decoded, and the body is streamed to stdout as it arrives.
--
--   lua5.4 examples/http_get.lua http://127.0.0.1:8080/ [timeout_ms]
--   lua5.4 examples/http_get.lua https://example.org/
--
-- HTTPS verifies the server against the system's CA store; SSL_CERT_FILE
-- (OpenSSL's variable) names another CA file: SSL_CERT_FILE=ca.pem ...
local cf = require "cfuture"
local http = require "cfuture.http"

local url = arg and arg[1]
if not url or not url:match("^https?://") then
  io.stderr:write("usage: http_get.lua http[s]://host[:port]/path [timeout_ms]\n")
  os.exit(2)
end
local timeout = tonumber(arg[2]) or 10000

local get = cf.async(function()
  -- timeout covers the whole exchange, the body included
  local res, err, code = http.get(url, { timeout = timeout }):await()
  if not res then return nil, ("%s (%s)"):format(err, code) end
  io.stderr:write(("HTTP/%s %d %s\n"):format(res.version, res.status, res.reason))
  for name, value in res.headers:each() do io.stderr:write(name, ": ", value, "\n") end
  while true do
    local data, msg, code2 = res:read():await()
    if not data then
      if msg then return nil, ("%s (%s)"):format(msg, code2) end
      break
    end
    io.write(data)
  end
  return res.status
end)

local status, err = cf.block_on(get())
if not status then
  io.stderr:write("http_get: ", tostring(err), "\n")
  os.exit(1)
end
os.exit(status < 400 and 0 or 1)
