-- cfuture on luv's loop: for programs that already run luv.
--
--   local uv = require "luv"
--   local cf = require "cfuture.luv"   -- instead of require "cfuture"
--   cf.spawn(function() ... end)
--   uv.run()                           -- runs luv's callbacks and cfuture's tasks
--
-- It must be required before anything requires "cfuture": a Lua state has
-- one runtime, and it is bound to its loop when it opens. Afterwards
-- require "cfuture" returns the same module.
if type(vim) == "table" and vim.api then
  -- Tasks resumed from Neovim's loop would bypass its fast-event guard.
  error("cfuture.luv: inside Neovim use require \"cfuture.nvim\" (a private loop folded into "
    .. "Neovim's, so tasks may call vim.api)", 2)
end

require "luv"
local path = package.searchpath("cfuture.core", package.cpath)
local open, err = nil, "cfuture.core was not found on package.cpath"
if path then open, err = package.loadlib(path, "luaopen_cfuture_luv") end
if not open then error("cfuture.luv: " .. tostring(err), 2) end
open()
return require "cfuture"
