-- Synchronisation built on the C primitives (channel, semaphore, notify):
-- mutex, rwlock, oneshot, watch, broadcast, barrier, and channel iteration.
-- Every wait is a future, so it composes with select, timeout and scopes.
return function(cf)
  local internal = cf._sync -- C helpers for this file only
  cf._sync = nil
  local lock_semaphore, check_iter = internal.lock_semaphore, internal.check_iter
  local async, notify, channel = cf.async, cf.notify, cf.channel
  local setmetatable, error, type, tostring = setmetatable, error, type, tostring
  local floor, huge = math.floor, math.huge
  local function is_integer(n) -- LuaJIT has no integer subtype
    return type(n) == "number" and n == floor(n) and n > -huge and n < huge
  end

  local function class(name)
    local c = { __name = name }
    c.__index = c
    return c
  end

  local function check_self(self, mt, fname)
    if getmetatable(self) ~= mt then
      error(("%s: argument #1 must be a %s (call it with a colon)"):format(fname, mt.__name), 3)
    end
  end

  -- Mutex ----------------------------------------------------------------------
  local Mutex = class "cfuture.Mutex"

  --- cf.mutex() -> mutex; m:lock() -> future of a guard (guard:unlock(), or <close>)
  function cf.mutex()
    return setmetatable({ sem = lock_semaphore(1) }, Mutex)
  end

  function Mutex:lock()
    check_self(self, Mutex, "lock")
    return self.sem:acquire(1)
  end

  function Mutex:try_lock()
    check_self(self, Mutex, "try_lock")
    return self.sem:try_acquire(1)
  end

  function Mutex:is_locked()
    return self.sem:available() == 0
  end

  -- RwLock ---------------------------------------------------------------------
  -- Many readers or one writer; waiters are served in arrival order, so a
  -- waiting writer holds back readers that come after it.
  local MAX_READERS = 2 ^ 30
  local RwLock = class "cfuture.RwLock"

  --- cf.rwlock() -> lock; :read() / :write() -> future of a guard
  function cf.rwlock()
    return setmetatable({ sem = lock_semaphore(MAX_READERS) }, RwLock)
  end

  function RwLock:read()
    check_self(self, RwLock, "read")
    return self.sem:acquire(1)
  end

  function RwLock:write()
    check_self(self, RwLock, "write")
    return self.sem:acquire(MAX_READERS)
  end

  -- Oneshot --------------------------------------------------------------------
  local Sender, Receiver = class "cfuture.OneshotSender", class "cfuture.OneshotReceiver"

  --- cf.oneshot() -> sender, receiver. sender:send(v) once; receiver:recv()
  -- is a future of v; it raises if the sender is collected without sending.
  function cf.oneshot()
    local ch = channel(1)
    local sender = setmetatable({ ch = ch, sent = false }, Sender)
    return sender, setmetatable({ ch = ch }, Receiver)
  end

  function Sender:send(v)
    check_self(self, Sender, "send")
    if self.sent then error("send: a oneshot sends only once", 2) end
    self.sent = true
    self.ch:send(v)
    self.ch:close()
  end

  function Sender:__gc()
    if not self.sent then self.ch:close() end
  end

  local recv_oneshot = async(function(ch)
    local v, ok = ch:recv():await()
    if not ok then error("recv: the oneshot sender was dropped without sending", 0) end
    return v
  end)

  function Receiver:recv()
    check_self(self, Receiver, "recv")
    return recv_oneshot(self.ch)
  end

  -- Notify-based wait loop shared by watch, broadcast and barrier --------------
  local function wait_until(n, pred, ...)
    while not pred(...) do n:wait():await() end
  end

  -- Watch ----------------------------------------------------------------------
  local Watch, WatchRx = class "cfuture.Watch", class "cfuture.WatchReceiver"

  --- cf.watch(initial) -> watch. w:send(v) sets the value and wakes every
  -- subscriber; w:get(); w:subscribe() -> receiver with :changed() (future of
  -- the newest value once it changed since this receiver last saw it) and :get().
  function cf.watch(initial)
    return setmetatable({ value = initial, version = 0, n = notify(), closed = false }, Watch)
  end

  function Watch:send(v)
    check_self(self, Watch, "send")
    if self.closed then error("send: the watch is closed", 2) end
    self.value, self.version = v, self.version + 1
    self.n:notify_all()
  end

  function Watch:get() return self.value end

  function Watch:close()
    self.closed = true
    self.n:notify_all()
  end

  function Watch:subscribe()
    check_self(self, Watch, "subscribe")
    return setmetatable({ w = self, seen = self.version }, WatchRx)
  end

  local function changed_or_closed(rx) return rx.w.version ~= rx.seen or rx.w.closed end

  local changed = async(function(rx)
    local w = rx.w
    wait_until(w.n, changed_or_closed, rx)
    if w.version == rx.seen then return nil, false end -- closed, nothing new
    rx.seen = w.version
    return w.value, true
  end)

  --- rx:changed() -> future of (value, true), or (nil, false) once closed
  function WatchRx:changed()
    check_self(self, WatchRx, "changed")
    return changed(self)
  end

  function WatchRx:get()
    self.seen = self.w.version
    return self.w.value
  end

  -- Broadcast ------------------------------------------------------------------
  local Broadcast, BroadcastRx = class "cfuture.Broadcast", class "cfuture.BroadcastReceiver"

  --- cf.broadcast(capacity) -> broadcast. b:send(v) delivers v to every
  -- subscriber; a subscriber more than `capacity` messages behind skips the
  -- oldest ones and its next recv reports how many it lost.
  function cf.broadcast(capacity)
    if not is_integer(capacity) or capacity < 1 then
      error(("broadcast: argument #1 must be a positive integer capacity (got %s)"):format(
        tostring(capacity)), 2)
    end
    return setmetatable({ cap = capacity, buf = {}, next = 1, n = notify(), closed = false }, Broadcast)
  end

  function Broadcast:send(v)
    check_self(self, Broadcast, "send")
    if self.closed then error("send: the broadcast is closed", 2) end
    local seq = self.next
    self.buf[seq % self.cap] = { v }
    self.next = seq + 1
    self.n:notify_all()
  end

  function Broadcast:close()
    self.closed = true
    self.n:notify_all()
  end

  function Broadcast:subscribe()
    check_self(self, Broadcast, "subscribe")
    return setmetatable({ b = self, pos = self.next }, BroadcastRx)
  end

  local function has_news(rx) return rx.pos < rx.b.next or rx.b.closed end

  local brecv = async(function(rx)
    local b = rx.b
    wait_until(b.n, has_news, rx)
    if rx.pos >= b.next then return nil, "closed" end
    local oldest = b.next - b.cap
    if rx.pos < oldest then
      local lost = oldest - rx.pos
      rx.pos = oldest
      return nil, "lagged", lost
    end
    local v = b.buf[rx.pos % b.cap][1]
    rx.pos = rx.pos + 1
    return v, true
  end)

  --- rx:recv() -> future of (value, true) | (nil, "lagged", n) | (nil, "closed")
  function BroadcastRx:recv()
    check_self(self, BroadcastRx, "recv")
    return brecv(self)
  end

  -- Barrier --------------------------------------------------------------------
  local Barrier = class "cfuture.Barrier"

  --- cf.barrier(n) -> barrier; b:wait() completes for all n tasks once the
  -- n-th arrives; it returns true in exactly one of them (the leader). A
  -- wait cancelled before the barrier opened is withdrawn.
  function cf.barrier(n)
    if not is_integer(n) or n < 1 then
      error(("barrier: argument #1 must be a positive integer (got %s)"):format(tostring(n)), 2)
    end
    return setmetatable({ size = n, count = 0, gen = 0, n = notify() }, Barrier)
  end

  local function opened(b, gen) return b.gen ~= gen end

  local bwait = async(function(b)
    local gen = b.gen
    b.count = b.count + 1
    if b.count == b.size then
      b.count, b.gen = 0, gen + 1
      b.n:notify_all()
      return true
    end
    cf.defer(function()
      if b.gen == gen then b.count = b.count - 1 end -- cancelled while waiting
    end)
    wait_until(b.n, opened, b, gen)
    return false
  end)

  function Barrier:wait()
    check_self(self, Barrier, "wait")
    return bwait(self)
  end

  -- Channel iteration ----------------------------------------------------------
  local chan_mt = getmetatable(channel())
  --- for i, v in ch:iter() do ... end — inside a task: receive until the
  -- channel is closed and drained (i counts messages, so nil messages work)
  chan_mt.__index.iter = function(ch)
    check_iter(ch) -- raises "iter: argument #1 must be a channel (got ...)"
    local i = 0
    return function()
      local v, ok = ch:recv():await()
      if not ok then return nil end
      i = i + 1
      return i, v
    end
  end
end
