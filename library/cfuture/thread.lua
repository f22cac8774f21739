---@meta cfuture.thread
-- `require "cfuture.thread"` inside a worker: the same functions as
-- `cf.thread` (see ../cfuture.lua), without a runtime.

---@type cfuture.thread
local thread

return thread
