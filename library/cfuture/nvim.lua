---@meta cfuture.nvim
-- `require "cfuture.nvim"` drives cfuture from Neovim's own event loop:
-- steps run through vim.schedule, so task code may call vim.api. See
-- docs/EMBEDDING.md.

---@class cfuture.nvim
---@field cf cfuture the runtime (the table `require "cfuture"` returns)
local M = {}

---Start driving cfuture from Neovim's loop (idempotent). The plugin's
---VimLeavePre autocommand detaches before Neovim exits.
---@return cfuture.nvim
function M.attach() end
---Stop driving cfuture: tasks stay where they are until `attach()` again.
function M.detach() end
---@return boolean
function M.is_attached() end
---Steps run so far.
---@return integer
function M.steps() end
---Wake the driver after starting work from outside a task (`spawn` does it).
function M.wake() end
---`cf.spawn` from Neovim code: the task starts at the next step.
---@param fn cfuture.Future|fun(...): ...
---@param ... any
---@return cfuture.JoinHandle
function M.spawn(fn, ...) end

return M
