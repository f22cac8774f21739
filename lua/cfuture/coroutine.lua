-- cf.coroutine: the coroutine functions, with await through nested
-- coroutines.
--
-- Inside a task, code that runs in a coroutine resumed by cf.coroutine.resume
-- (or called through cf.coroutine.wrap) can await: the await yields its
-- future to this resumer (the C side knows the coroutine from the
-- `forwarding` set), which awaits it in the coroutine it runs in itself (the
-- task, or an outer nested coroutine: the same step again) and resumes the
-- inner coroutine with the results. The inner coroutine's own yields go to
-- its resumer as always. While its await is in flight the inner coroutine
-- counts as "normal" (it is active, waiting on its resumer): it cannot be
-- resumed or closed from elsewhere.
--
-- install() puts the replacements into the global coroutine table, so a
-- library loaded afterwards (one that captures coroutine.wrap at load time)
-- gets them.
return function(cf)
  local co = coroutine
  local create, resume, status, yield, running, isyieldable, close =
    co.create, co.resume, co.status, co.yield, co.running, co.isyieldable, co.close
  local pcall, select, type, error, setmetatable = pcall, select, type, error, setmetatable
  local internal = cf._coroutine
  if not internal then return end -- loaded again: cf has what the first load added
  local forwarding, MARK, OK, ERR = internal.forwarding, internal.mark, internal.ok, internal.err
  local await, now = cf.await, cf.now
  local lua54 = _VERSION == "Lua 5.4" and rawget(_G, "jit") == nil

  -- coroutines whose await the resumer is awaiting now
  local waiting = setmetatable({}, { __mode = "k" })

  local function relay(ok, ...)
    if ok then return OK, ... end
    return ERR, ...
  end

  -- Await f on behalf of c. On 5.4 a to-be-closed guard closes c (running
  -- its <close> variables) if the task is cancelled while the await waits:
  -- cancelling closes the task's coroutine, which closes the guard.
  local await_for
  if lua54 then
    await_for = assert(load([[
      local pcall, await, relay, close, waiting, setmetatable = ...
      local Guard = { __close = function(g)
        if g.armed then
          waiting[g.co] = nil
          -- an error in the coroutine's own <close> variables is reported
          -- as one in the task's would be
          local ok, err = close(g.co)
          if not ok then error(err, 0) end
        end
      end }
      local function disarm(g, ...)
        g.armed = false
        return ...
      end
      return function(c, f)
        local g <close> = setmetatable({ co = c, armed = true }, Guard)
        return disarm(g, relay(pcall(await, f)))
      end
    ]], "=cfuture.coroutine"))(pcall, await, relay, close, waiting, setmetatable)
  else
    await_for = function(c, f) return relay(pcall(await, f)) end
  end

  local step
  local function resume_with(c, ...)
    waiting[c] = nil
    forwarding[c] = true
    return step(c, resume(c, ...))
  end
  -- what a resume of c gave: an await to forward, or the answer
  step = function(c, ok, ...)
    if ok and ... == MARK and status(c) == "suspended" then
      waiting[c] = true
      forwarding[c] = nil
      return resume_with(c, await_for(c, (select(2, ...))))
    end
    forwarding[c] = nil
    return ok, ...
  end

  -- misuse once the runtime has closed (a finaliser at lua_close) says so,
  -- as everywhere in cfuture; checked on the error paths only
  local function check_open(fname)
    if not pcall(now) then error("coroutine." .. fname .. ": the cfuture runtime is closed", 3) end
  end

  local M = {}

  --- cf.coroutine.resume(co, ...) -> as coroutine.resume; co's awaits
  -- suspend the task it runs in.
  function M.resume(c, ...)
    if type(c) ~= "thread" then
      check_open("resume")
      error(("coroutine.resume: argument #1 must be a coroutine (got %s)"):format(type(c)), 2)
    end
    if waiting[c] then return false, "cannot resume non-suspended coroutine" end
    return resume_with(c, ...)
  end

  --- cf.coroutine.status(co) -> as coroutine.status; "normal" while an
  -- await inside co waits
  function M.status(c)
    if type(c) ~= "thread" then
      check_open("status")
      error(("coroutine.status: argument #1 must be a coroutine (got %s)"):format(type(c)), 2)
    end
    if waiting[c] then return "normal" end
    return status(c)
  end

  local function unwrap(c, ok, ...)
    if ok then return ... end
    local e = ...
    if lua54 then
      -- as coroutine.wrap does: close the dead coroutine (its <close>
      -- variables), and a string error gets the caller's position
      if status(c) == "dead" then close(c) end
      if type(e) == "string" then error(e, 2) end
    end
    error(e, 0)
  end

  --- cf.coroutine.wrap(fn) -> as coroutine.wrap; awaits inside suspend the
  -- task
  function M.wrap(fn)
    if type(fn) ~= "function" then
      check_open("wrap")
      error(("coroutine.wrap: argument #1 must be a function (got %s)"):format(type(fn)), 2)
    end
    local c = create(fn)
    return function(...)
      if waiting[c] then return unwrap(c, false, "cannot resume non-suspended coroutine") end
      forwarding[c] = true
      return unwrap(c, step(c, resume(c, ...)))
    end
  end

  if close then
    --- cf.coroutine.close(co) -> as coroutine.close; refused while an
    -- await inside co waits
    function M.close(c)
      if type(c) ~= "thread" then
        check_open("close")
        error(("coroutine.close: argument #1 must be a coroutine (got %s)"):format(type(c)), 2)
      end
      if waiting[c] then error("cannot close a normal coroutine", 2) end
      return close(c)
    end
  end

  function M.create(fn)
    if type(fn) ~= "function" then
      check_open("create")
      error(("coroutine.create: argument #1 must be a function (got %s)"):format(type(fn)), 2)
    end
    return create(fn)
  end
  function M.yield(...)
    if not isyieldable() then check_open("yield") end
    return yield(...)
  end
  function M.running()
    check_open("running")
    return running()
  end
  function M.isyieldable()
    check_open("isyieldable")
    return isyieldable()
  end

  local originals, sentinel
  local names = { "create", "resume", "status", "wrap", "yield", "running", "isyieldable",
    "close" }

  local function restore()
    if not originals then return end
    sentinel = nil
    for _, k in ipairs(names) do co[k] = originals[k] end
    originals = nil
  end

  --- cf.coroutine.install() -> the global coroutine table now has these
  -- functions (libraries loaded later capture them); returns it
  function M.install()
    check_open("install")
    if not originals then
      originals = {}
      for _, k in ipairs(names) do originals[k] = co[k] end
      -- made after the runtime, the sentinel is finalised before it at
      -- lua_close and gives the global table its own functions back, so
      -- code that runs after cfuture has gone still works
      if rawget(_G, "newproxy") then -- LuaJIT finalises userdata only
        sentinel = newproxy(true)
        getmetatable(sentinel).__gc = restore
      else
        sentinel = setmetatable({}, { __gc = restore })
      end
    end
    for _, k in ipairs(names) do
      if M[k] then co[k] = M[k] end
    end
    return co
  end

  --- cf.coroutine.uninstall(): the global coroutine table's own functions
  -- again
  function M.uninstall()
    check_open("uninstall")
    restore()
  end

  cf.coroutine = M
  cf._coroutine = nil
end
