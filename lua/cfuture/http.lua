-- cfuture.http: HTTP/1.1 for cfuture, parsed in C (cf._http, on
-- libhttp-parser). The server is in cfuture/http/server.lua, headers and
-- body reading (shared with the client) in headers.lua and body.lua; the
-- client's functions join this table when cfuture/http/client.lua is there.
local headers = require "cfuture.http.headers"
local body = require "cfuture.http.body"
local server = require "cfuture.http.server"

local http = {
  listen = server.listen,
  server = server.server,
  headers = function(init) return headers.new(init, "http.headers") end,
  reasons = server.reasons,
  decode_query = server.decode_query,
  write_chunk = body.write_chunk,
  finish_chunks = body.finish_chunks,
}

local ok, client = pcall(require, "cfuture.http.client")
if ok and type(client) == "table" then
  for k, v in pairs(client) do
    if http[k] == nil then http[k] = v end
  end
elseif not ok and not tostring(client):find("module 'cfuture.http.client' not found", 1, true) then
  error(client, 0) -- a client that exists but fails to load must not pass silently
end

return http
