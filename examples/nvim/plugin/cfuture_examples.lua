-- The examples' commands. :CfLiveGrep [dir] — the live-grep picker (needs the
-- cfuture plugin on 'runtimepath' as well).
if vim.g.loaded_cfuture_live_grep then return end
vim.g.loaded_cfuture_live_grep = true
vim.api.nvim_create_user_command("CfLiveGrep", function(o)
  require("live_grep").open({ cwd = o.args ~= "" and vim.fn.fnamemodify(o.args, ":p"):gsub("/$", "") or nil })
end, { nargs = "?", complete = "dir" })

-- :CfOutline — the current buffer's symbols from its language servers
-- into the location list (examples/nvim/lua/lsp_outline).
vim.api.nvim_create_user_command("CfOutline", function()
  require("lsp_outline").show()
end, {})
