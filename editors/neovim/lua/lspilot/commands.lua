-- The user commands (:help lspilot-commands).
local jobs = require("lspilot.jobs")
local util = require("lspilot.util")

local api = vim.api
local M = {}

local SUGGESTION_ACTIONS = { "toggle", "enable", "disable", "status" }

local function suggestion_command(o)
  local suggestion = require("lspilot.suggestion")
  local what = vim.trim(o.args or "")
  if what == "" then
    what = "toggle"
  end
  if what == "toggle" then
    suggestion.set_enabled(not suggestion.is_enabled())
  elseif what == "enable" then
    suggestion.set_enabled(true)
  elseif what == "disable" then
    suggestion.set_enabled(false)
  elseif what ~= "status" then
    util.notify(":LspilotSuggestion takes one of " .. table.concat(SUGGESTION_ACTIONS, ", ") .. ", not `" .. what .. "`", vim.log.levels.ERROR)
    return
  end
  util.notify("suggestions " .. (suggestion.is_enabled() and "on" or "off") .. " (" .. suggestion.engine() .. ")")
end

function M.create()
  local function create(name, fn, opts)
    opts.force = true
    api.nvim_create_user_command(name, fn, opts)
  end
  create("LspilotExplain", function(o)
    jobs.run(jobs.COMMANDS.explain, { cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: explain the selection" })
  create("LspilotRefactor", function(o)
    jobs.run(jobs.COMMANDS.refactor, { cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: refactor the selection [instruction]" })
  create("LspilotTests", function(o)
    jobs.run(jobs.COMMANDS.tests, { cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: write tests for the selection [instruction]" })
  create("LspilotFocus", function()
    if not jobs.focus() then
      util.notify("no explanation window is open")
    end
  end, { nargs = 0, desc = "lspilot: enter the explanation window (q there closes it)" })
  create("LspilotTestOutput", function()
    require("lspilot.testrun").show()
  end, { nargs = 0, desc = "lspilot: the last test run's output in a scratch buffer" })
  create("LspilotCancel", function()
    if jobs.cancel() == 0 then
      util.notify("nothing to cancel")
    end
  end, { nargs = 0, desc = "lspilot: cancel running actions" })
  create("LspilotStatus", function()
    require("lspilot.status").show()
  end, { nargs = 0, desc = "lspilot: the server's status and this session's usage and cost" })
  create("LspilotChat", function(o)
    require("lspilot.chat").open(o.args, o)
  end, { range = true, nargs = "*", desc = "lspilot: chat [message] (a range: the selection goes with it)" })
  create("LspilotAgent", function(o)
    require("lspilot.chat").open(o.args, o, "agent")
  end, { range = true, nargs = "*", desc = "lspilot: agent mode [message]: the model reads, edits and runs in the workspace" })
  create("LspilotChatApply", function()
    require("lspilot.chat").apply()
  end, { nargs = 0, desc = "lspilot: apply the chat's code block under the cursor to the last selection" })
  create("LspilotChatNew", function()
    require("lspilot.chat").new()
  end, { nargs = 0, desc = "lspilot: start a new chat conversation" })
  create("LspilotSuggestion", suggestion_command, {
    nargs = "?",
    complete = function()
      return SUGGESTION_ACTIONS
    end,
    desc = "lspilot: ghost text on or off (toggle, enable, disable, status)",
  })
end

return M
