---@meta cfuture.nvim.test
-- `require "cfuture.nvim.test"`: run async tests under nvim --headless
-- (see docs/NEOVIM.md).

---@class cfuture.nvim.test
local T = {}

---@class cfuture.nvim.test.RunOpts
---@field timeout? integer ms per test (default 10000)
---@field exit? boolean exit Neovim at the end (default true)
---@field on_done? fun(failed: integer, total: integer)

---Run each `{name, fn}` as a task awaited with a timeout, print TAP lines,
---exit Neovim with status 0 (all passed) or 1.
---@param tests {[1]: string, [2]: fun()}[]|fun()
---@param opts? cfuture.nvim.test.RunOpts
function T.run(tests, opts) end
---Messages shown through vim.notify while the tests ran; `clear` empties the list.
---@param clear? boolean
---@return string[]
function T.notifications(clear) end
---Raise unless `a` and `b` are equal (deep for tables).
---@param a any
---@param b any
---@param msg? string
function T.eq(a, b, msg) end
---Raise unless `v` is truthy; returns `v`.
---@generic V
---@param v V
---@param msg? string
---@return V
function T.ok(v, msg) end
---Raise unless `fn` raises an error whose text contains `text`; returns the error.
---@param fn fun()
---@param text? string
---@return any
function T.raises(fn, text) end
---A future of true once `pred()` is true (checked every `interval` ms,
---default 10), false after `ms` (default 2000).
---@param pred fun(): any
---@param ms? number
---@param interval? number
---@return cfuture.Future
function T.wait_for(pred, ms, interval) end
---Whether process `pid` is alive (kill -0).
---@param pid integer
---@return boolean
function T.alive(pid) end
---`nvim_input(keys)`; a future of the next vim.schedule turn.
---@param keys string
---@return cfuture.Future
function T.feed(keys) end

return T
