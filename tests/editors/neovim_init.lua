-- Minimal init for the headless Neovim tests (tests/editors/test_neovim.py):
-- the plugin from this checkout on the runtimepath, the server command from
-- $LSPILOT_TEST_CMD (a JSON list), nothing from the user's config.
local here = debug.getinfo(1, "S").source:sub(2)
local repo = vim.fn.fnamemodify(here, ":p:h:h:h")
vim.opt.runtimepath:prepend(repo .. "/editors/neovim")
vim.opt.swapfile = false
vim.opt.shortmess:append("F")

local cmd = { "lspilot" }
if os.getenv("LSPILOT_TEST_CMD") then
  cmd = vim.fn.json_decode(os.getenv("LSPILOT_TEST_CMD"))
end

local spec = os.getenv("LSPILOT_TEST_SPEC") and vim.fn.json_decode(os.getenv("LSPILOT_TEST_SPEC")) or {}

if spec.cmd then
  cmd = spec.cmd -- e.g. a server that is not installed
end

if spec.log_level then
  -- lsp.log keeps WARN and above by default; the log tests want the server's INFO lines.
  vim.lsp.set_log_level(spec.log_level)
end

if spec.user_highlight then
  -- The user's own highlight, set before the plugin loads (as a colorscheme would be).
  vim.cmd(spec.user_highlight)
end

if spec.mode == "enable" then
  -- Neovim 0.11+: the shipped lsp/lspilot.lua, no setup() call.
  vim.lsp.config("lspilot", { cmd = cmd, filetypes = { "python" } })
  vim.lsp.enable("lspilot")
else
  local options = {
    cmd = cmd,
    filetypes = { "python" },
    notify_done = true,
    settings = spec.settings or {},
    suggestion = spec.suggestion,
    -- Next edit suggestions ask the upstream after any change: off unless a test turns
    -- them on (spec.options.next_edit), so other tests' upstream sees only their own.
    next_edit = false,
    health_timeout = spec.health_timeout,
  }
  -- Options a test passes as they are, bad ones included.
  for key, value in pairs(spec.options or {}) do
    options[key] = value
  end
  require("lspilot").setup(options)
end
