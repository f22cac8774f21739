-- cfuture.http.headers: an ordered, case-insensitive list of HTTP header
-- fields. Names keep the case they were given (or had on the wire), order
-- and repeats are kept; lookups ignore case. A value with CR, LF or NUL
-- raises (it would inject a header or split the message).
--
-- The fields live in one flat list {name1, value1, name2, value2, ...}, the
-- form cf._http's parser gives, so a parsed head becomes a Headers object
-- without copying (headers.wrap).
local type, tostring, setmetatable, getmetatable, error, pairs =
  type, tostring, setmetatable, getmetatable, error, pairs
local lower, find = string.lower, string.find

local Headers = {}
Headers.__index = Headers
Headers.__name = "cfuture.http.Headers"

local M = { Headers = Headers }

local function check_self(self, fname)
  if getmetatable(self) ~= Headers then
    error(("%s: argument #1 must be a cfuture.http.Headers (call it with a colon; got %s)")
      :format(fname, type(self)), 3)
  end
end

-- Names and values already checked, so a server that sends the same
-- headers on every response checks each once. Bounded: emptied when full.
local good_names, good_values, ngood = {}, {}, 0
local CACHE_MAX = 512

-- a token (RFC 9110 5.1): letters, digits and !#$%&'*+-.^_`|~
local function check_name(name, fname, argn)
  if good_names[name] then return name end
  if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+%-.^_`|~]+$") then
    error(("%s: argument #%d must be a header name (a token; got %s)"):format(fname, argn,
      type(name) == "string" and ("%q"):format(name:sub(1, 40)) or type(name)), 3)
  end
  ngood = ngood + 1
  if ngood > CACHE_MAX then good_names, good_values, ngood = {}, {}, 0 end
  good_names[name] = true
  return name
end
M.check_name = check_name

-- what: how the message names the value ("argument #3"); with name, "the
-- value of <name>" (the string is made only for the error)
local function check_value(v, fname, what, name)
  if good_values[v] then return v end
  local t = type(v)
  if t == "number" then return tostring(v) end
  if name then what = "the value of " .. tostring(name) end
  if t ~= "string" then
    error(("%s: %s must be a string (got %s)"):format(fname, what, t), 3)
  end
  if find(v, "[\r\n]") or find(v, "\0", 1, true) then
    error(("%s: %s must not contain CR, LF or NUL (header injection)"):format(fname, what), 3)
  end
  if #v <= 256 then
    ngood = ngood + 1
    if ngood > CACHE_MAX then good_names, good_values, ngood = {}, {}, 0 end
    good_values[v] = true
  end
  return v
end
M.check_value = check_value

-- Is list[i] the name `name` (its lower-case form `lname`)?
local function same(n, name, lname) return n == name or lower(n) == lname end

--- headers.new([init]) -> Headers. init: {Name = "v", Other = {"a", "b"}}
-- or a flat list {"Name", "v", ...}.
function M.new(init, fname)
  fname = fname or "http.headers"
  local l, n = {}, 0
  if init ~= nil then
    if type(init) ~= "table" then
      error(("%s: argument #1 must be a table of headers or nil (got %s)"):format(fname,
        type(init)), 2)
    end
    if getmetatable(init) == Headers then
      for i = 1, init.n do l[i] = init.l[i] end
      n = init.n
    elseif init[1] ~= nil then
      local k = #init
      if k % 2 ~= 0 then
        error(("%s: argument #1: a flat list of headers needs name, value pairs (got %d items)")
          :format(fname, k), 2)
      end
      for i = 1, k, 2 do
        check_name(init[i], fname, 1)
        l[i] = init[i]
        l[i + 1] = check_value(init[i + 1], fname, ("the value of %s"):format(init[i]))
      end
      n = k
    else
      for name, v in pairs(init) do
        check_name(name, fname, 1)
        if type(v) == "table" then
          for i = 1, #v do
            l[n + 1] = name
            l[n + 2] = check_value(v[i], fname, ("the value of %s"):format(name))
            n = n + 2
          end
        else
          l[n + 1] = name
          l[n + 2] = check_value(v, fname, ("the value of %s"):format(name))
          n = n + 2
        end
      end
    end
  end
  return setmetatable({ l = l, n = n }, Headers)
end

--- headers.wrap(list) -> Headers over a parser's flat list (taken over, not
-- checked: the parser accepted it).
function M.wrap(list) return setmetatable({ l = list, n = #list }, Headers) end

--- h:get(name) -> the first value, or nil
function Headers:get(name)
  check_self(self, "headers:get")
  local l = self.l
  if type(name) ~= "string" then check_name(name, "headers:get", 2) end
  local lname = lower(name)
  for i = 1, self.n, 2 do
    if same(l[i], name, lname) then return l[i + 1] end
  end
  return nil
end

--- h:get_all(name) -> list of values (maybe empty)
function Headers:get_all(name)
  check_self(self, "headers:get_all")
  if type(name) ~= "string" then check_name(name, "headers:get_all", 2) end
  local l, out, lname = self.l, {}, lower(name)
  for i = 1, self.n, 2 do
    if same(l[i], name, lname) then out[#out + 1] = l[i + 1] end
  end
  return out
end

--- h:has(name) -> boolean
function Headers:has(name)
  check_self(self, "headers:has")
  if type(name) ~= "string" then check_name(name, "headers:has", 2) end
  local l, lname = self.l, lower(name)
  for i = 1, self.n, 2 do
    if same(l[i], name, lname) then return true end
  end
  return false
end

--- h:has_token(name, token) -> whether a comma-separated value of name
-- holds token, ignoring case (Connection: keep-alive, Upgrade;
-- Transfer-Encoding; Expect)
function Headers:has_token(name, token)
  check_self(self, "headers:has_token")
  if type(name) ~= "string" then check_name(name, "headers:has_token", 2) end
  if type(token) ~= "string" then
    error(("headers:has_token: argument #3 must be a string (got %s)"):format(type(token)), 2)
  end
  local l, lname, ltok = self.l, lower(name), lower(token)
  for i = 1, self.n, 2 do
    if same(l[i], name, lname) then
      for t in lower(l[i + 1]):gmatch("[^,%s]+") do
        if t == ltok then return true end
      end
    end
  end
  return false
end

local function remove(self, name)
  local l, n, lname = self.l, self.n, lower(name)
  local j = 1
  for i = 1, n, 2 do
    local k = l[i]
    if not same(k, name, lname) then
      l[j], l[j + 1] = k, l[i + 1]
      j = j + 2
    end
  end
  for i = j, n do l[i] = nil end
  self.n = j - 1
end

--- h:remove(name) -> h
function Headers:remove(name)
  check_self(self, "headers:remove")
  remove(self, check_name(name, "headers:remove", 2))
  return self
end

--- h:set(name, value) -> h: replaces every field of that name (a list
-- value sets several)
function Headers:set(name, value)
  check_self(self, "headers:set")
  check_name(name, "headers:set", 2)
  if type(value) == "table" then
    for i = 1, #value do check_value(value[i], "headers:set", "argument #3") end
  else
    value = check_value(value, "headers:set", "argument #3")
  end
  remove(self, name)
  local l, n = self.l, self.n
  if type(value) == "table" then
    for i = 1, #value do
      l[n + 1], l[n + 2] = name, tostring(value[i])
      n = n + 2
    end
  else
    l[n + 1], l[n + 2] = name, value
    n = n + 2
  end
  self.n = n
  return self
end

--- h:add(name, value) -> h: appends a field
function Headers:add(name, value)
  check_self(self, "headers:add")
  check_name(name, "headers:add", 2)
  value = check_value(value, "headers:add", "argument #3")
  local n = self.n
  self.l[n + 1], self.l[n + 2] = name, value
  self.n = n + 2
  return self
end

--- for name, value in h:each() do ... end (in order, wire case)
function Headers:each()
  check_self(self, "headers:each")
  local l, i = self.l, -1
  return function()
    i = i + 2
    if i <= self.n then return l[i], l[i + 1] end
  end
end

--- h:count() -> number of fields
function Headers:count()
  check_self(self, "headers:count")
  return math.floor(self.n / 2)
end

--- h:list() -> a copy as a flat list {name, value, ...}
function Headers:list()
  check_self(self, "headers:list")
  local out = {}
  for i = 1, self.n do out[i] = self.l[i] end
  return out
end

--- h:to_table() -> { lower-case name = value, or a list of values when repeated }
function Headers:to_table()
  check_self(self, "headers:to_table")
  local out, l = {}, self.l
  for i = 1, self.n, 2 do
    local k, v = lower(l[i]), l[i + 1]
    local old = out[k]
    if old == nil then
      out[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      out[k] = { old, v }
    end
  end
  return out
end

-- Append "Name: value\r\n" for every field to buf (a list), from index k;
-- returns the next free index. For writing heads in one concat.
function M.append_wire(self, buf, k)
  local l = self.l
  for i = 1, self.n, 2 do
    buf[k], buf[k + 1], buf[k + 2], buf[k + 3] = l[i], ": ", l[i + 1], "\r\n"
    k = k + 4
  end
  return k
end

Headers.__tostring = function(self)
  if getmetatable(self) ~= Headers then return "cfuture.http.Headers" end
  local parts = {}
  for i = 1, self.n, 2 do parts[#parts + 1] = self.l[i] .. ": " .. self.l[i + 1] end
  return "cfuture.http.Headers{" .. table.concat(parts, ", ") .. "}"
end

return M
