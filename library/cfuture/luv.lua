---@meta cfuture.luv
-- `require "cfuture.luv"` opens cfuture on luv's loop (before anything
-- requires "cfuture") and returns the same table as `require "cfuture"`.

---@type cfuture
local cf

return cf
