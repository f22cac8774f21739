-- Task utilities built on cf.task_set, cf.select and cf.future: bounded
-- concurrency over a list, cancellation tokens, timeouts that say which way
-- they ended, and shielding work from the cancellation of its awaiter.
--
-- Every method checks its self by membership in `kinds` (a weak table only
-- this file writes), so a foreign table is refused with a message naming
-- the method.
return function(cf)
  if cf.within then return end -- loaded again: cf has it already
  local async, select_, sleep, sleep_until, is_future, task_set, now =
    cf.async, cf.select, cf.sleep, cf.sleep_until, cf.is_future, cf.task_set, cf.now
  local PENDING = cf.PENDING
  local type, error, tostring, setmetatable, pairs, pcall = type, error, tostring, setmetatable, pairs, pcall
  local MAX_MS = 1e15

  local function check_open(fname)
    if not pcall(now) then error(fname .. ": the cfuture runtime is closed", 3) end
  end

  local function check_ms(v, fname, n, what)
    if type(v) ~= "number" or v ~= v or v < 0 or v > MAX_MS then
      error(("%s: argument #%d must be %s from 0 to 1e15 (got %s)"):format(fname, n, what,
        type(v) == "number" and tostring(v) or type(v)), 3)
    end
  end

  local function check_work(f, fname, n)
    if type(f) ~= "function" and not is_future(f) then
      error(("%s: argument #%d must be a future or a function (got %s)"):format(fname, n, type(f)), 3)
    end
  end

  -- Timeouts that say which way they ended -----------------------------------

  local function status_of(i, ...)
    if i == 1 then return true, ... end
    return false
  end
  local within_deadline = async(function(timer, f) return status_of(select_(f, timer):await()) end)

  --- cf.within(ms, f) -> future of `true, f's results...`, or `false` once
  -- ms have passed (f is then cancelled). Unlike cf.timeout, a future that
  -- returns nil, "timeout" cannot pass for the timeout.
  function cf.within(ms, f)
    check_open("within")
    check_ms(ms, "within", 1, "a number of milliseconds")
    check_work(f, "within", 2)
    return within_deadline(sleep(ms), f)
  end

  --- cf.within_at(deadline, f): cf.within until cf.now() reaches deadline.
  function cf.within_at(deadline, f)
    check_open("within_at")
    check_ms(deadline, "within_at", 1, "a time (cf.now() milliseconds)")
    check_work(f, "within_at", 2)
    return within_deadline(sleep_until(deadline), f)
  end

  local function timeout_of(i, ...)
    if i == 1 then return ... end
    return nil, "timeout"
  end
  local timeout_deadline = async(function(timer, f) return timeout_of(select_(f, timer):await()) end)

  --- cf.timeout_at(deadline, f): cf.timeout until cf.now() reaches deadline
  -- (f's results, or nil, "timeout").
  function cf.timeout_at(deadline, f)
    check_open("timeout_at")
    check_ms(deadline, "timeout_at", 1, "a time (cf.now() milliseconds)")
    check_work(f, "timeout_at", 2)
    return timeout_deadline(sleep_until(deadline), f)
  end

  -- Shielding -----------------------------------------------------------------

  --- cf.shield(f_or_fn, ...) -> JoinHandle: f runs as a task of its own, so
  -- cancelling whoever awaits it (a timeout, a select, an abort) does not
  -- cancel f; awaiting the handle gives f's results. For a critical section
  -- (a write that must finish, a commit): `cf.shield(save, record):await()`.
  function cf.shield(f, ...)
    check_open("shield")
    check_work(f, "shield", 1)
    return cf.spawn(f, ...)
  end

  -- Bounded concurrency ---------------------------------------------------------

  local function check_map_args(fname, limit, items, fn)
    if type(limit) ~= "number" or limit < 1 or limit % 1 ~= 0 then
      error(("%s: argument #1 must be a positive integer limit (got %s)"):format(fname,
        type(limit) == "number" and tostring(limit) or type(limit)), 3)
    end
    if type(items) ~= "table" then
      error(("%s: argument #2 must be a list (got %s)"):format(fname, type(items)), 3)
    end
    if type(fn) ~= "function" then
      error(("%s: argument #3 must be a function (got %s)"):format(fname, type(fn)), 3)
    end
  end

  -- Start fn(items[i], i) for the next items while fewer than limit run.
  local function fill(set, index_of, state, limit, items, fn)
    while set:running() < limit and state.next <= state.n do
      local i = state.next
      state.next = i + 1
      index_of[set:spawn(fn, items[i], i)] = i
    end
  end

  --- cf.map_concurrent(limit, items, fn) -> future of {fn(items[1], 1), ...,
  -- n = #items}: at most `limit` calls run at once, results in the items'
  -- order (the first result of each). The first error cancels the calls
  -- still running and is raised.
  function cf.map_concurrent(limit, items, fn)
    check_open("map_concurrent")
    check_map_args("map_concurrent", limit, items, fn)
    return async(function()
      local set = task_set()
      cf.defer(function() set:close() end) -- the calls still running end with it
      local index_of, state = {}, { next = 1, n = #items }
      local out = { n = state.n }
      fill(set, index_of, state, limit, items, fn)
      while true do
        local h, ok, v = set:join_next():await()
        if not h then return out end
        if not ok then error(v, 0) end
        out[index_of[h]] = v
        index_of[h] = nil
        fill(set, index_of, state, limit, items, fn)
      end
    end)()
  end

  --- cf.as_completed(limit, items, fn) -> iterator for a task, giving
  -- `i, ok, result` (or `i, false, error`) for each item as its call
  -- finishes, at most `limit` running at once:
  --   for i, ok, page in cf.as_completed(4, urls, fetch) do ... end
  -- Leaving the loop early (break, error) cancels the calls still running
  -- (Lua 5.4's loop closes the set; on LuaJIT the set is closed when it is
  -- collected, or at the end).
  function cf.as_completed(limit, items, fn)
    check_open("as_completed")
    check_map_args("as_completed", limit, items, fn)
    local set = task_set()
    local index_of, state = {}, { next = 1, n = #items }
    fill(set, index_of, state, limit, items, fn)
    local function step()
      local h, ok, v = set:join_next():await()
      if not h then
        set:close()
        return nil
      end
      local i = index_of[h]
      index_of[h] = nil
      fill(set, index_of, state, limit, items, fn)
      return i, ok, v
    end
    return step, nil, nil, set
  end

  -- Cancellation tokens -----------------------------------------------------------

  local kinds = setmetatable({}, { __mode = "k" })
  local Token = { __name = "cfuture.CancelToken" }
  Token.__index = Token

  local function check_token(self, fname)
    if not pcall(now) then error(fname .. ": the cfuture runtime is closed", 3) end
    if kinds[self] ~= Token then
      error(("%s: argument #1 must be a cancel token (call it with a colon; got %s)"):format(fname,
        type(self)), 3)
    end
  end

  local function new_token(parent)
    local t = setmetatable({ cancelled_ = false, reason = nil, wakers = {},
      children = setmetatable({}, { __mode = "k" }) }, Token)
    kinds[t] = Token
    if parent then
      if parent.cancelled_ then
        t.cancelled_, t.reason = true, parent.reason
      else
        parent.children[t] = true
      end
    end
    return t
  end

  --- cf.cancel_token() -> a token: cancel it from anywhere (a task, a
  -- callback, code outside tasks); tasks await token:cancelled().
  function cf.cancel_token()
    check_open("cancel_token")
    return new_token(nil)
  end

  --- token:child() -> a token cancelled with this one (not the other way).
  function Token:child()
    check_token(self, "token:child")
    return new_token(self)
  end

  local function cancel(t, reason)
    if t.cancelled_ then return false end
    t.cancelled_, t.reason = true, reason
    local ws = t.wakers
    t.wakers = {}
    for w in pairs(ws) do w:wake() end
    local kids = t.children
    t.children = setmetatable({}, { __mode = "k" })
    for c in pairs(kids) do cancel(c, reason) end
    return true
  end

  --- token:cancel([reason]) -> true if this call cancelled it (false if it
  -- was cancelled already); its children are cancelled too.
  function Token:cancel(reason)
    check_token(self, "token:cancel")
    if reason == nil then reason = "cancelled" end
    return cancel(self, reason)
  end

  --- token:is_cancelled() -> cancelled, reason
  function Token:is_cancelled()
    check_token(self, "token:is_cancelled")
    return self.cancelled_, self.reason
  end

  --- token:cancelled() -> future of the reason, ready once the token is
  -- cancelled (at once if it is already).
  function Token:cancelled()
    check_token(self, "token:cancelled")
    local token, mine = self, nil
    return cf.future(function(w)
      if token.cancelled_ then
        token.wakers[w] = nil
        return token.reason
      end
      mine = w
      token.wakers[w] = true
      return PENDING
    end, function()
      if mine then token.wakers[mine] = nil end
    end)
  end

  local function run_result(i, ...)
    if i == 2 then return nil, "cancelled", ... end
    return ...
  end
  local run_until = async(function(token, f) return run_result(select_(f, token:cancelled()):await()) end)

  --- token:run(f) -> future of f's results, or nil,
  -- "cancelled", reason if the token is cancelled first (f is then
  -- cancelled).
  function Token:run(f)
    check_token(self, "token:run")
    check_work(f, "token:run", 2)
    return run_until(self, f)
  end

  function Token:__tostring()
    return ("cfuture.CancelToken(%s)"):format(self.cancelled_ and ("cancelled: " .. tostring(self.reason))
      or "live")
  end

  cf.CancelToken = Token
end
