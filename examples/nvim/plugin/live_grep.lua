-- :CfLiveGrep [dir] — the live-grep picker of examples/nvim (needs the
-- cfuture plugin on 'runtimepath' as well).
if vim.g.loaded_cfuture_live_grep then return end
vim.g.loaded_cfuture_live_grep = true
vim.api.nvim_create_user_command("CfLiveGrep", function(o)
  require("live_grep").open({ cwd = o.args ~= "" and vim.fn.fnamemodify(o.args, ":p"):gsub("/$", "") or nil })
end, { nargs = "?", complete = "dir" })
