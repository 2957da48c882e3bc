-- Neovim 0.11+: `vim.lsp.enable("lspilot")` starts lspilot with this configuration.
-- Override any field with vim.lsp.config("lspilot", { ... }), e.g.
--   vim.lsp.config("lspilot", { cmd = { "/path/to/lspilot" }, settings = { lspilot = { model = "gpt-5-4-mini" } } })
-- Use either this or require("lspilot").setup(), not both.
local lspilot = require("lspilot")
local defaults = require("lspilot.config")

return {
  cmd = { "lspilot" },
  filetypes = defaults.filetypes,
  root_markers = defaults.root_markers,
  -- The plugin renders explanations in a floating window itself.
  init_options = { explainShow = "none" },
  settings = { lspilot = vim.empty_dict() },
  handlers = lspilot.handlers(),
  commands = lspilot.client_commands(),
  capabilities = lspilot.capabilities(),
  -- Ghost text for the buffer; keep it in an on_attach of your own:
  --   on_attach = function(client, bufnr) require("lspilot").on_attach(client, bufnr) ... end
  on_attach = lspilot.on_attach,
}
