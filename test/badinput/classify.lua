-- classify.lua: what a call's outcome means.
--
-- Acceptable: ok-error (a Lua error whose message names the function or
-- method, a cancellation, or the I/O triple nil, message, code) and
-- ok-result (any success the rules below allow). Failures: CRASH and HANG
-- (decided by the parent from the child's exit), UNCLEAR (an error that does
-- not name the function, e.g. "attempt to index a nil value") and
-- ACCEPTED-INVALID (a success where the argument kind must be refused):
-- * a foreign self (an object of another class, io.stdout, a plain value)
--   passed to a method: never a success;
-- * a string with a NUL byte for a string parameter that C cuts at the NUL
--   (paths, hosts, modes, names; not data, delimiters or any-values);
-- * NaN for a number; a non-integral or out-of-range float (0.5, 1e308,
--   +-inf) for an integer; a negative value for a count, size, port or delay;
-- * a port outside 0..65535; a count a getter reads back different
--   (wrapped); a huge delay that completes at once (wrapped).
local M = {}

local ACCEPTABLE = { ["ok-error"] = true, ["ok-result"] = true }
M.acceptable = function(class) return ACCEPTABLE[class] == true end

-- string parameters whose bytes are data (a NUL there is fine)
local BINARY = { data = true, delim = true, v = true, input = true, fn_or_source = true,
  initial = true, err = true, key = true, password = true, salt = true, a = true, b = true }
-- parameters that must not be negative
local NONNEG = { ms = true, n = true, max = true, capacity = true, permits = true, k = true,
  budget = true, delay_s = true, timeout_ms = true, port = true, number = true, size = true,
  queue = true, backlog = true }
-- delays whose huge values must not complete at once
local DELAY = { ms = true, t = true }

local function has(t, word) return t ~= nil and (t:match("^" .. word) or t:match("|" .. word)) end
local function is_string(p) return p and has(p.type, "string") and not has(p.type, "any") end
local function is_number(p)
  return p and (has(p.type, "number") or has(p.type, "integer")) and not has(p.type, "any")
end
local function is_integer(p) return p and has(p.type, "integer") and not has(p.type, "number") end

-- getters that read back a constructor's count: path -> method
M.echo = { ["cf.semaphore"] = "available", ["cf.channel"] = "capacity", ["cf.thread.pool"] = "size" }

local function names(err, words)
  if type(err) ~= "string" then return false end
  for _, w in ipairs(words) do
    if w ~= "" and err:find(w, 1, true) then return true end
  end
  return false
end

-- case: the case record (see matrix.lua); o: { raised, err, res (packed),
-- pending, value }; cf: the module (for is_cancelled). Returns class, detail.
function M.classify(case, o, cf)
  local words = { case.name, case.mm and case.mm:sub(3) or "", case.class or "" }
  if o.raised then
    local err = o.err
    if case.rtclosed then
      if type(err) == "string" and err:find("the cfuture runtime is closed", 1, true) then
        return "ok-error", err
      end
      return "UNCLEAR", "after the runtime closed: " .. tostring(err)
    end
    if type(err) ~= "string" and cf and pcall(cf.is_cancelled, err) and cf.is_cancelled(err) then
      return "ok-error", "cancelled"
    end
    if names(err, words) then return "ok-error", err end
    return "UNCLEAR", tostring(err)
  end
  local res = o.res or { n = 0 }
  local refused = res.n >= 1 and (res[1] == nil or res[1] == false) and not o.pending
  local what = o.pending and "pending" or ("returned " .. tostring(res[1]))
  if res.n >= 2 and res[1] == nil and type(res[2]) == "string" then
    if res.n >= 3 and type(res[3]) == "string" then return "ok-error", res[2] end
    if not names(res[2], words) and res[2] ~= "closed" and res[2] ~= "timeout" then
      -- nil, message without a code: fine when it says who failed
      return "ok-result", res[2]
    end
    return "ok-error", res[2]
  end
  if case.rtclosed then
    -- a finaliser or __close that does nothing once closed is what it should do
    if case.mm == "__gc" or case.mm == "__close" then return "ok-result", "metamethod, " .. what end
    -- tostring still describes an object, and __index still finds a field
    -- or the method (which raises itself), touching no freed memory (ASan
    -- checks that)
    if case.mm == "__tostring" and type(res[1]) == "string" then
      return "ok-result", "described: " .. res[1]
    end
    if case.mm == "__index" then return "ok-result", "looked up: " .. what end
    if case.is_c then return "ACCEPTED-INVALID", "succeeded after the runtime closed (" .. what .. ")" end
    return "ok-result", "Lua function, " .. what
  end
  if case.foreign and not refused then
    return "ACCEPTED-INVALID", ("foreign self %s accepted (%s)"):format(case.value, what)
  end
  local p, v = case.param, case.bad
  if v and p and not refused then
    if v.nul and is_string(p) and not BINARY[p.name] then
      return "ACCEPTED-INVALID", "NUL byte accepted (" .. what .. ")"
    end
    if v.nan and is_number(p) then return "ACCEPTED-INVALID", "NaN accepted (" .. what .. ")" end
    if v.nonint and is_integer(p) then
      return "ACCEPTED-INVALID", case.value .. " accepted for an integer (" .. what .. ")"
    end
    if v.negative and NONNEG[p.name] and is_number(p) then
      return "ACCEPTED-INVALID", case.value .. " accepted for " .. p.name .. " (" .. what .. ")"
    end
    if v.num and p.name == "port" and v.wrap then
      return "ACCEPTED-INVALID", "port " .. case.value .. " accepted (" .. what .. ")"
    end
    if v.wrap and not v.negative and DELAY[p.name] and case.nparams == 1 and o.awaited
        and not o.pending then
      return "ACCEPTED-INVALID", "a delay of " .. case.value .. " completed at once (wrapped?)"
    end
    local getter = M.echo[case.path]
    if v.wrap and getter and type(res[1]) ~= "nil" then
      local ok, got = pcall(function() return res[1][getter](res[1]) end)
      if ok and got ~= o.value then
        return "ACCEPTED-INVALID", ("%s wrapped: %s() reads %s"):format(case.value, getter, tostring(got))
      end
    end
  end
  if o.pending then return "ok-result", "pending" end
  return "ok-result", what
end

return M
