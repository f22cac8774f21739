-- values.lua: the arguments the harness passes.
--
-- valid(param, env): a good value for a parameter (by its name, then by its
-- annotated type), so that each bad value is tried with every other
-- argument valid. bad: the hostile values, each { kind =, gen = function(env)
-- return value end, core = true when every function gets it (the others are
-- sampled unless --full) }. Generators make a fresh value per call.
local M = {}

local MB = string.rep("x", 1024 * 1024)

-- Good values by parameter name (a function of env), then by type.
local by_name = {
  path = function(env) return env.file() end,
  from = function(env) return env.file() end,
  to = function(env) return env.fresh_path() end,
  prefix = function(env) return env.dir .. "/mk-" end,
  mode = function() return "r" end,
  data = function() return "x" end,
  delim = function() return "\n" end,
  host = function() return "127.0.0.1" end,
  address = function() return "127.0.0.1" end,
  port = function(env) return env.port end,
  group = function() return "239.255.0.77" end,
  iface = function() return nil end,
  sig = function() return "SIGUSR2" end,
  number = function() return 15 end,
  family = function() return "inet" end,
  alg = function() return "sha256" end,
  whence = function() return "set" end,
  offset = function() return 0 end,
  n_or_fmt = function() return "a" end,
  cmd = function() return "true" end,
  args = function() return {} end,
  spec = function() return { "true" } end,
  ms = function() return 1 end,
  t = function(env) return env.cf.now() end,
  timeout_ms = function() return 1 end,
  delay_s = function() return 1 end,
  budget = function() return 4 end,
  capacity = function() return 2 end,
  permits = function() return 1 end,
  initial = function() return 1 end,
  n = function() return 1 end,
  k = function() return 1 end,
  max = function() return 16 end,
  on = function() return true end,
  v = function() return 1 end,
  err = function() return "e" end,
  body = function() return function() return 1 end end,
  poll = function() return function() return 1 end end,
  handler = function() return nil end,
  fn = function() return function() return 1 end end,
  fn_or_source = function() return function() return 1 end end,
  list = function() return {} end,
  ["..."] = function() return nil end,
}

local by_type = {
  string = function() return "x" end,
  integer = function() return 1 end,
  number = function() return 1 end,
  boolean = function() return true end,
  ["function"] = function() return function() return 1 end end,
  table = function() return {} end,
}

function M.valid(param, env)
  if param.name == "name" then -- signal.number's name; lookup's host name
    return env.target_path == "cf.net.lookup" and "localhost" or "SIGTERM"
  end
  local g = by_name[param.name]
  if g then return g(env) end
  if param.optional then return nil end
  local t = param.type or "any"
  if t:match("Future") or t:match("^fun") then return function() return 1 end end
  g = by_type[t:match("^[%w]+")]
  if g then return g(env) end
  return 1
end

-- The hostile values. `kinds` say which rules apply (classify.lua).
M.bad = {
  { kind = "missing", core = true },
  { kind = "nil", core = true, gen = function() return nil end },
  { kind = "boolean", core = true, gen = function() return true end },
  { kind = "number", core = true, gen = function() return 42 end },
  { kind = "string", core = true, gen = function() return "x" end },
  { kind = "table", core = true, gen = function() return {} end },
  { kind = "function", core = true, gen = function() return function() end end },
  { kind = "io.stdout", core = true, gen = function() return io.stdout end },
  { kind = "coroutine", core = true, gen = function() return coroutine.create(function() end) end },
  { kind = "future", core = true, gen = function(env) return env.cf.sleep(0) end },
  { kind = "2^31", num = true, wrap = true, gen = function() return 2 ^ 31 end },
  { kind = "2^32+5", num = true, wrap = true, gen = function() return 2 ^ 32 + 5 end },
  { kind = "2^53", num = true, wrap = true, gen = function() return 2 ^ 53 end },
  { kind = "2^63-1", num = true, wrap = true, gen = function() return math.maxinteger end },
  { kind = "-2^63", num = true, wrap = true, negative = true, gen = function() return math.mininteger end },
  { kind = "1e308", num = true, nonint = true, gen = function() return 1e308 end },
  { kind = "math.huge", num = true, nonint = true, gen = function() return math.huge end },
  { kind = "-math.huge", num = true, nonint = true, negative = true, gen = function() return -math.huge end },
  { kind = "NaN", num = true, nonint = true, nan = true, gen = function() return 0 / 0 end },
  { kind = "-0.0", num = true, gen = function() return -0.0 end },
  { kind = "0.5", num = true, nonint = true, gen = function() return 0.5 end },
  { kind = "NUL", nul = true, gen = function() return "a\0b" end },
  { kind = "empty", gen = function() return "" end },
  { kind = "1MB", gen = function() return MB end },
}

-- Lua source for a value kind, for reproducer lines.
M.source = {
  missing = "", ["nil"] = "nil", boolean = "true", number = "42", string = '"x"', table = "{}",
  ["function"] = "function() end", ["io.stdout"] = "io.stdout",
  coroutine = "coroutine.create(function() end)", future = "cf.sleep(0)", ["2^31"] = "2^31",
  ["2^32+5"] = "2^32+5", ["2^53"] = "2^53", ["2^63-1"] = "math.maxinteger",
  ["-2^63"] = "math.mininteger", ["1e308"] = "1e308", ["math.huge"] = "math.huge",
  ["-math.huge"] = "-math.huge", NaN = "0/0", ["-0.0"] = "-0.0", ["0.5"] = "0.5",
  NUL = '"a\\0b"', empty = '""', ["1MB"] = 'string.rep("x", 2^20)',
}

-- Lua source of a valid value (for reproducers).
function M.valid_source(param, v)
  if param.name == "path" or param.name == "from" then return '"/tmp/badinput.txt"' end
  if param.name == "to" then return '"/tmp/badinput.new"' end
  if param.name == "port" then return "port" end
  if param.name == "t" then return "cf.now()" end
  local t = type(v)
  if t == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  if t == "function" then return "function() return 1 end" end
  if t == "table" then return v[1] and ('{"%s"}'):format(v[1]) or "{}" end
  return tostring(v)
end

return M
