-- Neovim plugin entry: put this repository (or the installed rock's
-- directory) on 'runtimepath'. The runtime is attached lazily, by the first
-- require "cfuture.nvim" call that spawns or attaches; it detaches before
-- Neovim exits so that :qa never waits on it.
if vim.g.loaded_cfuture then return end
vim.g.loaded_cfuture = true

vim.api.nvim_create_autocmd("VimLeavePre", {
  callback = function()
    local ok, cfn = pcall(require, "cfuture.nvim")
    if ok then cfn.detach() end
  end,
})

vim.api.nvim_create_user_command("CfutureStatus", function()
  local cfn = require "cfuture.nvim"
  local n = #cfn.cf.tasks()
  print(("cfuture: %s, %d task(s), %d step(s)"):format(
    cfn.is_attached() and "attached" or "detached", n, cfn.steps()))
end, {})
