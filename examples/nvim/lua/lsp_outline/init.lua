-- An outline of the current buffer from its language servers, awaited
-- with cfuture.nvim: one textDocument/documentSymbol request to every
-- client of the buffer, with a timeout; the symbols go to the location
-- list. :CfOutline (examples/nvim/plugin/cfuture_examples.lua defines it).
--
-- The task is tied to the buffer (cfn.spawn_for_buf): wiping the buffer
-- cancels it, and cancelling drops the requests, which sends
-- $/cancelRequest to the servers still working.
local cfn = require "cfuture.nvim"
local cf = cfn.cf

local M = {}

local function flatten(symbols, out, depth)
  for _, s in ipairs(symbols or {}) do
    local range = s.selectionRange or s.range or (s.location and s.location.range)
    out[#out + 1] = { name = s.name, kind = s.kind, depth = depth, line = range and range.start.line + 1 or 1 }
    flatten(s.children, out, depth + 1)
  end
  return out
end

--- A future of the buffer's symbols, {name, kind, depth, line} in the
-- servers' order, or nil and "timeout" after `ms` (default 5000).
function M.symbols(bufnr, ms)
  bufnr = bufnr == 0 and vim.api.nvim_get_current_buf() or bufnr
  return cf.async(function()
    local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) } }
    local all, why = cf.timeout(ms or 5000, cfn.lsp.request_all(bufnr, "textDocument/documentSymbol", params)):await()
    if not all then return nil, why end
    local out = {}
    for _, r in pairs(all) do
      if r.result then flatten(r.result, out, 0) end
    end
    return out
  end)()
end

--- Fill the location list of the current window with the outline.
function M.show()
  local buf, win = vim.api.nvim_get_current_buf(), vim.api.nvim_get_current_win()
  return cfn.spawn_for_buf(buf, function()
    local syms, why = M.symbols(buf):await()
    if not syms then
      vim.notify("outline: " .. tostring(why), vim.log.levels.WARN)
      return
    end
    local items = {}
    for _, s in ipairs(syms) do
      items[#items + 1] = { bufnr = buf, lnum = s.line, text = string.rep("  ", s.depth) .. s.name }
    end
    if vim.api.nvim_win_is_valid(win) then
      vim.fn.setloclist(win, {}, " ", { title = "outline", items = items })
    end
    return syms
  end)
end

return M
