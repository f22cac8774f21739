---@meta cfuture.http

---HTTP/1.1 for cfuture, parsed in C (libhttp-parser): the server, header
---lists and body reading. `local http = require "cfuture.http"`. The
---client's functions (`http.request`, `get`, `post`, `pool`) join this
---table; they are declared with the client.
---@class cfuture.http
local http = {}

---Options of `http.listen` and `http.server` (bytes and milliseconds).
---@class cfuture.http.ServerOptions
---@field max_header_size? integer the whole request head, start line and headers (default 8192, at most 81920): beyond it 431
---@field max_headers? integer header fields in a head (default 100, at most 10000): beyond it 431
---@field max_body? integer request body bytes (default 1048576): beyond it 413
---@field header_timeout? number ms from a request's first byte to its head's end (default 10000): then 408 and close
---@field idle_timeout? number ms a kept-alive connection may wait for its next request, and between the reads of a body (default 5000)
---@field max_connections? integer connections served at once (default 1000); one more gets 503 and is closed
---@field backlog? integer the listen backlog (default 511)
---@field ipv6only? boolean
---@field tls? table cf.tls options (`certfile`, `keyfile`, `context`, ...): serve https

---A handler: runs in the connection's task, one request at a time. It may
---return `status, body [, headers]` instead of using `res`.
---@alias cfuture.http.Handler fun(req: cfuture.http.Request, res: cfuture.http.ServerResponse): (integer?, string?, table?)

---Bind host:port at once and serve in a task; `nil, message, code` if the
---listener cannot be made.
---@param host string
---@param port integer
---@param handler cfuture.http.Handler
---@param opts? cfuture.http.ServerOptions
---@return cfuture.http.Server|nil server
---@return string? message
---@return string? code
function http.listen(host, port, handler, opts) end

---A server without a listener: feed it accepted streams with `server:serve`.
---@param handler cfuture.http.Handler
---@param opts? cfuture.http.ServerOptions
---@return cfuture.http.Server
function http.server(handler, opts) end

---A header list: `{["Content-Type"] = "text/plain", ["Set-Cookie"] = {"a=1", "b=2"}}`
---or a flat list `{"Name", "value", ...}`.
---@param init? table
---@return cfuture.http.Headers
function http.headers(init) end

---Decode a query string: `"a=1&b=x%20y&a=2"` -> `{a = {"1", "2"}, b = "x y"}`.
---@param query string
---@return table<string, string|string[]>
function http.decode_query(query) end

---Write `data` as one chunk of a chunked body (nothing for `""`).
---@param stream cfuture.Stream
---@param data string
---@return cfuture.Future
function http.write_chunk(stream, data) end

---Write the last chunk and the trailers.
---@param stream cfuture.Stream
---@param trailers? table|cfuture.http.Headers
---@return cfuture.Future
function http.finish_chunks(stream, trailers) end

---Reason phrases by status code.
---@type table<integer, string>
http.reasons = {}

---@class cfuture.http.Server
local Server = {}

---@return string host
---@return integer port
function Server:address() end

---@return integer open connections
function Server:connections() end

---Serve one accepted stream (plain or TLS) in a new task.
---@param stream cfuture.Stream
---@return cfuture.JoinHandle
function Server:serve(stream) end

---Stop accepting, close idle connections, let requests in progress finish
---for up to `grace_ms` (default 5000), then close the rest.
---@param grace_ms? number
---@return cfuture.Future future of true
function Server:close(grace_ms) end

---@return cfuture.Future future of true once the server is closed
function Server:wait() end

---A request, as the handler gets it.
---@class cfuture.http.Request
---@field method string "GET", "POST", ...
---@field target string the request target as sent: "/a/b?x=1"
---@field path string the target before "?"
---@field raw_query string? the target after "?"
---@field query table<string, string|string[]> the decoded query (made at first use)
---@field version string "1.1" or "1.0"
---@field headers cfuture.http.Headers
---@field keep_alive boolean whether the client lets the connection go on
---@field content_length integer? from the head (nil for chunked or no body)
local Request = {}

---@param max? integer
---@return cfuture.Future future of bytes (at most max), nil at the end, or nil, message, code
function Request:read(max) end

---@param max_bytes? integer
---@return cfuture.Future future of the whole body ("" if none), or nil, message, code
function Request:read_all(max_bytes) end

---Iterator of the body's lines, inside a task (raises on error).
---@param max? integer
---@return fun(): string?
function Request:lines(max) end

---Iterator of the body's pieces, inside a task (raises on error).
---@param max? integer
---@return fun(): string?
function Request:chunks(max) end

---@return string host
---@return integer port
function Request:peer_address() end

---The response side. `write`, `finish` and `upgrade` wait (in the task)
---until the bytes are handed to the kernel.
---@class cfuture.http.ServerResponse
---@field headers cfuture.http.Headers the response's headers (made at first use)
local Response = {}

---@param status integer 100..999
---@param reason? string
---@return cfuture.http.ServerResponse
function Response:set_status(status, reason) end

---@return integer
function Response:status_code() end

---@param name string
---@param value string|number|string[]
---@return cfuture.http.ServerResponse
function Response:set_header(name, value) end

---Send body bytes (the head first, chunked unless a Content-Length was set).
---@param data string
---@return true|nil ok
---@return string? message
---@return string? code
function Response:write(data) end

---The last body bytes (or the whole body, with Content-Length, when
---nothing was written); trailers for a chunked body.
---@param data? string
---@param trailers? table|cfuture.http.Headers
---@return true|nil ok
---@return string? message
---@return string? code
function Response:finish(data, trailers) end

---@return boolean
function Response:is_head_sent() end

---Answer 101 Switching Protocols and take the connection over.
---@param headers? table|cfuture.http.Headers
---@return cfuture.Stream|nil stream
---@return string leftover bytes already read past the request head (or the message)
---@return string? code
function Response:upgrade(headers) end

---An ordered, case-insensitive list of header fields.
---@class cfuture.http.Headers
local Headers = {}

---@param name string
---@return string?
function Headers:get(name) end

---@param name string
---@return string[]
function Headers:get_all(name) end

---@param name string
---@return boolean
function Headers:has(name) end

---Whether a comma-separated value of `name` holds `token` (any case).
---@param name string
---@param token string
---@return boolean
function Headers:has_token(name, token) end

---@param name string
---@param value string|number|string[]
---@return cfuture.http.Headers
function Headers:set(name, value) end

---@param name string
---@param value string|number
---@return cfuture.http.Headers
function Headers:add(name, value) end

---@param name string
---@return cfuture.http.Headers
function Headers:remove(name) end

---@return fun(): string?, string?
function Headers:each() end

---@return integer
function Headers:count() end

---@return string[] a flat copy: name, value, name, value, ...
function Headers:list() end

---@return table<string, string|string[]>
function Headers:to_table() end

return http
