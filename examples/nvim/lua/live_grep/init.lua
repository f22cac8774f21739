-- A live-grep picker on cfuture.nvim: every keystroke in the prompt cancels
-- the running search (its rg/grep process is stopped) and starts a new one
-- whose matches stream into the results window in batches; progress shows
-- at the end of the prompt line; <CR> opens the selected match.
--
--   :set rtp+=examples/nvim   then   :CfLiveGrep [dir]
--   <C-n>/<C-p> (or <Down>/<Up>) select, <CR> opens, <Esc> closes.
--
-- Each search is one task started with cfn.spawn; its process (a
-- cf.process, or a cfn.job) is killed by a cf.defer of that task, so
-- aborting the task (the next keystroke, closing the picker) stops the
-- process, and an aborted task never runs again: a cancelled search cannot
-- write one more line.
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local uv = vim.uv or vim.loop
local api = vim.api

local M = {}

local ns = api.nvim_create_namespace("cfuture_live_grep")
local PROMPT = "> "

local function command(tool, query)
  if tool == "rg" then
    return { "rg", "--line-number", "--no-heading", "--color=never", "--fixed-strings", "--", query, "." }
  end
  return { "grep", "-rnIF", "--", query, "." }
end

local Picker = {}
Picker.__index = Picker

--- Open a picker on directory opts.cwd (default: the current directory).
-- opts.tool: "rg" or "grep" (default rg when executable); opts.backend:
-- "process" (cf.process, default) or "job" (vim.fn.jobstart); opts.max_results:
-- lines shown (default 10000; the rest are counted); opts.batch: lines per
-- redraw (default 200); opts.on_query(query, picker): called when a
-- keystroke has been handled (tests measure latency with it).
function M.open(opts)
  opts = opts or {}
  local self = setmetatable({
    cwd = opts.cwd or vim.fn.getcwd(),
    tool = opts.tool or (vim.fn.executable("rg") == 1 and "rg" or "grep"),
    max_results = opts.max_results or 10000,
    backend = opts.backend or "process",
    batch = opts.batch or 200,
    on_query = opts.on_query,
    query = "",
    generation = 0,
    searches = {}, -- generation -> {query, pid, count, done, code}
  }, Picker)

  self.results_buf = api.nvim_create_buf(false, true)
  self.prompt_buf = api.nvim_create_buf(false, true)
  vim.bo[self.prompt_buf].buftype = "prompt"
  vim.bo[self.prompt_buf].bufhidden = "wipe"
  vim.bo[self.results_buf].bufhidden = "wipe"
  -- no undo history: clearing 100000 results would copy them all into it
  vim.bo[self.results_buf].undolevels = -1
  vim.fn.prompt_setprompt(self.prompt_buf, PROMPT)

  vim.cmd("botright new")
  self.results_win = api.nvim_get_current_win()
  api.nvim_win_set_buf(self.results_win, self.results_buf)
  vim.wo[self.results_win].cursorline = true
  vim.cmd("belowright 1new")
  self.prompt_win = api.nvim_get_current_win()
  api.nvim_win_set_buf(self.prompt_win, self.prompt_buf)

  local buf = self.prompt_buf
  api.nvim_create_autocmd({ "TextChangedI", "TextChanged" }, {
    buffer = buf,
    callback = function() self:changed() end,
  })
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function() self:stop() end,
  })
  local function map(lhs, fn) vim.keymap.set({ "i", "n" }, lhs, fn, { buffer = buf }) end
  map("<C-n>", function() self:move(1) end)
  map("<Down>", function() self:move(1) end)
  map("<C-p>", function() self:move(-1) end)
  map("<Up>", function() self:move(-1) end)
  map("<CR>", function() self:open_selected() end)
  map("<Esc>", function() self:close() end)
  vim.cmd("startinsert")
  self:progress("")
  return self
end

function Picker:progress(text)
  if not api.nvim_buf_is_valid(self.prompt_buf) then return end
  api.nvim_buf_clear_namespace(self.prompt_buf, ns, 0, -1)
  api.nvim_buf_set_extmark(self.prompt_buf, ns, 0, 0, {
    virt_text = { { text, "Comment" } },
    virt_text_pos = "eol",
  })
  self.progress_text = text
end

--- The prompt's text changed: cancel the running search, start another.
function Picker:changed()
  local line = api.nvim_buf_get_lines(self.prompt_buf, -2, -1, false)[1] or ""
  local query = line:sub(1, #PROMPT) == PROMPT and line:sub(#PROMPT + 1) or line
  if query == self.query then return end
  self.query = query
  self:search(query)
  if self.on_query then self.on_query(query, self) end
end

function Picker:stop()
  -- cfn.abort wakes the driver: the search's process is killed now, even
  -- when no new search follows (an emptied prompt, <Esc>, a wiped buffer)
  if self.task then cfn.abort(self.task) end
  self.task = nil
end

function Picker:search(query)
  self:stop()
  self.generation = self.generation + 1
  local gen = self.generation
  -- the old results go now, not when the new search starts
  api.nvim_buf_set_lines(self.results_buf, 0, -1, false, {})
  if query == "" then
    self:progress("")
    return
  end
  local s = { query = query, count = 0, shown = 0, done = false, started = uv.hrtime() }
  self.searches[gen] = s
  self:progress("searching…")
  self.task = cfn.spawn({ function()
    local lines, wait = self:start_process(query, s)
    if not lines then
      self:progress(wait)
      return
    end
    local batch, last = {}, uv.hrtime()
    local function flush()
      if #batch > 0 then
        local first = s.shown == 0 and 0 or -1
        api.nvim_buf_set_lines(self.results_buf, first, -1, false, batch)
        s.shown = s.shown + #batch
        batch = {}
      end
      self:progress(("searching… %d"):format(s.count))
      last = uv.hrtime()
    end
    for line in lines do
      s.count = s.count + 1
      if s.shown + #batch < self.max_results then
        batch[#batch + 1] = line:sub(1, 2) == "./" and line:sub(3) or line
      end
      -- hand the editor back at least every batch lines or 10 ms
      if #batch >= self.batch or (s.count % 256 == 0 and uv.hrtime() - last > 10e6) then
        flush()
        cfn.schedule():await()
      end
    end
    flush()
    s.code = wait()
    s.done = true
    s.ended = uv.hrtime()
    if s.count == 0 then
      self:progress(s.code == 1 and "no matches" or ("exit " .. s.code))
    else
      self:progress(("%d matches%s"):format(s.count, s.count > s.shown and (", " .. s.shown .. " shown") or ""))
    end
  end, name = "live_grep: " .. query })
end

-- The search's process and an iterator over its lines, both stopped when
-- the search task ends (returns or is cancelled). backend "process":
-- cfuture's own cf.process, read only as fast as the task takes lines
-- (the pipe holds rg back); backend "job": vim.fn.jobstart through
-- cfn.job, where Neovim reads all output at once, however fast it comes.
function Picker:start_process(query, s)
  local cmd = command(self.tool, query)
  if self.backend == "job" then
    local job, err = cfn.job(cmd, { cwd = self.cwd, stderr = false })
    if not job then return nil, err end
    s.pid = job.pid
    return job:lines(), function() return job:wait():await() end
  end
  local spec = { cwd = self.cwd, stdin = "null", stdout = "pipe", stderr = "null" }
  for i, a in ipairs(cmd) do spec[i] = a end
  local p, err = cf.process.spawn(spec)
  if not p then return nil, err end
  cf.defer(function()
    if not p:status() then p:kill("SIGKILL") end
  end)
  s.pid = p.pid
  return p.stdout:lines(), function() return p:wait():await() end
end

function Picker:move(d)
  local n = api.nvim_buf_line_count(self.results_buf)
  local row = api.nvim_win_get_cursor(self.results_win)[1] + d
  if row < 1 then row = 1 elseif row > n then row = n end
  api.nvim_win_set_cursor(self.results_win, { row, 0 })
end

--- Open the selected match: file, line, in the window the picker came from.
function Picker:open_selected()
  local row = api.nvim_win_get_cursor(self.results_win)[1]
  local line = api.nvim_buf_get_lines(self.results_buf, row - 1, row, false)[1] or ""
  local path, lnum = line:match("^(.-):(%d+):")
  if not path then return end
  local cwd = self.cwd
  self:close()
  vim.cmd("stopinsert")
  vim.cmd("edit " .. vim.fn.fnameescape(cwd .. "/" .. path))
  api.nvim_win_set_cursor(0, { tonumber(lnum), 0 })
  self.opened = { path = path, lnum = tonumber(lnum) }
end

function Picker:close()
  self:stop()
  for _, w in ipairs({ self.prompt_win, self.results_win }) do
    if api.nvim_win_is_valid(w) and #api.nvim_list_wins() > 1 then api.nvim_win_close(w, true) end
  end
end

M.Picker = Picker
return M
