---@meta cfuture.socket

---LuaSocket's API on cfuture streams: waits suspend only the running task;
---outside tasks a call runs the loop until it is done (blocks, as LuaSocket).
---@class cfuture.socket
---@field _VERSION string
---@field BLOCKSIZE integer
---@field dns cfuture.socket.dns
local socket = {}

---@class cfuture.socket.dns
---@field toip fun(host: string): (string|nil, table|string)
---@field tohostname fun(address: string): (string|nil, table|string)
---@field gethostname fun(): string|nil, string?
---@field getaddrinfo fun(host: string): ({family: "inet"|"inet6", addr: string}[]|nil), string?
---@field getnameinfo fun(host?: string, serv?: string|integer): (string[]|nil), string?

---@return cfuture.socket.tcp
function socket.tcp() end
---@return cfuture.socket.tcp
function socket.tcp4() end
---@return cfuture.socket.tcp
function socket.tcp6() end
---@return cfuture.socket.udp
function socket.udp() end
---@return cfuture.socket.udp
function socket.udp4() end
---@return cfuture.socket.udp
function socket.udp6() end
---@param host string
---@param port integer|string
---@return cfuture.socket.tcp|nil sock
---@return string? err
function socket.connect(host, port) end
---@param host string
---@param port integer|string
---@param backlog? integer
---@return cfuture.socket.tcp|nil server
---@return string? err
function socket.bind(host, port, backlog) end
---@param recvt? table
---@param sendt? table
---@param timeout? number seconds
---@return table readable, table writable, string? err
function socket.select(recvt, sendt, timeout) end
---@return number seconds since the epoch
function socket.gettime() end
---@param seconds number
function socket.sleep(seconds) end
---@param f function
---@return function
function socket.protect(f) end
---@param finalizer? function
---@return fun(...): ...
function socket.newtry(finalizer) end
---@type fun(...): ...
socket.try = nil
---@param d integer
---@return ...
function socket.skip(d, ...) end
---Make `require "socket"` / `require "socket.core"` return this module.
---@return cfuture.socket
function socket.install() end
---Undo install().
function socket.uninstall() end

---@class cfuture.socket.tcp
local tcp = {}
---@return 1|nil ok, string? err
function tcp:connect(host, port) end
---@return 1|nil ok, string? err
function tcp:bind(host, port) end
---@return 1|nil ok, string? err
function tcp:listen(backlog) end
---@return cfuture.socket.tcp|nil client, string? err
function tcp:accept() end
---@param pattern? "*l"|"*a"|"l"|"a"|integer|string
---@param prefix? string
---@return string|nil data, string? err, string? partial
function tcp:receive(pattern, prefix) end
---@param data string
---@param i? integer
---@param j? integer
---@return integer|nil last, string? err, integer? last_sent
function tcp:send(data, i, j) end
---@param seconds number|nil
---@param mode? "b"|"t"
---@return 1
function tcp:settimeout(seconds, mode) end
---@return number block, number total
function tcp:gettimeout() end
---@param how? "both"|"send"|"receive"
---@return 1
function tcp:shutdown(how) end
---@return 1
function tcp:close() end
---@param name "tcp-nodelay"|"keepalive"|"reuseaddr"|"reuseport"|"linger"|"tcp-keepidle"|string
---@return 1|nil ok, string? err
function tcp:setoption(name, value) end
---@return any value, string? err
function tcp:getoption(name) end
---@return string|nil host, integer|string port_or_err, string? family
function tcp:getpeername() end
---@return string|nil host, integer|string port_or_err, string? family
function tcp:getsockname() end
---@return integer fd -1 when closed
function tcp:getfd() end
---@return boolean
function tcp:dirty() end
---@return integer received, integer sent, number age
function tcp:getstats() end
---@return 1
function tcp:setstats(received, sent, age) end
---@return "inet4"|"inet6"
function tcp:getfamily() end

---@class cfuture.socket.udp
local udp = {}
---@return 1|nil ok, string? err
function udp:setsockname(host, port) end
---@return 1|nil ok, string? err
function udp:setpeername(host, port) end
---@return integer|nil sent, string? err
function udp:send(data) end
---@return integer|nil sent, string? err
function udp:sendto(data, host, port) end
---@param size? integer|string
---@return string|nil data, string? err
function udp:receive(size) end
---@param size? integer|string
---@return string|nil data, string host_or_err, integer? port
function udp:receivefrom(size) end
---@return 1
function udp:settimeout(seconds) end
---@return 1
function udp:close() end
---@return string|nil host, integer|string port_or_err, string? family
function udp:getsockname() end
---@return string|nil host, integer|string port_or_err, string? family
function udp:getpeername() end

return socket
