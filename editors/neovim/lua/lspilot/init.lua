-- lspilot for Neovim: starts the lspilot language server and drives its actions
-- (explain, refactor, write tests) on a visual range, ghost text as you type, status
-- and health. See :help lspilot.
--
-- The parts, one job each:
--   config.lua      defaults and the options in force
--   client.lua      the client's configuration, starting it, attaching buffers
--   server.lua      finding the running client, what it said, how to install it
--   events.lua      the User events (and the last one's data, for 0.7)
--   range.lua       the LSP Range of a selection or a command's lines
--   jobs.lua        actions: run, stream, progress, answer, cancel, User events
--   progress.lua    a running action's progress echoed in the command line
--   testrun.lua     Write tests' runs: the end message's words, :LspilotTestOutput
--   float.lua       the explanation window
--   chat.lua        the chat buffer (:LspilotChat, :LspilotAgent)
--   agent.lua       agent mode in words: steps, approvals, the turn's cost
--   ask.lua         the server's questions (approvals) through vim.ui.select
--   suggestion.lua  ghost text (inline completions)
--   nextedit.lua    next edit suggestions (textDocument/copilotInlineEdit)
--   status.lua      :LspilotStatus (the server's lspilot.status)
--   health.lua      :checkhealth lspilot
--   commands.lua    the user commands
--   compat.lua      the differences between Neovim 0.7 and newer
local client = require("lspilot.client")
local config = require("lspilot.config")
local events = require("lspilot.events")
local jobs = require("lspilot.jobs")
local range = require("lspilot.range")
local server = require("lspilot.server")
local util = require("lspilot.util")

local api = vim.api

local M = {}

M.options = config.options
--- What setup() found wrong with its options (messages naming each), {} when nothing.
M.option_problems = {}

-- Options ------------------------------------------------------------------------

-- Lists (cmd, filetypes, root_markers) replace the defaults; tables merge deeply.
local LIST_OPTIONS = { cmd = true, filetypes = true, root_markers = true }

local function merge_options(user)
  local opts = vim.deepcopy(config.defaults)
  for key, value in pairs(user or {}) do
    if type(value) == "table" and type(opts[key]) == "table" and not LIST_OPTIONS[key] then
      opts[key] = vim.tbl_deep_extend("force", opts[key], value)
    else
      opts[key] = value
    end
  end
  if type(opts.cmd) == "string" then
    opts.cmd = { opts.cmd }
  end
  if type(opts.next_edit) == "boolean" then
    opts.next_edit = vim.tbl_deep_extend("force", config.defaults.next_edit, { enabled = opts.next_edit })
  end
  if type(opts.suggestion) == "boolean" then
    opts.suggestion = vim.tbl_deep_extend("force", config.defaults.suggestion, { enabled = opts.suggestion })
  end
  return opts
end

local function is_list_of_strings(value)
  if type(value) ~= "table" then
    return false
  end
  for i, item in ipairs(value) do
    if type(item) ~= "string" or item == "" then
      return false, i
    end
  end
  return #value == vim.tbl_count(value)
end

--- What is wrong with `opts`: a list of messages, each naming its option.
local function check_options(opts)
  local problems = {}
  local function expect(name, value, kinds, what)
    if not vim.tbl_contains(kinds, type(value)) then
      table.insert(problems, string.format("%s must be %s, not %s", name, what, vim.inspect(value)))
      return false
    end
    return true
  end
  if not is_list_of_strings(opts.cmd) or #opts.cmd == 0 then
    table.insert(problems, "cmd must be a non-empty list of strings, e.g. { \"lspilot\" }, not " .. vim.inspect(opts.cmd))
  end
  expect("cmd_env", opts.cmd_env, { "table", "nil" }, "a table of environment variables")
  if not is_list_of_strings(opts.filetypes) then
    table.insert(problems, "filetypes must be a list of filetype names, not " .. vim.inspect(opts.filetypes))
  end
  if not is_list_of_strings(opts.root_markers) then
    table.insert(problems, "root_markers must be a list of file names, not " .. vim.inspect(opts.root_markers))
  end
  expect("settings", opts.settings, { "table" }, "a table (the `lspilot` settings section)")
  expect("init_options", opts.init_options, { "table", "nil" }, "a table (initializationOptions)")
  expect("capabilities", opts.capabilities, { "table", "nil" }, "a table of client capabilities")
  expect("on_attach", opts.on_attach, { "function", "nil" }, "a function(client, bufnr)")
  expect("autostart", opts.autostart, { "boolean" }, "true or false")
  if expect("float", opts.float, { "table" }, "a table { border, max_width, max_height, focus }") then
    expect("float.focus", opts.float.focus, { "boolean", "nil" }, "true or false")
  end
  expect("notify_done", opts.notify_done, { "boolean" }, "true or false")
  expect("echo_progress", opts.echo_progress, { "boolean" }, "true or false")
  if expect("health_timeout", opts.health_timeout, { "number" }, "a number of seconds") and opts.health_timeout <= 0 then
    table.insert(problems, "health_timeout must be more than 0 seconds")
  end
  local s = opts.suggestion
  if expect("suggestion", s, { "table" }, "a table { enabled, native, keys } or a boolean") then
    expect("suggestion.enabled", s.enabled, { "boolean" }, "true or false")
    expect("suggestion.native", s.native, { "boolean" }, "true or false")
    if expect("suggestion.keys", s.keys, { "table" }, "a table of key names") then
      for name, key in pairs(s.keys) do
        if config.defaults.suggestion.keys[name] == nil then
          local known = vim.tbl_keys(config.defaults.suggestion.keys)
          table.sort(known)
          table.insert(problems, "suggestion.keys." .. tostring(name) .. " is not a key lspilot maps (it maps " .. table.concat(known, ", ") .. ")")
        elseif key ~= false and (type(key) ~= "string" or key == "") then
          table.insert(problems, "suggestion.keys." .. name .. " must be a key such as \"<M-l>\" or false, not " .. vim.inspect(key))
        end
      end
    end
  end
  local n = opts.next_edit
  if expect("next_edit", n, { "table" }, "a table { enabled, debounce, keys } or a boolean") then
    expect("next_edit.enabled", n.enabled, { "boolean" }, "true or false")
    if expect("next_edit.debounce", n.debounce, { "number" }, "a number of milliseconds") and n.debounce < 0 then
      table.insert(problems, "next_edit.debounce must be 0 or more milliseconds")
    end
    if expect("next_edit.keys", n.keys, { "table" }, "a table of key names") then
      for name, key in pairs(n.keys) do
        if config.defaults.next_edit.keys[name] == nil then
          table.insert(problems, "next_edit.keys." .. tostring(name) .. " is not a key lspilot maps (it maps accept, dismiss, jump)")
        elseif key ~= false and (type(key) ~= "string" or key == "") then
          table.insert(problems, "next_edit.keys." .. name .. " must be a key such as \"<M-n>\" or false, not " .. vim.inspect(key))
        end
      end
    end
  end
  return problems
end

--- Configures the plugin and starts the server for the configured filetypes.
function M.setup(user)
  if user ~= nil and type(user) ~= "table" then
    util.notify("setup() takes a table of options, not " .. vim.inspect(user), vim.log.levels.ERROR)
    user = {}
  end
  local opts = merge_options(user)
  local problems = check_options(opts)
  M.option_problems = problems
  if #problems > 0 then
    util.notify("setup(): " .. table.concat(problems, "; ") .. ". Those options keep their defaults (:help lspilot-options).", vim.log.levels.ERROR)
    local fixed = {}
    for key, value in pairs(user or {}) do
      local alone = merge_options({ [key] = value })
      if #check_options(alone) == 0 then
        fixed[key] = value
      end
    end
    opts = merge_options(fixed)
  end
  config.options = opts
  M.options = opts
  local group = api.nvim_create_augroup("lspilot", { clear = true })
  if M.options.autostart then
    api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = M.options.filetypes,
      callback = function(args)
        client.attach(args.buf)
      end,
      desc = "lspilot: start or attach the server",
    })
    for _, buf in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(buf) and vim.tbl_contains(M.options.filetypes, vim.bo[buf].filetype) then
        client.attach(buf)
      end
    end
  end
  require("lspilot.suggestion").set_enabled(M.options.suggestion.enabled)
  M.create_commands()
  return M
end

-- The client ------------------------------------------------------------------------

M.handlers = client.handlers
M.client_commands = client.client_commands
M.capabilities = client.capabilities
M.client_config = client.client_config
M.INSTALL_HINT = server.INSTALL_HINT
M._missing_server = server.missing_server
M.attach = client.attach
M.get_client = server.find
M._server_said = server.server_said

--- on_attach for a config of your own (vim.lsp.config): ghost text for the buffer.
function M.on_attach(c, bufnr)
  client.on_attach(c, bufnr, nil)
end

-- Ranges ----------------------------------------------------------------------------

M.make_range = range.make
M.current_range = range.current

-- Jobs ------------------------------------------------------------------------------

M.run = jobs.run
M._finish = jobs.finish
M._on_stream = jobs.on_stream
M._on_progress = jobs.on_progress
M.cancel = jobs.cancel
M.close = jobs.close
M.focus = jobs.focus
M.get_job = jobs.get
M.jobs = jobs.list

function M.explain(opts)
  return jobs.run(jobs.COMMANDS.explain, opts)
end

function M.refactor(opts)
  return jobs.run(jobs.COMMANDS.refactor, opts)
end

function M.write_tests(opts)
  return jobs.run(jobs.COMMANDS.tests, opts)
end

--- :LspilotChat [message]: `opts` like a user command's (range, line1, line2).
function M.chat(message, opts)
  return require("lspilot.chat").open(message, opts)
end

--- :LspilotAgent [message]: the chat in agent mode.
function M.agent(message, opts)
  return require("lspilot.chat").open(message, opts, "agent")
end

--- A statusline component: "lspilot: refactor Asking the model…" while an action
--- runs, "" otherwise (e.g. `set statusline+=%{v:lua.require'lspilot'.statusline()}`).
function M.statusline()
  return jobs.statusline()
end

--- The same (its first name).
M.status = M.statusline

-- Status, suggestions, commands ------------------------------------------------------

--- Asks the server for lspilot.status; `callback(err, answer)`.
function M.server_status(callback, bufnr)
  return require("lspilot.status").fetch(callback, bufnr)
end

--- :LspilotStatus: the server's status shown with vim.notify.
function M.show_status()
  return require("lspilot.status").show()
end

M.next_edit = setmetatable({}, {
  __index = function(_, key)
    return require("lspilot.nextedit")[key]
  end,
})

M.suggestion = setmetatable({}, {
  __index = function(_, key)
    return require("lspilot.suggestion")[key]
  end,
})

function M.create_commands()
  require("lspilot.commands").create()
end

-- `last_event`: the data of the last User event the plugin fired (LspilotProgress,
-- LspilotDone...; for Neovim 0.7, whose autocmds carry no `data`). Read from events.lua
-- when asked, so no module writes into this one.
return setmetatable(M, {
  __index = function(_, key)
    if key == "last_event" then
      return events.last
    end
    return nil
  end,
})
