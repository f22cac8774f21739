-- Neovim plugin entry: put this repository (or the installed rock's
-- directory) on 'runtimepath'. The runtime is attached lazily, by the first
-- require "cfuture.nvim" call that spawns or attaches (which also hooks
-- VimLeavePre: before Neovim exits the tasks started through it are
-- cancelled and it detaches, so that :qa never waits on it).
if vim.g.loaded_cfuture then return end
vim.g.loaded_cfuture = true
if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_err_writeln("cfuture: Neovim 0.7 or later is needed")
  return
end

-- the driver's state and the task tree (cf.dump) in a scratch buffer
vim.api.nvim_create_user_command("CfutureStatus", function()
  require("cfuture.nvim").status()
end, {})
