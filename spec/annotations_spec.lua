-- The lua-language-server annotations (library/) match the module: every
-- exported function and every method of every object the API returns is
-- declared on the right class, and nothing declared there is missing from
-- the module.
local cf = require "cfuture"
local support = require "support"
local read = support.read_file

local meta = read("library/cfuture.lua")

-- Which local table in the meta file stands for which class, and which
-- functions and methods each declares.
local var_class, declared = {}, {}
do
  local pending
  for line in meta:gmatch("[^\n]+") do
    local class = line:match("^%-%-%-@class ([%w%.]+)")
    if class then pending = class end
    local var = line:match("^local (%w+) = {}")
    if var and pending then var_class[var], pending = pending, nil end
    local v, sep, name = line:match("^function (%w+)([%.:])([%w_]+)%(")
    if v then
      local cls = assert(var_class[v], "meta: " .. v .. " has no ---@class")
      declared[cls] = declared[cls] or {}
      declared[cls][name] = sep
    end
  end
end

-- Exported tables and the class that annotates them.
local export_class = {
  ["cf"] = "cfuture", ["cf.fs"] = "cfuture.fs", ["cf.process"] = "cfuture.process",
  ["cf.signal"] = "cfuture.signal", ["cf.net"] = "cfuture.net", ["cf.tls"] = "cfuture.tls", ["cf.time"] = "cfuture.time",
  ["cf.test"] = "cfuture.test", ["cf.thread"] = "cfuture.thread", ["cf.crypto"] = "cfuture.crypto",
  ["cf.coroutine"] = "cfuture.coroutine",
  ["cf.Stream"] = "cfuture.Stream", ["cf.fs.File"] = "cfuture.File",
  ["cf.net.Listener"] = "cfuture.Listener", ["cf.net.Udp"] = "cfuture.Udp",
  ["cf.TaskSet"] = "cfuture.TaskSet", ["cf.CancelToken"] = "cfuture.CancelToken",
  ["cf.process.Process"] = "cfuture.Process",
}

local function methods_of(v)
  local mt = getmetatable(v)
  local idx = type(v) == "table" and mt == nil and v or (mt and mt.__index)
  if type(v) == "table" and mt and mt.__index then idx = mt.__index end
  local names = {}
  if type(idx) == "table" then
    for k, f in pairs(idx) do
      if type(k) == "string" and type(f) == "function" and not k:match("^_") then names[#names + 1] = k end
    end
  end
  table.sort(names)
  return names
end

-- One object of each kind the API hands out, with its class. Every future
-- class has a metatable of its own: its methods are those of every future
-- (cfuture.Future) and its own.
local function samples()
  local out = {}
  cf.block_on(function()
    local function add(class, v) out[#out + 1] = { class, v } end
    local tx, rx = cf.oneshot()
    add("cfuture.OneshotSender", tx)
    add("cfuture.OneshotReceiver", rx)
    local sem = cf.semaphore(2)
    add("cfuture.Semaphore", sem)
    add("cfuture.Permit", sem:try_acquire())
    local m = cf.mutex()
    add("cfuture.Mutex", m)
    add("cfuture.Permit", m:try_lock())
    add("cfuture.RwLock", cf.rwlock())
    add("cfuture.Notify", cf.notify())
    local w = cf.watch(1)
    add("cfuture.Watch", w)
    add("cfuture.WatchReceiver", w:subscribe())
    local b = cf.broadcast(2)
    add("cfuture.Broadcast", b)
    add("cfuture.BroadcastReceiver", b:subscribe())
    add("cfuture.Barrier", cf.barrier(2))
    add("cfuture.Interval", cf.interval(10))
    add("cfuture.TaskSet", cf.task_set())
    add("cfuture.CancelToken", cf.cancel_token())
    local l = assert(cf.net.listen("127.0.0.1", 0))
    add("cfuture.Listener", l)
    local u = assert(cf.net.udp("127.0.0.1"))
    add("cfuture.Udp", u)
    local c = assert(cf.net.connect(l:local_address()):await())
    add("cfuture.Stream", c)
    local f = assert(cf.fs.open("spec/annotations_spec.lua"):await())
    add("cfuture.File", f)
    local sig = cf.signal.listen("SIGUSR2")
    add("cfuture.SignalListener", sig)
    local pool = cf.thread.pool(1)
    add("cfuture.ThreadPool", pool)
    add("cfuture.ThreadChannel", cf.thread.channel())
    add("cfuture.Hasher", cf.crypto.hasher("sha256"))
    cf.future(function(waker)
      add("cfuture.Waker", waker)
      return true
    end):await()
    add("cfuture.Future", cf.sleep(0))
    add("cfuture.Channel", cf.channel())
    local h = cf.spawn(function() end)
    add("cfuture.JoinHandle", h)
    add("cfuture.Scope", cf.scope(function() end))
    local th = cf.thread.spawn(function() end)
    add("cfuture.ThreadHandle", th)
    h:await(); th:await()
    c:close(); l:close(); u:close(); f:close(); sig:close(); pool:close()
  end)
  return out
end

describe("library/cfuture.lua (LuaLS annotations)", function()
  it("is a valid Lua chunk marked ---@meta", function()
    assert.is_truthy(meta:match("^%-%-%-@meta cfuture\n"))
    assert.is_function(load(meta, "=library/cfuture.lua"))
    for _, f in ipairs({ "library/cfuture/thread.lua", "library/cfuture/core.lua",
      "library/cfuture/luv.lua", "library/cfuture/nvim.lua", "library/cfuture/nvim/test.lua",
      "library/cfuture/socket.lua" }) do
      assert.is_function(load(read(f), "=" .. f))
    end
  end)

  it("declares every function of cfuture.nvim, and only those", function()
    -- the module needs only vim.loop to load (it touches it on attach)
    local env = setmetatable({ vim = { loop = {} } }, { __index = _G })
    local chunk = assert(loadfile("lua/cfuture/nvim.lua"))
    if setfenv then setfenv(chunk, env) else debug.setupvalue(chunk, 1, env) end
    local M = chunk()
    local stub = read("library/cfuture/nvim.lua")
    local missing, extra = {}, {}
    for k, v in pairs(M) do
      if type(v) == "function" and not stub:find("\nfunction M%." .. k .. "%(") then
        missing[#missing + 1] = k
      end
    end
    for k in stub:gmatch("\nfunction M%.([%w_]+)%(") do
      if type(M[k]) ~= "function" then extra[#extra + 1] = k end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    assert.are.same({}, extra)
    assert.is_truthy(stub:find("---@field cf cfuture", 1, true))
  end)

  it("declares every exported function on the class of its table", function()
    local missing = {}
    support.each_function(cf, "cf", function(path, k)
      if path:match("^cf%.PENDING") then return end
      local cls = export_class[path]
      if not cls then
        missing[#missing + 1] = path .. " (no class for this table)"
      elseif not (declared[cls] or {})[k] then
        missing[#missing + 1] = path .. "." .. k .. " on " .. cls
      end
    end)
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("declares every method of every object the API returns", function()
    local missing = {}
    for _, s in ipairs(samples()) do
      local cls, obj = s[1], s[2]
      local names = methods_of(obj)
      assert.is_true(#names > 0, cls .. " sample has no methods")
      for _, name in ipairs(names) do
        local found = false
        -- a future class inherits cfuture.Future's methods
        for _, c in ipairs(cf.is_future(obj) and { cls, "cfuture.Future" } or { cls }) do
          if (declared[c] or {})[name] == ":" then found = true end
        end
        if not found then missing[#missing + 1] = cls .. ":" .. name end
      end
    end
    -- process objects resolve fields in C; check the documented methods
    local p = assert(cf.process.spawn { "true" })
    for _, name in ipairs({ "wait", "kill", "status" }) do
      assert.is_function(p[name])
      if (declared["cfuture.Process"] or {})[name] ~= ":" then missing[#missing + 1] = "cfuture.Process:" .. name end
    end
    cf.block_on(p:wait())
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("declares nothing the module lacks", function()
    local exists = {}
    for path, cls in pairs(export_class) do
      local t = cf
      for part in path:gmatch("%.([%w_]+)") do t = t[part] end
      exists[cls] = exists[cls] or {}
      for k, v in pairs(t) do
        if type(v) == "function" then exists[cls][k] = true end
      end
    end
    local base = {} -- every future's methods
    for _, name in ipairs(methods_of(cf.sleep(0))) do base[name] = true end
    for _, s in ipairs(samples()) do
      local cls = s[1]
      exists[cls] = exists[cls] or {}
      for _, name in ipairs(methods_of(s[2])) do
        -- a future class declares only what it adds to cfuture.Future
        if not (cf.is_future(s[2]) and cls ~= "cfuture.Future" and base[name]) then exists[cls][name] = true end
      end
    end
    local stale = {}
    -- declared as Lua 5.4 only
    local only54 = { ["cfuture.coroutine.close"] = rawget(_G, "jit") ~= nil }
    for cls, names in pairs(declared) do
      for name in pairs(names) do
        if not (exists[cls] or {})[name] and not only54[cls .. "." .. name] then
          stale[#stale + 1] = cls .. "." .. name
        end
      end
    end
    table.sort(stale)
    assert.are.same({}, stale)
  end)

  it("names each object's type as its class does (__name, tostring)", function()
    local wrong = {}
    for _, s in ipairs(samples()) do
      local cls, obj = s[1], s[2]
      local mt = getmetatable(obj)
      if cls ~= "cfuture.Waker" or type(mt) == "table" then
        if type(mt) ~= "table" or mt.__name ~= cls then
          wrong[#wrong + 1] = cls .. " has __name " .. tostring(type(mt) == "table" and mt.__name)
        end
        -- Lua 5.1 / LuaJIT's tostring does not read __name
        local shown = tostring(obj)
        if (mt.__tostring or _VERSION == "Lua 5.4") and shown:sub(1, #cls) ~= cls then wrong[#wrong + 1] = cls .. " shows as " .. shown end
      end
    end
    table.sort(wrong)
    assert.are.same({}, wrong)
  end)
end)
