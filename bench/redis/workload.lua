-- The workload every Lua client runs (redis_lua.lua, resty_work.lua): N operations
-- per phase spread evenly over C connections, each doing its share one after the
-- other (or P at a time, pipelined):
--   set   SET bench:<conn>:<j> <3-byte value>        reply must be OK
--   get   GET bench:<conn>:<j>                        must be the value set
--   incr  INCR bench:counter                          replies numbers; final = N
-- Keys and values are made before the clock starts. fmt() gives the result line:
--   redis PEER CASE n= c= p= set_ops= get_ops= incr_ops= (per second)
--         set_cpu= ... (client CPU us per op) set_srv= ... (redis-server CPU us per op)
local M = {}

M.phases = { "set", "get", "incr" }

function M.keys(n, c)
  local keys, vals = {}, {}
  local per = math.floor(n / c)
  for i = 1, c do
    local k, v = {}, {}
    for j = 1, per do
      k[j] = "bench:" .. i .. ":" .. j
      v[j] = string.format("%03d", (i * 7 + j) % 1000)
    end
    keys[i], vals[i] = k, v
  end
  return keys, vals, per
end

-- r[phase] = { wall =, cpu =, srv = } in seconds
function M.fmt(peer, case, n, c, p, r)
  local out = { ("redis %s %s n=%d c=%d p=%d"):format(peer, case, n, c, p) }
  for _, ph in ipairs(M.phases) do
    local x = r[ph]
    out[#out + 1] = ("%s_ops=%.0f %s_cpu=%.2f"):format(ph, n / x.wall, ph, x.cpu / n * 1e6)
    if x.srv then out[#out + 1] = ("%s_srv=%.2f"):format(ph, x.srv / n * 1e6) end
  end
  return table.concat(out, " ")
end

-- CPU seconds (user + sys) of process pid so far, from /proc/pid/stat; nil
-- without a pid or a readable file.
function M.proc_cpu(pid)
  if not pid then return nil end
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  -- after the command name "(...)": state is field 3, utime 14, stime 15
  local rest = s:match(".*%) (.*)$") -- the name may hold spaces and ")"
  local i, ut = 2, nil
  for w in rest:gmatch("%S+") do
    i = i + 1
    if i == 14 then ut = tonumber(w) elseif i == 15 then return (ut + tonumber(w)) / 100 end
  end
end

return M
