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

require("lspilot").setup({
  cmd = cmd,
  filetypes = { "python" },
  notify_done = true,
})
