-- cfuture.http.url: URLs for the HTTP client (RFC 3986, as browsers and curl
-- read them): parse, build, resolve a reference (a redirect's Location)
-- against a base, percent-encoding and query strings.
--
--   local url = require "cfuture.http.url"
--   local u = assert(url.parse("https://user:pw@[::1]:8443/a/b?x=1#top"))
--   --> { scheme = "https", user = "user", password = "pw", host = "::1", port = 8443,
--   --    path = "/a/b", query = "x=1", fragment = "top", default_port = false }
--   url.target(u)        --> "/a/b?x=1"          (the request target)
--   url.authority(u)     --> "[::1]:8443"        (the Host header)
--   url.resolve("http://h/a/b?q", "../c")  --> "http://h/c"
--
-- Parsing never raises on a bad URL: it returns nil and a message. Bytes a
-- URL may not contain as they are (spaces, controls, non-ASCII, quotes) are
-- percent-encoded in the path and query, as browsers send them, so what goes
-- on the wire can never split a request line or a header.
local M = {}

local default_ports = { http = 80, https = 443, ws = 80, wss = 443 }
M.default_ports = default_ports

local function hexbyte(c) return ("%%%02X"):format(c:byte()) end

-- Percent-encode every byte of s except the unreserved ones (A-Z a-z 0-9
-- - . _ ~): for a query value or a path segment.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", hexbyte))
end

-- Decode %XX escapes (a "%" not followed by two hex digits stays as it
-- is); `plus = true` also turns "+" into a space (form encoding).
function M.decode(s, plus)
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Encode a table as a query string: { a = "1", b = { "2", "3" } } gives
-- "a=1&b=2&b=3", keys sorted (so the result is stable); a list of pairs
-- { {"a", "1"}, {"b", "2"} } keeps its order.
function M.encode_query(t)
  local out = {}
  if t[1] ~= nil then
    for _, kv in ipairs(t) do out[#out + 1] = M.encode(kv[1]) .. "=" .. M.encode(kv[2]) end
    return table.concat(out, "&")
  end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do out[#out + 1] = M.encode(k) .. "=" .. M.encode(x) end
    elseif v == true then
      out[#out + 1] = M.encode(k)
    elseif v ~= false then
      out[#out + 1] = M.encode(k) .. "=" .. M.encode(v)
    end
  end
  return table.concat(out, "&")
end

-- Decode a query string into a table: a key seen once maps to its string,
-- a repeated key to a list of its values in order; "+" is a space.
function M.decode_query(s)
  local t = {}
  for part in (s or ""):gmatch("[^&;]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    k, v = M.decode(k, true), M.decode(v, true)
    local old = t[k]
    if old == nil then
      t[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      t[k] = { old, v }
    end
  end
  return t
end

-- Path and query bytes sent as they are: RFC 3986's unreserved, sub-delims,
-- ":", "@", "/", "?" and "%" (existing escapes are kept, not encoded twice).
local function normalise(s)
  return (s:gsub("[^%w%-%._~!%$&'%(%)%*%+,;=:@/%?%%]", hexbyte)
    :gsub("%%(%X)", function(c) return "%25" .. c end)
    :gsub("%%(%x%X)", function(c) return "%25" .. c end)
    :gsub("%%$", "%%25"))
end

-- Parse an absolute URL. Returns a table (see the top of the file) or nil
-- and a message. `scheme` is lowercased, and so is `host` (an IPv6 address
-- without its brackets); `port` is a number, the scheme's default when the
-- URL has none (`default_port` tells); `path` is at least "/" for a URL
-- with an authority; `query` and `fragment` are nil when absent; `user` and
-- `password` are decoded.
function M.parse(s)
  if type(s) ~= "string" then return nil, "not a string" end
  if s:find("[%z\r\n]") then return nil, "a URL must not contain NUL, CR or LF" end
  s = s:match("^[ \t]*(.-)[ \t]*$")
  local scheme, rest = s:match("^(%a[%w%+%-%.]*):(.*)$")
  if not scheme then return nil, "no scheme (an absolute URL starts with http:// or https://)" end
  scheme = scheme:lower()
  local u = { scheme = scheme }
  local fragment
  rest, fragment = rest:match("^([^#]*)#?(.*)$")
  if s:find("#", 1, true) then u.fragment = fragment end
  local query
  local qpos = rest:find("?", 1, true)
  if qpos then
    rest, query = rest:sub(1, qpos - 1), rest:sub(qpos + 1)
    u.query = normalise(query)
  end
  local authority, path = rest:match("^//([^/]*)(.*)$")
  if not authority then
    if default_ports[scheme] then return nil, "no host (expected " .. scheme .. "://host/...)" end
    u.path = normalise(rest)
    return u
  end
  u.path = path == "" and "/" or normalise(path)
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  if userinfo then
    local user, password = userinfo:match("^([^:]*):(.*)$")
    u.user = M.decode(user or userinfo)
    if user then u.password = M.decode(password) end
  else
    hostport = authority
  end
  local host, port
  if hostport:sub(1, 1) == "[" then
    local h, after = hostport:match("^%[([^%]]*)%](.*)$")
    if not h then return nil, "an IPv6 address is missing its closing bracket" end
    if not h:match("^[%x:%.]+$") and not h:match("^[%x:%.]+%%25.+$") then
      return nil, "not an IPv6 address: [" .. h .. "]"
    end
    host = M.decode(h):lower()
    port = after:match("^:(.*)$")
    if after ~= "" and not port then return nil, "unexpected text after the IPv6 address" end
  else
    host, port = hostport:match("^([^:]*):(.*)$")
    if not host then host = hostport end
    if host:find("[%s\"<>\\%^`{|}%%]") then return nil, "bad character in the host name " .. host end
    host = host:lower()
  end
  if host == "" and default_ports[scheme] then return nil, "no host (expected " .. scheme .. "://host/...)" end
  u.host = host
  if port and port ~= "" then
    if not port:match("^%d+$") or tonumber(port) > 65535 then
      return nil, "bad port " .. port
    end
    u.port = tonumber(port)
    u.default_port = u.port == default_ports[scheme]
  else
    u.port = default_ports[scheme]
    u.default_port = true
  end
  return u
end

-- The request target of a parsed URL: path and query.
function M.target(u)
  if u.query then return (u.path or "/") .. "?" .. u.query end
  return u.path or "/"
end

-- host[:port] for the Host header (the port only when not the default;
-- brackets around an IPv6 address).
function M.authority(u)
  local h = u.host
  if h:find(":", 1, true) then h = "[" .. h:gsub("%%", "%%25") .. "]" end
  if u.port and not u.default_port and u.port ~= default_ports[u.scheme] then
    return h .. ":" .. u.port
  end
  return h
end

-- The URL of a parsed table (userinfo left out unless `with_userinfo`).
function M.build(u, with_userinfo)
  local s = u.scheme .. ":"
  if u.host then
    s = s .. "//"
    if with_userinfo and u.user then
      s = s .. M.encode(u.user)
      if u.password then s = s .. ":" .. M.encode(u.password) end
      s = s .. "@"
    end
    s = s .. M.authority(u)
  end
  s = s .. M.target(u)
  if u.fragment then s = s .. "#" .. u.fragment end
  return s
end

-- RFC 3986 5.2.4: remove "." and ".." segments.
local function remove_dots(path)
  if not path:find("%.") then return path end
  local out = {}
  local abs = path:sub(1, 1) == "/"
  local trailing = path:match("/%.%.?$") or path:sub(-1) == "/" or path == "." or path == ".."
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      if #out > 0 then out[#out] = nil end
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  local r = table.concat(out, "/")
  if abs then r = "/" .. r end
  if trailing and r:sub(-1) ~= "/" then r = r .. "/" end
  return r
end

-- Resolve a reference (such as a Location header) against a base URL
-- (RFC 3986 5.2): returns the absolute URL as a string, or nil and a
-- message. The base's fragment is kept when the reference has none (RFC
-- 9110 10.2.2).
function M.resolve(base, ref)
  local b = type(base) == "table" and base or M.parse(base)
  if not b then return nil, "bad base URL" end
  if type(ref) ~= "string" then return nil, "not a string" end
  if ref:find("[%z\r\n]") then return nil, "a URL must not contain NUL, CR or LF" end
  ref = ref:match("^[ \t]*(.-)[ \t]*$")
  if ref:match("^%a[%w%+%-%.]*:") then
    local u, err = M.parse(ref)
    if not u then return nil, err end
    u.path = remove_dots(u.path or "")
    if u.path == "" and u.host then u.path = "/" end
    return M.build(u, true)
  end
  local frag
  local hash = ref:find("#", 1, true)
  if hash then ref, frag = ref:sub(1, hash - 1), ref:sub(hash + 1) end
  local u
  if ref:sub(1, 2) == "//" then
    local r, err = M.parse(b.scheme .. ":" .. ref)
    if not r then return nil, err end
    r.path = remove_dots(r.path)
    u = r
  else
    u = { scheme = b.scheme, host = b.host, port = b.port, default_port = b.default_port,
      user = b.user, password = b.password }
    local qpos = ref:find("?", 1, true)
    local path, query = ref, nil
    if qpos then path, query = ref:sub(1, qpos - 1), ref:sub(qpos + 1) end
    if path == "" then
      u.path = b.path
      u.query = query and normalise(query) or b.query
    else
      if path:sub(1, 1) ~= "/" then
        local dir = (b.path or "/"):match("^(.*/)") or "/"
        path = dir .. path
      end
      u.path = normalise(remove_dots(path))
      u.query = query and normalise(query)
    end
  end
  u.fragment = frag or b.fragment
  return M.build(u, true)
end

return M
