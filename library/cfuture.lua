---@meta cfuture
-- Type annotations for lua-language-server (LuaLS). Nothing here runs: the
-- module is C (cfuture.core) plus lua/cfuture/init.lua. Point LuaLS's
-- `workspace.library` at this directory (see README, "Editor support").
-- docs/API.md is the reference; spec/annotations_spec.lua checks that every
-- exported function and method is declared here.

---A value that completes later. Lazy: nothing runs until it is first polled
---(awaited, joined, selected, spawned or blocked on).
---@class cfuture.Future
local Future = {}

---Inside a task: suspend until the future completes; return its results or
---raise its error.
---@return any ...
function Future:await() end

---`"fresh"`, `"pending"`, `"ready"`, `"failed"`, `"taken"`, `"cancelled"` or `"moved"`.
---@return "fresh"|"pending"|"ready"|"failed"|"taken"|"cancelled"|"moved"
function Future:state() end

---A running task's results, for any number of awaiters. Dropping the handle
---detaches the task.
---@class cfuture.JoinHandle: cfuture.Future
local JoinHandle = {}

---Cancel the task at its next suspension point (`<close>` variables run).
function JoinHandle:abort() end

---Cancel the task before this returns (its `cf.defer` cleanups and
---`<close>` variables run), even from inside another task or outside any
---drive. `true` if it ended here; `false` if it had finished, or is the
---running task (then it is only marked, as by `abort`).
---@return boolean
function JoinHandle:abort_now() end

---@return boolean
function JoinHandle:is_finished() end

---@return integer
function JoinHandle:id() end

---@return string|nil
function JoinHandle:name() end

---`cf.run()` and `cf.step()` stop waiting for the task (a watcher or a
---heartbeat); it still runs while there is other work. Returns the handle.
---@return cfuture.JoinHandle
function JoinHandle:unref() end

---The scope object passed to a `cf.scope` body.
---@class cfuture.Scope: cfuture.Future
local Scope = {}

---Start a task owned by the scope.
---@param f_or_fn cfuture.Future|function
---@param ... any arguments for a function
---@return cfuture.JoinHandle
function Scope:spawn(f_or_fn, ...) end

---Multi-producer, multi-consumer FIFO channel (`cf.channel`).
---@class cfuture.Channel
local Channel = {}

---Queue `v` (at once if there is room); the future completes once queued.
---@param v any
---@return cfuture.Future
function Channel:send(v) end

---Future of `value, true`, or `nil, false` once closed and drained.
---@return cfuture.Future
function Channel:recv() end

---@param v any
---@return boolean ok
---@return "full"|"closed"|nil why
function Channel:try_send(v) end

---@return boolean ok
---@return any value_or_why
function Channel:try_recv() end

---No more sends; receivers drain what is queued.
function Channel:close() end

---Inside a task: `for i, v in ch:iter() do ... end` until closed and drained.
---@return fun(): integer?, any
function Channel:iter() end

---@return integer
function Channel:len() end

---@return integer|nil capacity nil when unbounded
function Channel:capacity() end

---@return boolean
function Channel:is_closed() end

---@class cfuture.OneshotSender
local OneshotSender = {}
---Send the one value (a second send raises).
---@param v any
function OneshotSender:send(v) end

---@class cfuture.OneshotReceiver
local OneshotReceiver = {}
---@return cfuture.Future
function OneshotReceiver:recv() end

---@class cfuture.Semaphore
local Semaphore = {}
---Future of a permit for `n` (default 1) permits, in arrival order.
---@param n? integer
---@return cfuture.Future
function Semaphore:acquire(n) end
---@param n? integer
---@return cfuture.Permit|nil
function Semaphore:try_acquire(n) end
---@param n integer
function Semaphore:add_permits(n) end
---@return integer
function Semaphore:available() end

---Held permits (also a mutex or rwlock guard). Closes as a `<close>` variable.
---@class cfuture.Permit
local Permit = {}
---Give back `k` permits (default: all held).
---@param k? integer
function Permit:release(k) end
---@return integer
function Permit:count() end
---Release a mutex or rwlock guard.
function Permit:unlock() end

---@class cfuture.Mutex
local Mutex = {}
---Future of a guard (`local g <close> = m:lock():await()`).
---@return cfuture.Future
function Mutex:lock() end
---@return cfuture.Permit|nil
function Mutex:try_lock() end
---@return boolean
function Mutex:is_locked() end

---@class cfuture.RwLock
local RwLock = {}
---@return cfuture.Future
function RwLock:read() end
---@return cfuture.Future
function RwLock:write() end

---@class cfuture.Notify
local Notify = {}
---Future ready at the next notification.
---@return cfuture.Future
function Notify:wait() end
function Notify:notify_one() end
---@return integer woken
function Notify:notify_all() end

---@class cfuture.Watch
local Watch = {}
---@param v any
function Watch:send(v) end
---@return any
function Watch:get() end
function Watch:close() end
---@return cfuture.WatchReceiver
function Watch:subscribe() end

---@class cfuture.WatchReceiver
local WatchReceiver = {}
---Future of `value, true` once the value changed, `nil, false` once closed.
---@return cfuture.Future
function WatchReceiver:changed() end
---@return any
function WatchReceiver:get() end

---@class cfuture.Broadcast
local Broadcast = {}
---@param v any
function Broadcast:send(v) end
function Broadcast:close() end
---@return cfuture.BroadcastReceiver
function Broadcast:subscribe() end

---@class cfuture.BroadcastReceiver
local BroadcastReceiver = {}
---Future of `value, true`, `nil, "lagged", n` or `nil, "closed"`.
---@return cfuture.Future
function BroadcastReceiver:recv() end

---@class cfuture.Barrier
local Barrier = {}
---Future that completes for all `n` waiters; `true` in exactly one (the leader).
---@return cfuture.Future
function Barrier:wait() end

---@class cfuture.Interval
local Interval = {}
---Future of the tick's scheduled time; the first tick completes at once.
---@return cfuture.Future
function Interval:tick() end
---Restart the schedule from now.
function Interval:reset() end

---Passed to a `cf.future` poll function.
---@class cfuture.Waker
local Waker = {}
---Make the future be polled again.
function Waker:wake() end

---A pipe or TCP connection. Failures are `nil, message, code`.
---@class cfuture.Stream
local Stream = {}
---Future of the bytes available now (1..max), `nil` at the end.
---@param max? integer
---@return cfuture.Future
function Stream:read(max) end
---Future of exactly `n` bytes (fewer only at the end).
---@param n integer
---@return cfuture.Future
function Stream:read_exact(n) end
---Future of the next line without its newline, `nil` at the end.
---@param max? integer default 1 MiB
---@return cfuture.Future
function Stream:read_line(max) end
---Future of the bytes up to and including `delim`.
---@param delim string
---@param max? integer default 1 MiB
---@return cfuture.Future
function Stream:read_until(delim, max) end
---Future of everything until the end.
---@return cfuture.Future
function Stream:read_all() end
---Inside a task: iterator of lines (as `read_line(max)`); errors are raised.
---@param max? integer default 1 MiB
---@return fun(): string?
function Stream:lines(max) end
---Inside a task: iterator of the bytes as they arrive (as `read(max)`);
---errors are raised.
---@param max? integer
---@return fun(): string?
function Stream:chunks(max) end
---Bytes that arrived and were not read yet.
---@return integer
function Stream:buffered() end
---Future of `true` once the bytes are handed to the kernel.
---@param data string
---@return cfuture.Future
function Stream:write(data) end
---The peer reads end of stream after the queued writes: `true`, or
---`nil, message, code`.
---@return boolean?
---@return string? message
---@return string? code
function Stream:shutdown() end
---Close at once.
function Stream:close() end
---@return boolean
function Stream:is_closed() end
---The OS descriptor (for socket options or another library's poller); the
---stream still owns and closes it.
---@return integer|nil fd
---@return string? message
---@return string? code
function Stream:fileno() end
---TCP: `host, port` of the peer.
---@return string host
---@return integer port
function Stream:peer_address() end
---TCP: `host, port` of this end.
---@return string host
---@return integer port
function Stream:local_address() end
---@param on boolean
---@return true
function Stream:set_nodelay(on) end
---@param on boolean
---@param delay_s? integer default 60
---@return true
function Stream:set_keepalive(on, delay_s) end
---TCP: close at once with a reset.
function Stream:reset() end
---Future of `true` once the TLS handshake is over (at once for a plain
---stream), or `nil, message, code`.
---@return cfuture.Future
function Stream:handshake() end
---TLS: what was negotiated; `nil` for a plain stream.
---@return cfuture.TlsInfo?
function Stream:tls_info() end
---TLS: the peer's certificate, `nil` if it sent none (or a plain stream).
---@return cfuture.Certificate?
function Stream:peer_certificate() end

---@class cfuture.TlsInfo
---@field role "client"|"server"
---@field handshake_done boolean
---@field protocol? string "TLSv1.3", "TLSv1.2"
---@field cipher? string
---@field alpn? string the protocol ALPN chose
---@field resumed? boolean the session was resumed (no full handshake)
---@field verified? boolean the peer's certificate was verified
---@field servername? string the SNI name (sent by a client, received by a server)

---@class cfuture.Certificate
---@field subject string RFC 2253 form: "CN=localhost,O=..."
---@field issuer string
---@field san string[] "DNS:name", "IP:address", "email:...", "URI:..."
---@field fingerprint string SHA-256 of the DER certificate, lowercase hex
---@field serial string hex
---@field not_before integer Unix time
---@field not_after integer Unix time
---@field pem string

---A TLS configuration shared between connections (`cf.tls.context`).
---@class cfuture.TlsContext
local TlsContext = {}

---@alias cfuture.TlsOptions {cafile: string?, capath: string?, certfile: string?, keyfile: string?, verify: boolean?, client_cert: "require"|"request"|nil, alpn: string[]?, min_version: "1.2"|"1.3"|nil, max_version: "1.2"|"1.3"|nil, ciphers: string?, ciphersuites: string?, session_cache: boolean?, context: cfuture.TlsContext?, servername: string?, handshake_timeout: number|false|nil}

---An open file (`cf.fs.open`). Every operation returns a future.
---@class cfuture.File
local File = {}
---@param n_or_fmt integer|"a"|"l"
---@return cfuture.Future
function File:read(n_or_fmt) end
---@return cfuture.Future
function File:read_all() end
---@return cfuture.Future
function File:read_line() end
---Inside a task: iterator of lines.
---@return fun(): string?
function File:lines() end
---@param data string
---@return cfuture.Future
function File:write(data) end
---@param whence? "set"|"cur"|"end"
---@param offset? integer
---@return cfuture.Future
function File:seek(whence, offset) end
---@return cfuture.Future
function File:sync() end
---@return cfuture.Future
function File:stat() end
---@return cfuture.Future
function File:close() end
---@return boolean
function File:is_closed() end

---A child process (`cf.process.spawn`).
---@class cfuture.Process
---@field pid integer
---@field stdin cfuture.Stream|nil
---@field stdout cfuture.Stream|nil
---@field stderr cfuture.Stream|nil
local Process = {}
---Future of the exit code (and the signal's name when a signal ended it).
---@return cfuture.Future
function Process:wait() end
---@param sig? string|integer default "SIGTERM"
---@return true|nil ok
---@return string? message
---@return string? code
function Process:kill(sig) end
---`nil` while it runs, else what `wait` gives.
---@return integer|nil code
---@return string? signal
function Process:status() end

---A signal listener (`cf.signal.listen`).
---@class cfuture.SignalListener
local SignalListener = {}
---Future of `name, count`.
---@return cfuture.Future
function SignalListener:recv() end
function SignalListener:close() end

---A TCP listener (`cf.net.listen`).
---@class cfuture.Listener
local Listener = {}
---Future of the next connection (a stream).
---@return cfuture.Future
function Listener:accept() end
---Inside a task: iterator of accepted connections; ends when closed.
---@return fun(): cfuture.Stream?
function Listener:incoming() end
---@return string host
---@return integer port
function Listener:local_address() end
---The listening socket's OS descriptor (the listener owns it).
---@return integer fd
function Listener:fileno() end
function Listener:close() end

---A UDP socket (`cf.net.udp`).
---@class cfuture.Udp
local Udp = {}
---@param data string
---@param host string numeric address
---@param port integer
---@return cfuture.Future
function Udp:send_to(data, host, port) end
---Future of `data, host, port`.
---@return cfuture.Future
function Udp:recv_from() end
---@return string host
---@return integer port
function Udp:local_address() end
---The socket's OS descriptor (the UDP socket owns it).
---@return integer fd
function Udp:fileno() end
---@param on boolean
function Udp:set_broadcast(on) end
---@param n integer
function Udp:set_ttl(n) end
---@param on boolean
function Udp:set_multicast_loop(on) end
---@param n integer
function Udp:set_multicast_ttl(n) end
---@param group string
---@param iface? string
function Udp:join_group(group, iface) end
---@param group string
---@param iface? string
function Udp:leave_group(group, iface) end
function Udp:close() end

---A handle to an OS thread (`cf.thread.spawn`): a future of its results.
---@class cfuture.ThreadHandle: cfuture.Future
local ThreadHandle = {}
---Ask the worker to stop.
function ThreadHandle:abort() end
---@return boolean
function ThreadHandle:is_finished() end

---A pool of worker threads (`cf.thread.pool`).
---@class cfuture.ThreadPool
local ThreadPool = {}
---Lazy future of `fn(...)`'s results on a worker.
---@param fn_or_source function|string
---@param ... any copied arguments
---@return cfuture.Future
function ThreadPool:run(fn_or_source, ...) end
function ThreadPool:close() end
---@return integer
function ThreadPool:size() end
---@return integer
function ThreadPool:queued() end

---A channel between threads (`cf.thread.channel`); messages are copied.
---@class cfuture.ThreadChannel
local ThreadChannel = {}
---On a loop thread: future of `true` once queued, or `nil, "closed"`.
---@param v any
---@return cfuture.Future
function ThreadChannel:send(v) end
---On a loop thread: future of the next value, `nil` once closed and drained.
---@return cfuture.Future
function ThreadChannel:recv() end
---On a worker: block until queued.
---@param v any
---@return true|nil ok
---@return string? why
function ThreadChannel:send_blocking(v) end
---On a worker: block for the next value (`nil, "timeout"` when it expires).
---@param timeout_ms? number
---@return any value
---@return string? why
function ThreadChannel:recv_blocking(timeout_ms) end
---@return any value
---@return "empty"|"closed"|nil why
function ThreadChannel:try_recv() end
function ThreadChannel:close() end
---@return boolean
function ThreadChannel:is_closed() end
---@return integer
function ThreadChannel:len() end

---A streaming digest, or HMAC with a key (`cf.crypto.hasher`). Its calls
---are synchronous: feed big data in pieces so the loop runs between them.
---@class cfuture.Hasher
local Hasher = {}
---@param data string
---@return cfuture.Hasher self
function Hasher:update(data) end
---The raw digest (or MAC); the hasher is finished (a later call raises).
---@return string
function Hasher:digest() end

---A task as `cf.tasks()` lists it.
---@class cfuture.TaskInfo
---@field id integer
---@field name string|nil
---@field state "ready"|"running"|"waiting"
---@field polls integer
---@field awaiting string
---@field parent integer|nil
---@field since_wake number

---@class cfuture.fs
local fs = {}

---@class cfuture.process
local process = {}

---@class cfuture.signal
local signal = {}

---@class cfuture.net
local net = {}

---@class cfuture.time
local time = {}

---@class cfuture.tls
local tls = {}

---@class cfuture.test
local test = {}

---@class cfuture.thread
local thread = {}

---@class cfuture.crypto
local crypto = {}

---The coroutine functions, with await through nested coroutines.
---@class cfuture.coroutine
local coroutines = {}

---@class cfuture
---@field _VERSION string
---@field PENDING any returned by a `cf.future` poll function to stay pending
---@field Stream cfuture.Stream
---@field fs cfuture.fs
---@field process cfuture.process
---@field signal cfuture.signal
---@field net cfuture.net
---@field tls cfuture.tls
---@field time cfuture.time
---@field test cfuture.test
---@field thread cfuture.thread
---@field crypto cfuture.crypto
---@field coroutine cfuture.coroutine
local cf = {}

-- Futures and tasks ---------------------------------------------------------

---Wrap `fn`: calling the result returns a lazy future of `fn(...)`.
---@param fn function
---@return fun(...): cfuture.Future
function cf.async(fn) end

---Inside a task: `f:await()`.
---@param f cfuture.Future|function
---@return any ...
function cf.await(f) end

---Inside an async function: run `fn` when its body ends (returns, raises or
---is cancelled), last deferred first. The portable form of `<close>`.
---@param fn fun()
function cf.defer(fn) end

---Outside tasks: run the loop until `f` (or `fn(...)`) completes.
---@param f_or_fn cfuture.Future|function
---@param ... any
---@return any ...
function cf.block_on(f_or_fn, ...) end

---Outside tasks: run until every task has finished.
function cf.run() end

---One non-blocking turn of the runtime; whether tasks are still alive.
---At most `budget` task polls (default 1024); the rest stay ready.
---@param budget? integer
---@return boolean alive
function cf.step(budget) end

---The loop's epoll fd, readable when `cf.step()` has work.
---@return integer
function cf.backend_fd() end

---Milliseconds until `cf.step()` is due: 0 ready now, -1 only I/O can wake.
---@return number
function cf.backend_timeout() end

---Start a task now. `cf.spawn{fn, args..., name = "worker"}` names it.
---@param f_or_fn cfuture.Future|function|table
---@param ... any
---@return cfuture.JoinHandle
function cf.spawn(f_or_fn, ...) end

---The running task's id and name (nothing outside tasks).
---@return integer? id
---@return string? name
function cf.current() end

---@param v any
---@return boolean
function cf.is_future(v) end

---Whether an error value is a cancellation.
---@param err any
---@return boolean
function cf.is_cancelled(err) end

---Set the handler for errors nobody took; returns the previous one.
---@param handler fun(err: any, info: {id: integer, name: string?})|nil
---@return function|nil previous
function cf.on_error(handler) end

-- Combinators ---------------------------------------------------------------

---Future of the first result of each, in argument order.
---@param ... cfuture.Future|function
---@return cfuture.Future
function cf.join(...) end

---Future of `{r1, r2, ..., n = #list}`.
---@param list (cfuture.Future|function)[]
---@return cfuture.Future
function cf.join_all(list) end

---Like join; the first error cancels the rest.
---@param ... cfuture.Future|function
---@return cfuture.Future
function cf.try_join(...) end

---Future of `index, results...` of the first to finish; the rest are cancelled.
---@param ... cfuture.Future|function
---@return cfuture.Future
function cf.select(...) end

---Future of `f`'s results, or `nil, "timeout"` after `ms`.
---@param ms number
---@param f cfuture.Future|function
---@return cfuture.Future
function cf.timeout(ms, f) end

---Run `body(s, ...)` with a scope that waits for its children.
---@param body fun(s: cfuture.Scope, ...): ...
---@param ... any
---@return cfuture.Future
function cf.scope(body, ...) end

---A future written in Lua: `poll(waker)` returns `cf.PENDING` or the results.
---@param poll fun(waker: cfuture.Waker): ...
---@param cancel? fun()
---@return cfuture.Future
function cf.future(poll, cancel) end

-- Time ------------------------------------------------------------------------

---Future ready after `ms` milliseconds (never early).
---@param ms number
---@return cfuture.Future
function cf.sleep(ms) end

---Future ready when `cf.now() >= t`.
---@param t number
---@return cfuture.Future
function cf.sleep_until(t) end

---Monotonic clock in milliseconds.
---@return number
function cf.now() end

---Let every other ready task run once.
---@return cfuture.Future
function cf.yield_now() end

---@param ms number
---@return cfuture.Interval
function cf.interval(ms) end

---Freeze the runtime's clock.
function time.pause() end
---Move a paused clock forward.
---@param ms number
function time.advance(ms) end
---Let a paused clock run on.
function time.resume() end
---@return boolean
function time.is_paused() end
---The wall clock: seconds since the Unix epoch, with microseconds in the
---fraction. It jumps when the system clock is set and is never paused.
---@return number
function time.wall() end

---`block_on` with the clock paused.
---@param f_or_fn cfuture.Future|function
---@param ... any
---@return any ...
function test.run(f_or_fn, ...) end

-- Synchronisation -------------------------------------------------------------

---@param capacity? integer 1..2^27; unbounded (up to 2^27 messages) when absent
---@return cfuture.Channel
function cf.channel(capacity) end

---@return cfuture.OneshotSender
---@return cfuture.OneshotReceiver
function cf.oneshot() end

---@param permits integer
---@return cfuture.Semaphore
function cf.semaphore(permits) end

---@return cfuture.Mutex
function cf.mutex() end

---@return cfuture.RwLock
function cf.rwlock() end

---@return cfuture.Notify
function cf.notify() end

---@param initial any
---@return cfuture.Watch
function cf.watch(initial) end

---@param capacity integer
---@return cfuture.Broadcast
function cf.broadcast(capacity) end

---@param n integer
---@return cfuture.Barrier
function cf.barrier(n) end

-- Introspection and tracing -----------------------------------------------------

---@return cfuture.TaskInfo[]
function cf.tasks() end

---The live tasks as a tree, with tracebacks.
---@return string
function cf.dump() end

---Write `cf.dump()` to stderr when `sig` arrives; `nil` removes the watcher.
---@param sig string|integer|nil
function cf.dump_on_signal(sig) end

---Receive task events after each scheduler run; `nil` removes the handler.
---@param fn fun(event: "spawn"|"poll"|"poll_end"|"wake"|"complete"|"cancel", id: integer, name: string?, time_ms: number, poll_ms: number?)|nil
function cf.on_event(fn) end

---Report polls that ran `ms` or longer; `nil` turns it off.
---@param ms number|nil
---@param fn? fun(report: string)
function cf.warn_slow_polls(ms, fn) end

-- Work on the thread pool -------------------------------------------------------

---Future of `fn(...)` run in a fresh Lua state on libuv's thread pool.
---@param fn function a function without upvalues
---@param ... any copied arguments
---@return cfuture.Future
function cf.blocking(fn, ...) end

-- Files ---------------------------------------------------------------------------

---@param path string
---@return cfuture.Future
function fs.read_file(path) end
---@param path string
---@param data string
---@param opts? {append: boolean?, atomic: boolean?, mode: integer?}
---@return cfuture.Future
function fs.write_file(path, data, opts) end
---@param path string
---@return cfuture.Future
function fs.stat(path) end
---@param path string
---@return cfuture.Future
function fs.lstat(path) end
---@param path string
---@param opts? {parents: boolean?, mode: integer?}
---@return cfuture.Future
function fs.mkdir(path, opts) end
---Future of an iterator of `name, type`.
---@param path string
---@return cfuture.Future
function fs.readdir(path) end
---@param path string
---@return cfuture.Future
function fs.unlink(path) end
---@param path string
---@param opts? {recursive: boolean?}
---@return cfuture.Future
function fs.rmdir(path, opts) end
---@param from string
---@param to string
---@return cfuture.Future
function fs.rename(from, to) end
---@param prefix? string default "/tmp/cfuture-"
---@return cfuture.Future
function fs.mkdtemp(prefix) end
---Future of a `cfuture.File`.
---@param path string
---@param mode? string as in io.open
---@return cfuture.Future
function fs.open(path, mode) end

---@type cfuture.File
fs.File = nil

-- Processes and signals --------------------------------------------------------------

---@class cfuture.ProcessSpec
---@field [integer] string program, then arguments
---@field env? table<string, string|false>
---@field clear_env? boolean
---@field cwd? string
---@field group? boolean
---@field stdin? "inherit"|"pipe"|"null"
---@field stdout? "inherit"|"pipe"|"null"
---@field stderr? "inherit"|"pipe"|"null"

---@param spec cfuture.ProcessSpec
---@return cfuture.Process|nil
---@return string? message
---@return string? code
function process.spawn(spec) end

---Future of `code, stdout, stderr [, signal]`.
---@param cmd string
---@param args? string[]
---@param opts? {input: string?, env: table?, clear_env: boolean?, cwd: string?}
---@return cfuture.Future
function process.run(cmd, args, opts) end

---@return integer
function process.pid() end

---@type cfuture.Process
process.Process = nil

---Future of the signal's name when it is next delivered.
---@param sig string|integer
---@return cfuture.Future
function signal.wait(sig) end
---@param sig string|integer
---@return cfuture.SignalListener
function signal.listen(sig) end
---@param name string|integer
---@return integer
function signal.number(name) end
---@param number integer
---@return string?
function signal.name(number) end

-- Networking ----------------------------------------------------------------------------

---Future of a connected stream, or `nil, message, code`.
---@param host string
---@param port integer
---@return cfuture.Future
function net.connect(host, port) end

---@param host string|nil
---@param port integer 0 picks a free port
---@param opts? {backlog: integer?, ipv6only: boolean?}
---@return cfuture.Listener|nil
---@return string? message
---@return string? code
function net.listen(host, port, opts) end

---@param host? string
---@param port? integer
---@return cfuture.Udp|nil
---@return string? message
---@return string? code
function net.udp(host, port) end

-- TLS -------------------------------------------------------------------------------------

---Future of a TLS stream connected to `host:port` and verified (the system's
---CAs, or `cafile`/`capath`; the name checked is `servername` or `host`), or
---`nil, message, code`.
---@param host string
---@param port integer
---@param opts? cfuture.TlsOptions
---@return cfuture.Future
function tls.connect(host, port, opts) end

---The client side of STARTTLS: future of `stream`, now TLS.
---@param stream cfuture.Stream
---@param opts? cfuture.TlsOptions `servername` is required unless `verify = false`
---@return cfuture.Future
function tls.wrap(stream, opts) end

---The server side: future of `stream`, now TLS, once the handshake is over.
---@param stream cfuture.Stream
---@param opts cfuture.TlsOptions `certfile` (and `keyfile`), or `context`
---@return cfuture.Future
function tls.accept(stream, opts) end

---A listener whose connections are TLS streams (each one's handshake runs
---on its first read or write, or `stream:handshake()`).
---@param host string|nil
---@param port integer
---@param opts cfuture.TlsOptions|{backlog: integer?, ipv6only: boolean?}
---@return cfuture.Listener|nil
---@return string? message
---@return string? code
function tls.listen(host, port, opts) end

---A context to share between connections (CA store loaded once, client
---sessions resumed), or `nil, message, code` if a file cannot be loaded.
---@param opts? cfuture.TlsOptions|{server: boolean?}
---@return cfuture.TlsContext|nil
---@return string? message
---@return string? code
function tls.context(opts) end

---Future of a list of address strings.
---@param name string
---@param family? "any"|"inet"|"inet6"
---@return cfuture.Future
function net.lookup(name, family) end

---Future of the host name.
---@param address string
---@return cfuture.Future
function net.reverse(address) end

---@type cfuture.Listener
net.Listener = nil
---@type cfuture.Udp
net.Udp = nil

-- Threads -------------------------------------------------------------------------------

---Run `fn(...)` (or a chunk) on a new OS thread in its own Lua state.
---@param fn_or_source function|string
---@param ... any copied arguments
---@return cfuture.ThreadHandle
function thread.spawn(fn_or_source, ...) end

---@param n integer 1..1024
---@param opts? {queue: integer?}
---@return cfuture.ThreadPool
function thread.pool(n, opts) end

---@param capacity? integer 1..2^31-1
---@return cfuture.ThreadChannel
function thread.channel(capacity) end

---On a worker: block for `ms` (interrupted by a stop request).
---@param ms number
function thread.sleep(ms) end
---@return boolean
function thread.cancelled() end
---Raise `cancelled` once a stop was requested.
function thread.check() end
---@return boolean
function thread.is_worker() end
---The worker's traceback of an error value (a table) raised on a worker
---(spawn, pool:run, cf.blocking) and copied here, or nil.
---@param err any
---@return string|nil
function thread.traceback(err) end

-- Coroutines ------------------------------------------------------------------------------

---As `coroutine.resume`; inside a task, awaits in `co` (and in coroutines it
---resumes the same way) suspend the task, and `co` goes on when they are done.
---@param co thread
---@return boolean ok
---@return any ...
function coroutines.resume(co, ...) end

---As `coroutine.wrap`, with `resume`'s awaits; an error is raised at the caller.
---@param fn function
---@return function
function coroutines.wrap(fn) end

---As `coroutine.create`.
---@param fn function
---@return thread
function coroutines.create(fn) end

---As `coroutine.status`; `"normal"` while an await inside `co` waits.
---@param co thread
---@return "running"|"suspended"|"normal"|"dead"
function coroutines.status(co) end

---As `coroutine.close` (Lua 5.4 only); raises while an await inside `co` waits.
---@param co thread
---@return boolean ok
---@return any err
function coroutines.close(co) end

---As `coroutine.yield`: to the coroutine's resumer.
---@return any ...
function coroutines.yield(...) end

---As `coroutine.running`.
---@return thread co
---@return boolean ismain
function coroutines.running() end

---As `coroutine.isyieldable`.
---@return boolean
function coroutines.isyieldable() end

---Put these functions into the global `coroutine` table (libraries loaded
---afterwards capture them); returns that table. Undone at `lua_close`.
---@return table
function coroutines.install() end

---Give the global `coroutine` table its own functions back.
function coroutines.uninstall() end

-- Crypto ----------------------------------------------------------------------------------

---Future of the raw digest of `data` (on the thread pool above 64 KiB).
---@param alg string "md5"|"sha1"|"sha224"|"sha256"|"sha384"|"sha512", any case
---@param data string
---@return cfuture.Future
function crypto.digest(alg, data) end

---Future of the raw HMAC of `data` under `key`.
---@param alg string a digest name, as for `digest`
---@param key string
---@param data string
---@return cfuture.Future
function crypto.hmac(alg, key, data) end

---Future of a raw `length`-byte key: PBKDF2 with HMAC-`alg`.
---@param alg string a digest name, as for `digest`
---@param password string
---@param salt string
---@param iterations integer 1..2^31-1
---@param length integer 1..1048576
---@return cfuture.Future
function crypto.pbkdf2(alg, password, salt, iterations, length) end

---A streaming digest; with a key, a streaming HMAC.
---@param alg string a digest name, as for `digest`
---@param key? string
---@return cfuture.Hasher
function crypto.hasher(alg, key) end

---`n` bytes from OpenSSL's cryptographically secure generator.
---@param n integer 0..1048576
---@return string
function crypto.random(n) end

---Whether `a` and `b` are equal, in a time that depends only on their length.
---@param a string
---@param b string
---@return boolean
function crypto.equal(a, b) end

---Lowercase hex.
---@param data string
---@return string
function crypto.hex(data) end

---The bytes of hex text (either case), or `nil, message`.
---@param text string
---@return string|nil
---@return string? message
function crypto.unhex(text) end

---Base64 with padding; `url`: base64url without padding.
---@param data string
---@param url? boolean
---@return string
function crypto.base64(data, url) end

---The bytes of base64 (padding optional; `url`: the base64url alphabet), or `nil, message`.
---@param text string
---@param url? boolean
---@return string|nil
---@return string? message
function crypto.unbase64(text, url) end

return cf
