---@meta cfuture.websocket

---WebSocket (RFC 6455) clients and servers on cfuture streams:
---`require "cfuture.websocket"`. Failures are `nil, message, code` with
---code "ECLOSED" (closed by a close handshake), "EPROTO" (a protocol error
---or a bad handshake), "EILSEQ" (invalid UTF-8), "EMSGSIZE" (a message over
---the limit), "EOF" (the connection ended without a close frame),
---"ETIMEDOUT", or the stream's own codes ("ECONNRESET", TLS codes, ...).
---@class cfuture.websocket
local websocket = {}

---@class cfuture.websocket.Options
---@field max_message? integer bytes a received message may have, across its fragments (default 16 MiB); over it: close 1009, "EMSGSIZE"
---@field close_timeout? number ms to wait for the peer's close frame (and a client for the server's TCP close) (default 5000)
---@field on_ping? fun(payload: string) called for each ping received (it is answered automatically)
---@field on_pong? fun(payload: string) called for each pong received

---@class cfuture.websocket.ConnectOptions: cfuture.websocket.Options
---@field headers? table<string, string|string[]>|cfuture.http.Headers extra request headers
---@field protocols? string|string[] subprotocols to offer (Sec-WebSocket-Protocol)
---@field origin? string the Origin header
---@field timeout? number ms for the connection and the whole handshake (default 30000)
---@field tls? table cf.tls options for wss:// (cafile, verify, servername, ...)

---@class cfuture.websocket.AcceptOptions: cfuture.websocket.Options
---@field protocols? string|string[] subprotocols this server speaks, by preference: the first the client offers is chosen
---@field headers? table<string, string> extra headers for the 101 response

---@class cfuture.websocket.WrapOptions: cfuture.websocket.Options
---@field side "client"|"server" which end this is (a client masks its frames and refuses masked ones)
---@field leftover? string bytes already read past the handshake
---@field protocol? string the subprotocol agreed, for ws.protocol

---Connect to a ws:// or wss:// URL and do the opening handshake.
---@param url string
---@param opts? cfuture.websocket.ConnectOptions
---@return cfuture.Future future of `ws` or `nil, message, code`
function websocket.connect(url, opts) end

---Accept a WebSocket upgrade inside a cf.http handler (answers 101 through
---`res:upgrade`; a request that is not a valid upgrade is answered 400, 405
---or 426 and gives `nil, message, "EPROTO"`).
---@param req cfuture.http.Request
---@param res cfuture.http.ServerResponse
---@param opts? cfuture.websocket.AcceptOptions
---@return cfuture.Future future of `ws` or `nil, message, code`
function websocket.accept(req, res, opts) end

---A WebSocket over a stream whose handshake was done elsewhere.
---@param stream cfuture.Stream
---@param opts cfuture.websocket.WrapOptions
---@return cfuture.WebSocket
function websocket.wrap(stream, opts) end

---@class cfuture.WebSocket
---@field side "client"|"server"
---@field protocol string|nil the subprotocol agreed
---@field state "open"|"closing"|"closed"
---@field close_code integer|nil the peer's close code once it came (1005: it gave none; 1006: the connection failed)
---@field close_reason string|nil the peer's close reason
local WebSocket = {}

---The next message: a future of `data, "text"|"binary"` (fragments
---reassembled; pings answered, pongs and pings passed to the callbacks on
---the way), or `nil, message, code, close_code, close_reason` once closed
---or failed. One receive at a time.
---@return cfuture.Future
function WebSocket:receive() end

---Iterate messages inside a task: `for data, kind in ws:messages() do`.
---Ends after a close handshake; any other failure is raised.
---@return fun(): string?, ("text"|"binary")?
function WebSocket:messages() end

---Send a message (default "text", which must be valid UTF-8): a future of
---`true` once handed to the kernel, or `nil, message, code`. A list of
---strings is sent as the fragments of one message.
---@param data string|string[]
---@param kind? "text"|"binary"
---@return cfuture.Future
function WebSocket:send(data, kind) end

---Send a ping (at most 125 bytes): a future of `true` once sent.
---@param data? string
---@return cfuture.Future
function WebSocket:ping(data) end

---Send an unsolicited pong (a heartbeat): a future of `true` once sent.
---@param data? string
---@return cfuture.Future
function WebSocket:pong(data) end

---The close handshake: send a close frame, wait for the peer's (up to
---close_timeout), close the connection. A future of `true`, or
---`nil, message, code` ("ETIMEDOUT": the peer did not answer; the
---connection is closed anyway).
---@param code? integer 1000 (default), 1001-1003, 1007-1014, 3000-4999
---@param reason? string at most 123 bytes of UTF-8
---@return cfuture.Future
function WebSocket:close(code, reason) end

---Whether a close was sent or received, or the connection failed.
---@return boolean
function WebSocket:is_closed() end

---The underlying stream (addresses, tls_info, peer_certificate).
---@return cfuture.Stream
function WebSocket:stream() end

return websocket
