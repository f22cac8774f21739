-- bench/redis/probe.lua MODULE: "ok" if this interpreter loads cfuture and
-- MODULE (cfuture.socket, cfuture.ngx) with common.lua's paths, else why not.
dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local ok, err = pcall(require, "cfuture")
if ok then ok, err = pcall(require, arg[1]) end
io.write(ok and "ok" or (tostring(err):gsub("\n.*", "")))
