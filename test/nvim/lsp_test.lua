-- The LSP example (examples/nvim/lua/lsp_outline) against a real language
-- server: clangd (Debian: clangd) on a small C file. Without clangd the
-- test is skipped (the API's own LSP test, api_test.lua, uses
-- test/nvim/fake_lsp.py).
-- - the outline lists the file's functions and the struct with its field;
-- - a hover request dropped by a timeout of 0 ms is cancelled (no result is
--   delivered later, and the client has no request left pending);
-- - wiping the buffer cancels an outline task still waiting.
local T = require "cfuture.nvim.test"
local cfn = require "cfuture.nvim"
local cf = cfn.cf
local api = vim.api
local tmp = os.getenv("CF_NVIM_TMP")
local root = os.getenv("CF_NVIM_ROOT")
vim.opt.rtp:append(root .. "/examples/nvim")
local outline = require "lsp_outline"

if vim.fn.executable("clangd") == 0 then
  io.stdout:write("1..0 # SKIP clangd is not installed (Debian: clangd)\n")
  vim.cmd("qa!")
  return
end

local src = tmp .. "/demo.c"
do
  local f = assert(io.open(src, "w"))
  f:write([[
struct point { int x; int y; };

static int square(int v) { return v * v; }

int norm2(struct point p) {
  return square(p.x) + square(p.y);
}

int main(void) {
  struct point p = { 3, 4 };
  return norm2(p) == 25 ? 0 : 1;
}
]])
  f:close()
end

local function pending(client)
  local n = 0
  for _, r in pairs(client.requests or {}) do
    if r.type == "pending" then n = n + 1 end
  end
  return n
end

T.run({
  { "outline of a C file from clangd", function()
    vim.cmd("edit " .. src)
    local buf = api.nvim_get_current_buf()
    local id = vim.lsp.start_client({ name = "clangd", cmd = { "clangd", "--log=error" }, root_dir = tmp })
    T.ok(id, "clangd started")
    vim.lsp.buf_attach_client(buf, id)
    local client = vim.lsp.get_client_by_id(id)
    T.ok(T.wait_for(function() return client.initialized end, 20000):await(), "clangd initialized")
    -- clangd parses on didOpen; the first outline may wait for it
    local syms, why = outline.symbols(buf, 20000):await()
    T.ok(syms, "no symbols: " .. tostring(why))
    local names = {}
    for _, s in ipairs(syms) do names[#names + 1] = string.rep(">", s.depth) .. s.name .. "@" .. s.line end
    table.sort(names)
    T.eq(names, { ">x@1", ">y@1", "main@9", "norm2@5", "point@1", "square@3" })

    -- dropped at once: cancelled, and no result arrives afterwards
    local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 4, character = 5 } }
    local sent, cancelled = {}, {}
    local orig_req, orig_cancel = client.request, client.cancel_request
    client.request = function(...)
      local ok, rid = orig_req(...)
      sent[#sent + 1] = rid
      return ok, rid
    end
    client.cancel_request = function(rid)
      cancelled[#cancelled + 1] = rid
      return orig_cancel(rid)
    end
    T.eq({ cf.timeout(0, cfn.lsp.request(client, "textDocument/hover", params, buf)):await() }, { nil, "timeout" })
    client.request, client.cancel_request = orig_req, orig_cancel
    T.eq(#sent, 1)
    T.eq(cancelled, sent, "client.cancel_request called with the request's id")
    T.ok(T.wait_for(function() return pending(client) == 0 end, 5000):await(), "a request is still pending")
    -- the same request awaited gives the hover text
    local hover = cfn.lsp.request(client, "textDocument/hover", params, buf):await()
    T.ok(hover and vim.inspect(hover):find("norm2", 1, true), vim.inspect(hover))

    -- the location list, from the command
    local h = outline.show()
    T.eq(#h:await(), 6)
    local items = vim.fn.getloclist(0)
    T.eq(#items, 6)
    T.eq(items[1].lnum > 0, true)

    -- wiping the buffer cancels an outline that waits (a server that
    -- never answers: the request is stopped first)
    local other = api.nvim_create_buf(true, false)
    api.nvim_buf_set_name(other, tmp .. "/other.c")
    vim.lsp.buf_attach_client(other, id)
    local orig = client.request
    client.request = function(method, p, handler, b) -- swallow: the request never completes
      if method == "textDocument/documentSymbol" then return true, 999999 end
      return orig(method, p, handler, b)
    end
    api.nvim_set_current_buf(other)
    local waiting = outline.show()
    cf.sleep(20):await()
    T.eq(waiting:is_finished(), false)
    client.request = orig
    vim.cmd("bwipeout! " .. other)
    local ok, err = pcall(waiting.await, waiting)
    T.ok(not ok and cf.is_cancelled(err), "the outline task was cancelled: " .. tostring(err))
    vim.lsp.stop_client(id, true)
  end },
}, { timeout = 60000 })
