---@meta cfuture.nvim
-- `require "cfuture.nvim"` drives cfuture from Neovim's own event loop:
-- steps run through vim.schedule, so task code may call vim.api. It turns
-- Neovim's callback APIs into futures and wraps jobs, LSP requests, vim.ui
-- and autocommands. See docs/NEOVIM.md.

---@class cfuture.nvim
---@field cf cfuture the runtime (the table `require "cfuture"` returns)
---@field ui cfuture.nvim.ui
---@field lsp cfuture.nvim.lsp
---@field Job cfuture.nvim.Job the metatable of jobs
local M = {}

---Start driving cfuture from Neovim's loop (idempotent). The plugin's
---VimLeavePre autocommand cancels the tasks started through this module
---and detaches before Neovim exits.
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

---Abort the task `h` from Neovim code (a keymap, an autocommand) and wake
---the driver, so its cancellation and `cf.defer` cleanups run now.
---@param h cfuture.JoinHandle
function M.abort(h) end

---@class cfuture.nvim.SetupOpts
---@field notify? boolean|fun(msg: string, level: integer) how errors are shown (default: vim.notify)
---@field level? integer the vim.log.levels value (default ERROR)

---Configure how errors are shown; installs the handler as `cf.on_error`
---unless another handler was set before (attach calls it with no options).
---@param opts? cfuture.nvim.SetupOpts
---@return cfuture.nvim
function M.setup(opts) end

---`cf.spawn` from Neovim code: the task starts at the next step. An error
---that ends it is shown at once with its traceback (see `setup`) and still
---raised to whoever awaits the handle. `spawn{fn, args..., name = "x",
---notify = false}` names it or keeps its errors quiet. The task is
---cancelled on VimLeavePre.
---@param fn cfuture.Future|fun(...): ...|table
---@param ... any
---@return cfuture.JoinHandle
function M.spawn(fn, ...) end
---Like `spawn`; the task is also cancelled when buffer `buf` is wiped.
---@param buf integer buffer number (0: current)
---@param fn cfuture.Future|fun(...): ...|table
---@param ... any
---@return cfuture.JoinHandle
function M.spawn_for_buf(buf, fn, ...) end
---Abort every task started through `spawn` that still runs; their
---`cf.defer` cleanups run before this returns (`abort_now`), even inside a
---task (the running task itself is only marked). Returns how many.
---@return integer
function M.cancel_all() end
---The live tasks started through `spawn`, oldest first.
---@return cfuture.JoinHandle[]
function M.tasks() end
---What VimLeavePre does (hooked by `attach`): `cancel_all()`, then `detach()`.
function M.leave() end
---`:CfutureStatus`: the driver's state and `cf.dump()` in a scratch buffer
---opened in a split.
---@return integer buf
function M.status() end

---A future of what `start`'s callback receives. `start(callback)` runs
---when the future is first awaited (in a step: vim.api is allowed). The
---first call of `callback` completes the future, from any context (fast
---events included); later calls are ignored and reported through
---`cf.on_error`. If the future is dropped first (select, timeout, abort),
---`cancel(h)` runs with what `start` returned; without `cancel`, a
---function `start` returned is called, or its `close`/`kill`/`cancel`.
---@param start fun(callback: fun(...)): any
---@param cancel? fun(handle: any)
---@return cfuture.Future
function M.await_callback(start, cancel) end
---Turn a callback-style function into one returning a future; the
---callback is argument number `argc` (the last).
---```lua
---local input = cfn.wrap(vim.ui.input, 2)
---local text = input({ prompt = "> " }):await()
---```
---@param fn function
---@param argc integer
---@param cancel? fun(handle: any)
---@return fun(...): cfuture.Future
function M.wrap(fn, argc, cancel) end
---A future that completes in a later vim.schedule callback: await it in
---a long loop to let Neovim handle input and redraw.
---@return cfuture.Future
function M.schedule() end

---@class cfuture.nvim.AutocmdOpts
---@field pattern? string|string[]
---@field buffer? integer
---@field group? integer|string
---@field capacity? integer autocmds only: events kept (oldest dropped beyond)

---A future of the next `event`: the callback's argument table ({event,
---match, buf, file, data, ...}). Dropping it deletes the autocommand.
---@param event string|string[]
---@param opts? cfuture.nvim.AutocmdOpts
---@return cfuture.Future
function M.autocmd(event, opts) end
---A stream of `event`s from now on; inside a task the autocommand is
---deleted when the function that made it ends.
---@param event string|string[]
---@param opts? cfuture.nvim.AutocmdOpts
---@return cfuture.nvim.Events
function M.autocmds(event, opts) end

---@class cfuture.nvim.Events
---@field dropped integer events dropped for lack of capacity
local Events = {}
---The next event's argument table, or nil once closed.
---@return cfuture.Future
function Events:next() end
---`for args in events:iter() do ... end` inside a task.
---@return fun(): table?
function Events:iter() end
---Delete the autocommand; queued events can still be read.
function Events:close() end

---@class cfuture.nvim.JobOpts
---@field cwd? string
---@field env? table<string, string>
---@field clear_env? boolean
---@field stdin? "null"|"pipe" default "null"
---@field stdout? boolean read stdout as lines (default true)
---@field stderr? boolean read stderr as lines (default true)
---@field detach? boolean the job outlives the function that started it

---Start `cmd` with vim.fn.jobstart (a list: no shell; a string: through
---'shell'). Inside a task, unless `detach`, the job is stopped when the
---function that started it ends. Neovim reads all of a job's output as it
---comes: for large outputs `cf.process` (read as fast as the task takes
---it) keeps the editor more responsive.
---@param cmd string[]|string
---@param opts? cfuture.nvim.JobOpts
---@return cfuture.nvim.Job|nil job
---@return string? err
function M.job(cmd, opts) end

---@class cfuture.nvim.Job
---@field id integer the job (channel) id
---@field pid integer
---@field code integer? the exit code once exited
local Job = {}
---`for line in job:lines() do ... end` inside a task (cancel-safe).
---@param which? "stdout"|"stderr"
---@return fun(): string?
function Job:lines(which) end
---A future of the next line, nil at the end.
---@param which? "stdout"|"stderr"
---@return cfuture.Future
function Job:read_line(which) end
---A future of the exit code (128 + n for signal n) and, for a job stopped
---by `kill`, the signal number. Dropping it while the job runs stops it.
---@return cfuture.Future
function Job:wait() end
---Stop the job (jobstop), or send `sig` to its process; true if it ran.
---@param sig? string|integer
---@return boolean
function Job:kill(sig) end
---Write to the job's stdin (stdin = "pipe").
---@param data string|string[]
---@return boolean
function Job:write(data) end
---Close the job's stdin.
---@return boolean
function Job:close_stdin() end
---@return boolean
function Job:is_running() end

---@class cfuture.nvim.SystemResult
---@field code integer
---@field signal integer
---@field stdout string
---@field stderr string

---@class cfuture.nvim.SystemOpts
---@field cwd? string
---@field env? table<string, string>
---@field stdin? string written to the process, then closed
---@field timeout? integer ms, then the process is killed

---A future of a `cfuture.nvim.SystemResult` for `cmd`, through vim.system
---where Neovim has it (0.10+), else jobstart. Starts when first awaited;
---dropping the future kills the process.
---@param cmd string[]
---@param opts? cfuture.nvim.SystemOpts
---@return cfuture.Future
function M.system(cmd, opts) end

---@class cfuture.nvim.ui
local ui = {}
---vim.ui.select as a future of `item, index` (nil when dismissed).
---@param items any[]
---@param opts? table vim.ui.select's options
---@return cfuture.Future
function ui.select(items, opts) end
---vim.ui.input as a future of the text (nil when dismissed).
---@param opts? table vim.ui.input's options
---@return cfuture.Future
function ui.input(opts) end

---@class cfuture.nvim.lsp
local lsp = {}
---A future of `result`, or `nil, err` ({code, message}), for a request to
---one client (object or id). Dropping it sends $/cancelRequest.
---@param client table|integer
---@param method string
---@param params? table
---@param bufnr? integer
---@return cfuture.Future
function lsp.request(client, method, params, bufnr) end
---A future of `{ [client_id] = {result = ..., error = ...} }` from every
---client of `bufnr` that supports `method`; dropping it cancels them.
---@param bufnr integer
---@param method string
---@param params? table
---@return cfuture.Future
function lsp.request_all(bufnr, method, params) end

return M
