-- The API reference covers the API: every function the module exports (and
-- every method of the objects it returns) is named in docs/API.md.
local cf = require "cfuture"
local support = require "support"
local read = support.read_file

describe("the API references", function()
  it("names every exported function and method", function()
    local doc = read("docs/API.md")
    local missing = {}
    local function documented(path, k)
      local rel = (path .. "." .. k):gsub("^cf%.", "")
      for _, needle in ipairs({ "cf." .. rel, "`" .. rel .. "(", "`" .. rel .. "`", " " .. rel .. "(",
        "`" .. rel .. " " }) do
        if doc:find(needle, 1, true) then return true end
      end
      -- methods: classes are capitalised tables (cf.Stream, cf.fs.File, ...)
      if path:match("%.%u%w*$") or path == "future" then
        for _, needle in ipairs({ ":" .. k .. "(", ":" .. k .. "`", ":" .. k .. " " }) do
          if doc:find(needle, 1, true) then return true end
        end
      end
      return false
    end
    local function check(path, k)
      if not documented(path, k) then missing[#missing + 1] = path .. "." .. k end
    end
    support.each_function(cf, "cf", check)
    -- methods shared by every future (await, abort, ...) and of thread channels
    support.each_function(getmetatable(cf.sleep(0)).__index, "future", check)
    support.each_function(getmetatable(cf.thread.channel()).__index, "cf.thread.Channel", check)
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("docs/C_API.md names every function and type of include/cfuture.h", function()
    local header = read("include/cfuture.h")
    local doc = read("docs/C_API.md")
    local names, missing = {}, {}
    for name in header:gmatch("[%s%*]([%w_]+)%(") do
      if name:match("^cf_") or name:match("^luaopen_") then names[name] = true end
    end
    for name in header:gmatch("typedef [%w_ ]-([%w_]+);") do names[name] = true end
    for name in header:gmatch("typedef struct ([%w_]+) {") do names[name] = true end
    for name in pairs(names) do
      if not doc:find(name, 1, true) then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.is_true(names.cf_push_future and names.cf_runtime_open and names.cf_waker_set or false)
    assert.are.same({}, missing)
  end)
end)
