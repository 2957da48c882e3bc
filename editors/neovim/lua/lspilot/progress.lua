-- Progress in the command line: while an action runs, its work-done progress (the
-- server's messages as sent: "Asking the model…", "Running the tests…") is echoed in
-- one line, never into :messages and never long enough for a hit-enter prompt. The end
-- is not echoed here: jobs.lua says it once, with vim.notify.
local config = require("lspilot.config")

local api = vim.api
local M = {}

--- What was echoed last (nil once cleared): the plugin's, so only it is cleared.
M.echoed = nil

--- "lspilot: Refactor: Asking the model…" from a progress title and message.
function M.text(title, message)
  title = tostring(title or ""):gsub("^lspilot:%s*", "", 1)
  local text = "lspilot: " .. title
  if type(message) == "string" and message ~= "" then
    text = (title ~= "" and text .. ": " or text) .. message
  end
  -- One line: a line break would make the echo ask for Enter.
  return (text:gsub("%s*\n%s*", " "))
end

-- Whether an echo now would disturb the user: typing a command line, a prompt waiting,
-- or no command line at all ('cmdheight' 0, 0.8+: an echo there may ask for Enter; the
-- statusline component still says it).
local function busy()
  local mode = api.nvim_get_mode()
  local m = mode.mode:sub(1, 1)
  return mode.blocking or m == "c" or m == "r" or vim.o.cmdheight == 0
end

--- Echoes `text` in the command line (not kept in :messages), cut to fit.
function M.echo(text)
  if not config.options.echo_progress or busy() then
    return
  end
  -- v:echospace: the columns an echo may take without scrolling or a prompt.
  local room = math.max(10, (tonumber(vim.v.echospace) or vim.o.columns - 12) - 1)
  if vim.fn.strdisplaywidth(text) > room then
    text = vim.fn.strcharpart(text, 0, room - 1) .. "…"
  end
  api.nvim_echo({ { text } }, false, {})
  M.echoed = text
end

--- Clears the command line if it still shows the plugin's echo.
function M.clear()
  if M.echoed == nil then
    return
  end
  M.echoed = nil
  if config.options.echo_progress and not busy() then
    api.nvim_echo({ { "" } }, false, {})
  end
end

return M
