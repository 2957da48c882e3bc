-- The lspilot client: its configuration (handlers, capabilities, client-side commands),
-- starting it or attaching it to a buffer. The top of the plugin's layers: it wires the
-- server's messages into jobs, chat, ask and suggestions, and none of those requires it
-- (they find the running client through server.lua).
local ask = require("lspilot.ask")
local chat = require("lspilot.chat")
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local jobs = require("lspilot.jobs")
local nextedit = require("lspilot.nextedit")
local server = require("lspilot.server")
local suggestion = require("lspilot.suggestion")
local util = require("lspilot.util")

local api = vim.api
local levels = vim.log.levels

local M = {}

-- LSP MessageType (Error, Warning, Info, Log) to vim.log.levels.
local MESSAGE_LEVELS = { levels.ERROR, levels.WARN, levels.INFO, levels.DEBUG }

local started_by_root = {} -- root_dir -> client id (Neovim 0.7, which has no vim.lsp.start)

--- The settings as a `{ lspilot = {...} }` table (what workspace/configuration looks up).
function M.settings_section(settings)
  settings = settings or {}
  if settings.lspilot ~= nil then
    return settings
  end
  return { lspilot = settings }
end

local function show_document(_, params, _)
  -- Neovim 0.7 has no window/showDocument handler; this one opens the file in the
  -- current (non-floating) window and moves to the selection.
  if type(params) ~= "table" or type(params.uri) ~= "string" or params.external then
    return { success = false }
  end
  local bufnr = vim.uri_to_bufnr(params.uri)
  vim.fn.bufload(bufnr)
  vim.bo[bufnr].buflisted = true
  local target
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(win) == bufnr then
      target = win
      break
    end
  end
  if not target then
    for _, win in ipairs({ api.nvim_get_current_win(), unpack(api.nvim_list_wins()) }) do
      if api.nvim_win_get_config(win).relative == "" then
        target = win
        break
      end
    end
    if not target then
      return { success = false }
    end
    local ok = pcall(api.nvim_win_set_buf, target, bufnr)
    if not ok then
      return { success = false }
    end
  end
  if params.takeFocus ~= false then
    api.nvim_set_current_win(target)
  end
  local sel = params.selection
  if type(sel) == "table" and type(sel.start) == "table" then
    local row = math.min(sel.start.line + 1, api.nvim_buf_line_count(bufnr))
    local line = api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ""
    pcall(api.nvim_win_set_cursor, target, { row, compat.from_lsp_col(line, sel.start.character or 0, "utf-16") })
  end
  return { success = true }
end

--- Handlers for the lspilot client: the stream, progress (on top of Neovim's own,
--- so vim.lsp.status() keeps working) and showDocument where Neovim lacks it.
function M.handlers()
  local handlers = {
    ["lspilot/stream"] = function(err, result, ctx)
      jobs.on_stream(err, result, ctx)
    end,
    ["$/progress"] = function(err, result, ctx, cfg)
      local default = vim.lsp.handlers["$/progress"]
      if default then
        pcall(default, err, result, ctx, cfg)
      end
      jobs.on_progress(result, ctx)
    end,
  }
  if not vim.lsp.handlers["window/showDocument"] then
    handlers["window/showDocument"] = show_document
  end
  handlers["lspilot/inlineCompletionLines"] = function(_, result, ctx)
    suggestion.on_lines(result, ctx)
  end
  -- Agent mode's steps, into the chat buffer.
  handlers["lspilot/toolCall"] = function(_, result, ctx)
    chat.on_tool_call(result, ctx)
  end
  -- The server's questions (agent approvals above all): vim.ui.select, answered when
  -- the user chooses, never a blocking inputlist (lspilot.ask).
  handlers["window/showMessageRequest"] = function(err, result, ctx, cfg)
    return ask.handler(err, result, ctx, cfg)
  end
  -- The server reports a failed action with window/showMessage too; remember those so
  -- the plugin does not notify the same failure twice.
  -- Shown with one "lspilot: " prefix (Neovim's own handler says "LSP[lspilot][Info]"
  -- before the server's text, which older servers began with "lspilot:" as well).
  handlers["window/showMessage"] = function(_, result)
    if type(result) ~= "table" or type(result.message) ~= "string" then
      return vim.NIL
    end
    if result.type == 1 then
      server.said(result.message)
    end
    if jobs.hold_message(result.message, result.type) then
      return vim.NIL -- said with the action's done message
    end
    util.notify(result.message, MESSAGE_LEVELS[result.type] or levels.INFO)
    return vim.NIL
  end
  return handlers
end

--- Client-side commands: the server's code actions (vim.lsp.buf.code_action())
--- run through the plugin, so they stream into the same window and progress.
function M.client_commands()
  local commands = {}
  for _, name in ipairs({ jobs.COMMANDS.explain, jobs.COMMANDS.refactor, jobs.COMMANDS.tests }) do
    commands[name] = function(command, ctx)
      local args = (command.arguments or {})[1]
      jobs.run(name, { bufnr = ctx and ctx.bufnr, client_id = ctx and ctx.client_id, arguments = args })
    end
  end
  return commands
end

function M.capabilities(extra)
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.window = caps.window or {}
  caps.window.workDoneProgress = true
  if not vim.lsp.handlers["window/showDocument"] then
    caps.window.showDocument = { support = true }
  end
  caps.workspace = caps.workspace or {}
  caps.workspace.applyEdit = true
  -- Neovim 0.7 answers workspace/configuration but does not say so (nor does it send
  -- the settings on start): without this the `settings` option never reached the server.
  caps.workspace.configuration = true
  -- Neovim applies documentChanges (with create/rename/delete) since 0.5 but does not
  -- say so; lspilot needs it to create test files.
  caps.workspace.workspaceEdit = caps.workspace.workspaceEdit or {}
  caps.workspace.workspaceEdit.documentChanges = true
  -- A block suggestion's first lines while the rest streams (lspilot/inlineCompletionLines,
  -- shown by the plugin's own ghost text).
  caps.experimental = vim.tbl_extend("force", type(caps.experimental) == "table" and caps.experimental or {},
    { lspilotInlineCompletionLines = true })
  -- Ghost text: Neovim 0.12+ says so itself; before, the plugin renders it.
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion or { dynamicRegistration = false }
  if extra then
    caps = vim.tbl_deep_extend("force", caps, extra)
  end
  return caps
end

--- on_attach for lspilot clients: ghost text and next edit suggestions for the buffer,
--- then the user's own.
function M.on_attach(client, bufnr, user_on_attach)
  suggestion.attach(client, bufnr)
  nextedit.attach(client, bufnr)
  if type(user_on_attach) == "function" then
    user_on_attach(client, bufnr)
  end
end

--- The vim.lsp client config for a workspace root.
function M.client_config(opts, root_dir)
  opts = opts or config.options
  return {
    name = config.name,
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    root_dir = root_dir,
    init_options = opts.init_options,
    settings = M.settings_section(opts.settings),
    capabilities = M.capabilities(opts.capabilities),
    handlers = M.handlers(),
    commands = M.client_commands(),
    on_attach = function(client, bufnr)
      M.on_attach(client, bufnr, opts.on_attach)
    end,
  }
end

--- Starts (or reuses) the server for `bufnr` and attaches it. Returns the client id.
function M.attach(bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  if not api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local path = api.nvim_buf_get_name(bufnr)
  if path == "" or path:match("^%a[%w+.-]*://") then
    return nil
  end
  local opts = config.options
  if vim.fn.executable(opts.cmd[1]) ~= 1 then
    server.missing_server(opts.cmd[1])
    return nil
  end
  local root = compat.find_root(path, opts.root_markers) or vim.fn.fnamemodify(path, ":p:h")
  local cfg = M.client_config(opts, root)
  if vim.lsp.start then
    local id
    api.nvim_buf_call(bufnr, function()
      id = ask.capture(function()
        return vim.lsp.start(cfg, { bufnr = bufnr })
      end)
    end)
    server.started(bufnr, id)
    return id
  end
  local id = started_by_root[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or compat.is_stopped(client) then
    id = ask.capture(function()
      return vim.lsp.start_client(cfg)
    end)
    if not id then
      util.notify("could not start " .. table.concat(opts.cmd, " "), levels.ERROR)
      return nil
    end
    started_by_root[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  server.started(bufnr, id)
  return id
end

return M
