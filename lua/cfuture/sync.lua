-- Synchronisation built on the C primitives (channel, semaphore, notify):
-- mutex, rwlock, oneshot, watch, broadcast, barrier, and channel iteration.
-- Every wait is a future, so it composes with select, timeout and scopes.
--
-- Every method checks its self by membership in `kinds` (a weak table only
-- this file writes), so a foreign table, even one given the class's
-- metatable, is refused with a message naming the method; and every entry
-- point raises once the runtime has closed.
return function(cf)
  local internal = cf._sync -- C helpers for this file only
  if not internal then return end -- loaded again: cf has what the first load added
  cf._sync = nil
  local lock_semaphore, check_iter, rt_closed = internal.lock_semaphore, internal.check_iter, internal.closed
  local async, semaphore, notify, channel = cf.async, cf.semaphore, cf.notify, cf.channel
  local setmetatable, getmetatable, rawget, error, type, tostring = setmetatable, getmetatable, rawget,
    error, type, tostring
  local floor = math.floor
  local MAX_COUNT = 2 ^ 53 -- counts and capacities: exact in every Lua number

  local kinds = setmetatable({}, { __mode = "k" }) -- object -> its class

  local function class(name)
    local c = { __name = name }
    c.__index = c
    return c
  end

  local function new(c, obj)
    kinds[obj] = c
    return setmetatable(obj, c)
  end

  -- What v is, for messages: its metatable's __name, or its type.
  local function what_is(v)
    local mt = getmetatable(v)
    local name = type(mt) == "table" and rawget(mt, "__name")
    return type(name) == "string" and name or type(v)
  end

  local function check_open(fname, level)
    if rt_closed() then error(fname .. ": the cfuture runtime is closed", level + 1) end
  end

  -- Raise (in the caller of the method) unless self is an object of class c.
  local function check(self, c, fname)
    if kinds[self] ~= c then
      local got = getmetatable(self) == c and "table with the metatable of a " .. c.__name or what_is(self)
      error(("%s: argument #1 must be a %s (got %s)"):format(fname, c.__name, got), 3)
    end
    check_open(fname, 3)
  end

  -- An integer count from lo to 2^53, as cfl_check_int_range words it.
  local function check_count(v, lo, fname)
    if type(v) ~= "number" or v ~= floor(v) or v < lo or v > MAX_COUNT then
      error(("%s: argument #1 must be an integer from %d to 9007199254740992 (got %s)"):format(
        fname, lo, type(v) == "number" and tostring(v) or type(v)), 3)
    end
  end

  -- Mutex ----------------------------------------------------------------------
  local Mutex = class "cfuture.Mutex"

  --- cf.mutex() -> mutex; m:lock() -> future of a guard (guard:unlock(), or <close>)
  function cf.mutex()
    check_open("mutex", 2)
    return new(Mutex, { sem = lock_semaphore(1) })
  end

  function Mutex:lock()
    check(self, Mutex, "mutex:lock")
    return self.sem:acquire(1)
  end

  function Mutex:try_lock()
    check(self, Mutex, "mutex:try_lock")
    return self.sem:try_acquire(1)
  end

  function Mutex:is_locked()
    check(self, Mutex, "mutex:is_locked")
    return self.sem:available() == 0
  end

  -- RwLock ---------------------------------------------------------------------
  -- Many readers or one writer; waiters are served in arrival order, so a
  -- waiting writer holds back readers that come after it.
  local MAX_READERS = 2 ^ 30
  local RwLock = class "cfuture.RwLock"

  --- cf.rwlock() -> lock; :read() / :write() -> future of a guard
  function cf.rwlock()
    check_open("rwlock", 2)
    return new(RwLock, { sem = lock_semaphore(MAX_READERS) })
  end

  function RwLock:read()
    check(self, RwLock, "rwlock:read")
    return self.sem:acquire(1)
  end

  function RwLock:write()
    check(self, RwLock, "rwlock:write")
    return self.sem:acquire(MAX_READERS)
  end

  -- Oneshot --------------------------------------------------------------------
  local Sender, Receiver = class "cfuture.OneshotSender", class "cfuture.OneshotReceiver"

  --- cf.oneshot() -> sender, receiver. sender:send(v) once; receiver:recv()
  -- is a future of v; it raises if the sender is collected without sending.
  function cf.oneshot()
    check_open("oneshot", 2)
    local ch = channel(1)
    local state = { sent = false, received = false }
    return new(Sender, { ch = ch, state = state }), new(Receiver, { ch = ch, state = state })
  end

  function Sender:send(v)
    check(self, Sender, "oneshot:send")
    if self.state.sent then error("send: a oneshot sends only once", 2) end
    self.state.sent = true
    self.ch:send(v)
    self.ch:close()
  end

  -- A finaliser: a foreign self or a closed runtime makes it do nothing.
  function Sender:__gc()
    if kinds[self] ~= Sender or rt_closed() then return end
    if not self.state.sent then self.ch:close() end
  end

  local recv_oneshot = async(function(rx)
    local v, ok = rx.ch:recv():await()
    if not ok then
      if rx.state.received then error("recv: the oneshot value was already received", 0) end
      error("recv: the oneshot sender was dropped without sending", 0)
    end
    rx.state.received = true
    return v
  end)

  function Receiver:recv()
    check(self, Receiver, "oneshot:recv")
    return recv_oneshot(self)
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
    check_open("watch", 2)
    return new(Watch, { value = initial, version = 0, n = notify(), closed = false })
  end

  function Watch:send(v)
    check(self, Watch, "watch:send")
    if self.closed then error("send: the watch is closed", 2) end
    self.value, self.version = v, self.version + 1
    self.n:notify_all()
  end

  function Watch:get()
    check(self, Watch, "watch:get")
    return self.value
  end

  function Watch:close()
    check(self, Watch, "watch:close")
    self.closed = true
    self.n:notify_all()
  end

  function Watch:subscribe()
    check(self, Watch, "watch:subscribe")
    return new(WatchRx, { w = self, seen = self.version })
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
    check(self, WatchRx, "watch_receiver:changed")
    return changed(self)
  end

  function WatchRx:get()
    check(self, WatchRx, "watch_receiver:get")
    self.seen = self.w.version
    return self.w.value
  end

  -- Broadcast ------------------------------------------------------------------
  local Broadcast, BroadcastRx = class "cfuture.Broadcast", class "cfuture.BroadcastReceiver"

  --- cf.broadcast(capacity) -> broadcast. b:send(v) delivers v to every
  -- subscriber; a subscriber more than `capacity` messages behind skips the
  -- oldest ones and its next recv reports how many it lost.
  function cf.broadcast(capacity)
    check_open("broadcast", 2)
    check_count(capacity, 1, "broadcast")
    return new(Broadcast, { cap = capacity, buf = {}, next = 1, n = notify(), closed = false })
  end

  function Broadcast:send(v)
    check(self, Broadcast, "broadcast:send")
    if self.closed then error("send: the broadcast is closed", 2) end
    local seq = self.next
    self.buf[seq % self.cap] = { v }
    self.next = seq + 1
    self.n:notify_all()
  end

  function Broadcast:close()
    check(self, Broadcast, "broadcast:close")
    self.closed = true
    self.n:notify_all()
  end

  function Broadcast:subscribe()
    check(self, Broadcast, "broadcast:subscribe")
    return new(BroadcastRx, { b = self, pos = self.next })
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
    check(self, BroadcastRx, "broadcast_receiver:recv")
    return brecv(self)
  end

  -- Barrier --------------------------------------------------------------------
  local Barrier = class "cfuture.Barrier"

  --- cf.barrier(n) -> barrier; b:wait() completes for all n tasks once the
  -- n-th arrives; it returns true in exactly one of them (the leader). A
  -- wait cancelled before the barrier opened is withdrawn.
  function cf.barrier(n)
    check_open("barrier", 2)
    check_count(n, 1, "barrier")
    return new(Barrier, { size = n, count = 0, gen = 0, n = notify() })
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
    check(self, Barrier, "barrier:wait")
    return bwait(self)
  end

  -- Channel iteration ----------------------------------------------------------
  local chan_mt = getmetatable(channel())
  --- for i, v in ch:iter() do ... end — inside a task: receive until the
  -- channel is closed and drained (i counts messages, so nil messages work)
  chan_mt.__index.iter = function(ch)
    check_open("iter", 2)
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
