-- lspilot: user commands. The server starts once require("lspilot").setup() runs
-- (or, on Neovim 0.11+, with vim.lsp.enable("lspilot")). See :help lspilot.
if vim.g.loaded_lspilot == 1 then
  return
end
vim.g.loaded_lspilot = 1

if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_echo({ { "lspilot needs Neovim 0.7 or newer", "WarningMsg" } }, true, {})
  return
end

require("lspilot").create_commands()
