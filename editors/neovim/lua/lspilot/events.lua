-- The plugin's User events (LspilotProgress, LspilotDone, LspilotSuggestion,
-- LspilotToolCall, LspilotNextEdit): fired here, the last one's data kept for Neovim
-- 0.7, whose autocmds carry no `data` (require("lspilot").last_event reads it).
local compat = require("lspilot.compat")

local M = {}

--- The data of the last event fired, or nil.
M.last = nil

--- Fires `User <pattern>` with `data` and redraws the statusline.
function M.fire(pattern, data)
  M.last = data
  compat.user_event(pattern, data)
  pcall(vim.cmd, "redrawstatus")
end

return M
