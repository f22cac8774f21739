-- The live-grep example (examples/nvim) under load, keys fed with
-- nvim_input while rg (or grep: CF_NVIM_ARGS=grep) searches a large
-- generated tree:
-- - every keystroke is handled (the prompt's change seen by the picker)
--   within 50 ms of being fed;
-- - no line of a cancelled search ever appears: every line the results
--   buffer receives contains the query typed at that moment;
-- - no rg/grep process outlives its search by more than 1.5 s, none is
--   left at the end;
-- - a search left to finish delivers exactly the matching lines;
-- - <C-n> <CR> opens the selected match.
-- Measurements go to $CF_NVIM_TMP/measure (bench/nvim reads them).
local T = require "cfuture.nvim.test"
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local uv = vim.loop
local api = vim.api
local tmp = os.getenv("CF_NVIM_TMP")
local root = os.getenv("CF_NVIM_ROOT")
local args = os.getenv("CF_NVIM_ARGS") or ""
local tool = args:match("grep") and "grep" or "rg"
if tool == "rg" and vim.fn.executable("rg") == 0 then
  io.stdout:write("# rg is not installed (Debian: ripgrep): testing with grep\n")
  tool = "grep"
end
local backend = args:match("job") and "job" or "process"
-- the picker test proper asserts the 50 ms bar; bench/nvim/run.sh also
-- measures the jobstart backend, which does not meet it
local strict = not args:match("job")
vim.opt.rtp:append(root .. "/examples/nvim")
vim.o.showmode = false
local LG = require "live_grep"

-- the tree: FILES files of LINES lines of five 5-letter words over "abcd";
-- "needle" is planted on 7 lines
local FILES, LINES = 160, 4000
local tree = tmp .. "/tree"
local expected_abcd, needles = 0, {}
do
  vim.fn.mkdir(tree .. "/sub", "p")
  math.randomseed(7)
  local letters = { "a", "b", "c", "d" }
  local plant = {}
  for i = 1, 7 do plant[(i * 37) % FILES + 1 .. ":" .. (i * 523) % LINES + 1] = true end
  for f = 1, FILES do
    local name = (f % 2 == 0 and "sub/" or "") .. "f" .. f .. ".txt"
    local out = {}
    for l = 1, LINES do
      local words = {}
      for w = 1, 5 do
        local s = {}
        for k = 1, 5 do s[k] = letters[math.random(4)] end
        words[w] = table.concat(s)
      end
      local line = table.concat(words, " ")
      if plant[f .. ":" .. l] then
        line = line .. " needle"
        needles[#needles + 1] = name .. ":" .. l .. ":" .. line
      end
      if line:find("abcd", 1, true) then expected_abcd = expected_abcd + 1 end
      out[l] = line
    end
    local fh = assert(io.open(tree .. "/" .. name, "w"))
    fh:write(table.concat(out, "\n"), "\n")
    fh:close()
  end
  table.sort(needles)
end

local function percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return -1 end
  return s[math.max(1, math.ceil(#s * p))]
end

local measure = {}
local function record(k, v) measure[#measure + 1] = k .. "=" .. tostring(v) end

T.run({ { "live grep under load", function()
  local fed_at, latencies = nil, {}
  local picker
  picker = LG.open({ cwd = tree, tool = tool, backend = backend, max_results = 100000, on_query = function(q)
    if fed_at then
      latencies[#latencies + 1] = (uv.hrtime() - fed_at) / 1e6
      if os.getenv("CF_NVIM_VERBOSE") then io.stdout:write(("# %q %.2f ms\n"):format(q, latencies[#latencies])) end
      fed_at = nil
    end
    -- the old results are gone the moment the query changes
    T.eq(api.nvim_buf_line_count(picker.results_buf), 1, "results cleared")
    T.eq(api.nvim_buf_get_lines(picker.results_buf, 0, 1, false)[1], "")
  end })
  T.eq(picker.tool, tool)

  -- every line arriving in the results must contain the current query
  local stale, received = {}, 0
  api.nvim_buf_attach(picker.results_buf, false, {
    on_lines = function(_, buf, _, first, _, last_new)
      for _, l in ipairs(api.nvim_buf_get_lines(buf, first, last_new, false)) do
        if l ~= "" then
          received = received + 1
          local text = l:match("^.-:%d+:(.*)$") or l
          if not text:find(picker.query, 1, true) and #stale < 5 then
            stale[#stale + 1] = ("%q while the query was %q"):format(l, picker.query)
          end
        end
      end
    end,
  })

  -- pids of cancelled searches must be gone 1.5 s after the cancel
  local lingering = {}
  local function watch_old(gen)
    local s = picker.searches[gen]
    if not (s and s.pid) or s.done then return end
    local pid = s.pid
    vim.defer_fn(function()
      if T.alive(pid) then lingering[#lingering + 1] = pid end
    end, 1500)
  end

  local function key(k, wait)
    local gen = picker.generation
    fed_at = uv.hrtime()
    api.nvim_input(k)
    T.ok(T.wait_for(function() return fed_at == nil end, 2000, 1):await(), "key " .. k .. " not handled")
    watch_old(gen)
    cf.sleep(wait):await()
  end

  cf.sleep(50):await()
  math.randomseed(11)
  for _ = 1, 5 do
    for _, k in ipairs({ "a", "b", "c", "d" }) do key(k, math.random(20, 150)) end
    for _ = 1, 4 do key("<BS>", math.random(20, 150)) end
  end
  local busy = 0
  for _, s in pairs(picker.searches) do if s.count > 1000 then busy = busy + 1 end end
  T.ok(busy >= 5, "searches were under load (" .. busy .. " streamed over 1000 lines)")

  -- "abcd", left to finish: every matching line, once
  for _, k in ipairs({ "a", "b", "c", "d" }) do key(k, 30) end
  local s = picker.searches[picker.generation]
  T.ok(T.wait_for(function() return s.done end, 30000):await(), "abcd search finished")
  T.eq(s.query, "abcd")
  T.eq(s.count, expected_abcd, "matches")
  T.eq(api.nvim_buf_line_count(picker.results_buf), expected_abcd)
  T.ok(picker.progress_text:find(expected_abcd .. " matches", 1, true), picker.progress_text)
  record("abcd_matches", expected_abcd)
  record("abcd_search_ms", math.floor((s.ended - s.started) / 1e6))

  for _ = 1, 4 do key("<BS>", 20) end
  for k in ("needle"):gmatch(".") do key(k, 40) end
  s = picker.searches[picker.generation]
  T.ok(T.wait_for(function() return s.done end, 10000):await(), "needle search finished")
  local got = api.nvim_buf_get_lines(picker.results_buf, 0, -1, false)
  table.sort(got)
  T.eq(got, needles)

  T.eq(stale, {}, "lines of a cancelled search")
  T.ok(received > 10000, "lines streamed into the results: " .. received)
  cf.sleep(1600):await()
  T.eq(lingering, {}, "processes alive 1.5 s after their search was cancelled")
  for _, sr in pairs(picker.searches) do
    if sr.pid then T.ok(not T.alive(sr.pid), "pid " .. sr.pid .. " (" .. sr.query .. ") still alive") end
  end
  local ps = cfn.system({ "pgrep", "-P", tostring(vim.fn.getpid()), "-x", tool }):await()
  T.eq(ps.stdout, "", "child " .. tool .. " processes")

  -- the keystrokes
  local worst = 0
  for _, v in ipairs(latencies) do worst = math.max(worst, v) end
  record("tool", tool)
  record("backend", backend)
  record("keys", #latencies)
  record("key_p50_ms", ("%.2f"):format(percentile(latencies, 0.5)))
  record("key_p99_ms", ("%.2f"):format(percentile(latencies, 0.99)))
  record("key_max_ms", ("%.2f"):format(worst))
  record("lines_received", received)
  local searches = 0
  for _ in pairs(picker.searches) do searches = searches + 1 end
  record("searches", searches)
  local f = assert(io.open(tmp .. "/measure", "w"))
  f:write(table.concat(measure, "\n"), "\n")
  f:close()
  io.stdout:write("# " .. table.concat(measure, " "), "\n")
  T.eq(#latencies, 54, "keystrokes handled")
  T.ok(worst < 50 or not strict, ("a keystroke took %.1f ms (p50 %.2f, p99 %.2f)"):format(worst,
    percentile(latencies, 0.5), percentile(latencies, 0.99)))

  -- open the second match
  api.nvim_input("<C-n>")
  cf.sleep(50):await()
  local row = api.nvim_win_get_cursor(picker.results_win)[1]
  local want = api.nvim_buf_get_lines(picker.results_buf, row - 1, row, false)[1]
  T.eq(row, 2)
  api.nvim_input("<CR>")
  cf.sleep(100):await()
  local path, lnum = want:match("^(.-):(%d+):")
  T.eq(api.nvim_buf_get_name(0), tree .. "/" .. path)
  T.eq(api.nvim_win_get_cursor(0)[1], tonumber(lnum))
  T.ok(api.nvim_get_current_line():find("needle", 1, true))
end } }, { timeout = 90000 })
