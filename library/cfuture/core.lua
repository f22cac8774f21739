---@meta cfuture.core
-- `require "cfuture.core"` is the same table as `require "cfuture"`.

---@type cfuture
local cf

return cf
