-- lspilot for Neovim: starts the lspilot language server and drives its actions
-- (explain, refactor, write tests) on a visual range. See :help lspilot.
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local float = require("lspilot.float")

local api = vim.api
local levels = vim.log.levels

local M = {}

M.options = vim.deepcopy(config.defaults)
--- The data of the last User LspilotProgress / LspilotDone event (for Neovim 0.7,
--- whose autocmds carry no `data`).
M.last_event = nil

local COMMANDS = {
  explain = "lspilot.explain",
  refactor = "lspilot.refactor",
  tests = "lspilot.writeTests",
  cancel = "lspilot.cancel",
  run = "lspilot.run",
}

local TITLES = {
  ["lspilot.explain"] = "explain",
  ["lspilot.refactor"] = "refactor",
  ["lspilot.writeTests"] = "tests",
  ["lspilot.run"] = "run",
}

local REQUEST_CANCELLED = -32800

local jobs = {} -- token -> job
local job_list = {} -- jobs in the order they started
local counter = 0
local started_by_root = {} -- root_dir -> client id (Neovim 0.7, which has no vim.lsp.start)
local started_for_buf = {} -- bufnr -> the client id attach() gave it
local recent_errors = {} -- { message, at } of the server's error messages

local function notify(msg, level)
  vim.notify("lspilot: " .. msg, level or levels.INFO, { title = "lspilot" })
end

local function is_nil(value)
  return value == nil or value == vim.NIL
end

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
  return opts
end

--- The settings as a `{ lspilot = {...} }` table (what workspace/configuration looks up).
local function settings_section(settings)
  settings = settings or {}
  if settings.lspilot ~= nil then
    return settings
  end
  return { lspilot = settings }
end

-- Client configuration ----------------------------------------------------------------

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
      M._on_stream(err, result, ctx)
    end,
    ["$/progress"] = function(err, result, ctx, cfg)
      local default = vim.lsp.handlers["$/progress"]
      if default then
        pcall(default, err, result, ctx, cfg)
      end
      M._on_progress(result, ctx)
    end,
  }
  if not vim.lsp.handlers["window/showDocument"] then
    handlers["window/showDocument"] = show_document
  end
  -- The server reports a failed action with window/showMessage too; remember those so
  -- the plugin does not notify the same failure twice.
  handlers["window/showMessage"] = function(err, result, ctx, cfg)
    if type(result) == "table" and result.type == 1 and type(result.message) == "string" then
      table.insert(recent_errors, { message = result.message, at = compat.uv.now() })
      if #recent_errors > 20 then
        table.remove(recent_errors, 1)
      end
    end
    return vim.lsp.handlers["window/showMessage"](err, result, ctx, cfg)
  end
  return handlers
end

--- Client-side commands: the server's code actions (vim.lsp.buf.code_action())
--- run through the plugin, so they stream into the same window and progress.
function M.client_commands()
  local commands = {}
  for _, name in ipairs({ COMMANDS.explain, COMMANDS.refactor, COMMANDS.tests }) do
    commands[name] = function(command, ctx)
      local args = (command.arguments or {})[1]
      M.run(name, { bufnr = ctx and ctx.bufnr, client_id = ctx and ctx.client_id, arguments = args })
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
  if extra then
    caps = vim.tbl_deep_extend("force", caps, extra)
  end
  return caps
end

--- The vim.lsp client config for a workspace root.
function M.client_config(opts, root_dir)
  opts = opts or M.options
  return {
    name = config.name,
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    root_dir = root_dir,
    init_options = opts.init_options,
    settings = settings_section(opts.settings),
    capabilities = M.capabilities(opts.capabilities),
    handlers = M.handlers(),
    commands = M.client_commands(),
    on_attach = opts.on_attach,
  }
end

-- lspilot is not on PyPI: install it from a checkout of its repository.
M.INSTALL_HINT = "install it from a checkout of lspilot: `pipx install /path/to/lspilot` "
  .. "or `uv tool install /path/to/lspilot`, or set cmd = { \"/path/to/lspilot/.venv/bin/lspilot\" } "
  .. "(made by ./dev/demo); see :help lspilot-install"

local told_missing = {}

--- Says once per program that the server command cannot be found, and how to install it.
function M._missing_server(program)
  if told_missing[program] then
    return
  end
  told_missing[program] = true
  notify("cannot start the server: `" .. program .. "` is not an executable; " .. M.INSTALL_HINT, levels.ERROR)
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
  local opts = M.options
  if vim.fn.executable(opts.cmd[1]) ~= 1 then
    M._missing_server(opts.cmd[1])
    return nil
  end
  local root = compat.find_root(path, opts.root_markers) or vim.fn.fnamemodify(path, ":p:h")
  local cfg = M.client_config(opts, root)
  if vim.lsp.start then
    local id
    api.nvim_buf_call(bufnr, function()
      id = vim.lsp.start(cfg, { bufnr = bufnr })
    end)
    started_for_buf[bufnr] = id
    return id
  end
  local id = started_by_root[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or compat.is_stopped(client) then
    id = vim.lsp.start_client(cfg)
    if not id then
      notify("could not start " .. table.concat(opts.cmd, " "), levels.ERROR)
      return nil
    end
    started_by_root[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  started_for_buf[bufnr] = id
  return id
end

--- Configures the plugin and starts the server for the configured filetypes.
function M.setup(user)
  M.options = merge_options(user)
  local group = api.nvim_create_augroup("lspilot", { clear = true })
  if M.options.autostart then
    api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = M.options.filetypes,
      callback = function(args)
        M.attach(args.buf)
      end,
      desc = "lspilot: start or attach the server",
    })
    for _, buf in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(buf) and vim.tbl_contains(M.options.filetypes, vim.bo[buf].filetype) then
        M.attach(buf)
      end
    end
  end
  M.create_commands()
  return M
end

-- Ranges --------------------------------------------------------------------------------

local function line_text(bufnr, row0)
  return api.nvim_buf_get_lines(bufnr, row0, row0 + 1, false)[1] or ""
end

--- An LSP Range from two positions `{row (1-based), col (0-based byte)}`, as a visual
--- selection in `mode` ("v" charwise; "V" and blockwise take whole lines) covers them.
function M.make_range(bufnr, first, last, mode, encoding)
  encoding = encoding or "utf-16"
  if first[1] > last[1] or (first[1] == last[1] and first[2] > last[2]) then
    first, last = last, first
  end
  local line_count = api.nvim_buf_line_count(bufnr)
  first = { math.max(1, math.min(first[1], line_count)), math.max(0, first[2]) }
  last = { math.max(1, math.min(last[1], line_count)), math.max(0, last[2]) }
  -- Where a selection that takes line `row` (1-based) with its newline ends.
  local function after_line(row)
    if row < line_count or vim.bo[bufnr].eol then
      return { line = row, character = 0 }
    end
    local text = line_text(bufnr, row - 1)
    return { line = row - 1, character = compat.to_lsp_col(text, #text, encoding) }
  end
  if mode ~= "v" then
    return { start = { line = first[1] - 1, character = 0 }, ["end"] = after_line(last[1]) }
  end
  local first_text = line_text(bufnr, first[1] - 1)
  local last_text = line_text(bufnr, last[1] - 1)
  local start = { line = first[1] - 1, character = compat.to_lsp_col(first_text, first[2], encoding) }
  local end_col = last[2]
  if vim.o.selection ~= "exclusive" then
    end_col = end_col + math.max(1, compat.char_len(last_text, end_col))
  end
  local finish
  if end_col > #last_text then
    finish = after_line(last[1])
  else
    finish = { line = last[1] - 1, character = compat.to_lsp_col(last_text, end_col, encoding) }
  end
  return { start = start, ["end"] = finish }
end

--- The range a command applies to: the visual selection (active, or the last one
--- when the command's line range is the one `:'<,'>` gives), else the command's lines,
--- else the cursor line.
function M.current_range(bufnr, cmd_opts, encoding)
  local mode = api.nvim_get_mode().mode
  if mode == "v" or mode == "V" or mode == "\22" then
    local v = vim.fn.getpos("v")
    local cur = vim.fn.getpos(".")
    api.nvim_feedkeys(api.nvim_replace_termcodes("<Esc>", true, false, true), "nx", false)
    return M.make_range(bufnr, { v[2], v[3] - 1 }, { cur[2], cur[3] - 1 }, mode, encoding)
  end
  if cmd_opts and cmd_opts.range and cmd_opts.range > 0 then
    local s = api.nvim_buf_get_mark(bufnr, "<")
    local e = api.nvim_buf_get_mark(bufnr, ">")
    if s[1] == cmd_opts.line1 and e[1] == cmd_opts.line2 then
      local vmode = vim.fn.visualmode()
      return M.make_range(bufnr, s, e, vmode == "" and "V" or vmode, encoding)
    end
    return M.make_range(bufnr, { cmd_opts.line1, 0 }, { cmd_opts.line2, 0 }, "V", encoding)
  end
  local row = api.nvim_win_get_cursor(0)[1]
  return M.make_range(bufnr, { row, 0 }, { row, 0 }, "V", encoding)
end

-- Jobs ------------------------------------------------------------------------------------

local function job_data(job)
  return {
    token = job.token,
    command = job.command,
    status = job.status,
    bufnr = job.bufnr,
    uri = job.uri,
    client_id = job.client_id,
    error = job.error,
    text = job.text,
  }
end

local function fire(pattern, data)
  M.last_event = data
  compat.user_event(pattern, data)
  pcall(vim.cmd, "redrawstatus")
end

local function new_job(fields)
  local job = vim.tbl_extend("force", {
    status = "running",
    text = "",
    started = compat.uv.hrtime(),
  }, fields)
  job.title = TITLES[job.command] or job.command
  jobs[job.token] = job
  table.insert(job_list, job)
  -- Keep the history short.
  while #job_list > 50 and job_list[1].status ~= "running" do
    jobs[table.remove(job_list, 1).token] = nil
  end
  return job
end

local function on_float_closed(job)
  job.float = nil
  if job.status == "running" then
    M.cancel(job.token)
  end
end

local function open_float(job)
  float.open(job, M.options.float, on_float_closed)
  if job.text ~= "" then
    float.update(job, job.text)
  end
end

local function find_client(bufnr)
  for _, client in ipairs(compat.get_clients({ bufnr = bufnr, name = config.name })) do
    if client.initialized and not compat.is_stopped(client) then
      return client
    end
  end
  return nil
end
M.get_client = find_client

-- The buffer's client; when a server is still starting (a command typed right after
-- opening a file), waits up to `ms` for it.
local function wait_for_client(bufnr, ms)
  if find_client(bufnr) then
    return find_client(bufnr)
  end
  local starting = false
  local candidates = compat.get_clients({ name = config.name })
  -- Older Neovims list only initialized clients; the one setup() started is known.
  local id = started_for_buf[bufnr]
  if id and vim.lsp.get_client_by_id(id) then
    table.insert(candidates, vim.lsp.get_client_by_id(id))
  end
  for _, client in ipairs(candidates) do
    if not client.initialized and not compat.is_stopped(client) then
      starting = true
    end
  end
  if starting then
    vim.api.nvim_echo({ { "lspilot: waiting for the server to start…" } }, false, {})
    vim.wait(ms, function()
      return find_client(bufnr) ~= nil
    end, 50)
  end
  return find_client(bufnr)
end

--- Whether the server showed an error message holding `message` in the last 10 s.
function M._server_said(message)
  local now = compat.uv.now()
  for _, said in ipairs(recent_errors) do
    if now - said.at < 10000 and said.message:find(message, 1, true) then
      return true
    end
  end
  return false
end

function M._finish(job, err, result)
  if job.status ~= "running" then
    return
  end
  if err then
    if err.code == REQUEST_CANCELLED then
      job.status = "cancelled"
    else
      job.status = "failed"
      job.error = { type = "lsp", message = err.message or vim.inspect(err) }
    end
  else
    result = type(result) == "table" and result or {}
    job.status = is_nil(result.status) and "done" or result.status
    if type(result.text) == "string" and result.text ~= "" then
      job.text = result.text
    end
    job.usage = not is_nil(result.usage) and result.usage or nil
    if not is_nil(result.error) then
      job.error = result.error
    end
  end
  if job.float then
    local shown = job.text
    if job.status == "failed" and shown == "" then
      shown = "lspilot: " .. tostring(job.error and job.error.message or "failed")
    end
    float.update(job, shown)
    float.set_status(job)
  end
  if job.status == "failed" then
    local message = tostring(job.error and job.error.message or "unknown error")
    if not M._server_said(message) then
      notify(job.title .. " failed: " .. message, levels.ERROR)
    end
  elseif job.status == "cancelled" then
    notify(job.title .. " cancelled")
  elseif job.command ~= COMMANDS.explain and M.options.notify_done then
    notify(job.title .. " done")
  end
  fire("LspilotDone", job_data(job))
end

--- Runs an lspilot command on a range. `opts`: bufnr, range (LSP Range; default:
--- the selection, see current_range), cmd_opts (from a user command), instruction,
--- action (lspilot.run), arguments (the whole argument object, as a code action
--- carries it). Returns the job's progress token, or nil.
function M.run(command, opts)
  opts = opts or {}
  local bufnr = opts.bufnr
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  local client = opts.client_id and vim.lsp.get_client_by_id(opts.client_id) or wait_for_client(bufnr, 15000)
  if not client or compat.is_stopped(client) then
    if vim.fn.executable(M.options.cmd[1]) ~= 1 then
      notify("the server `" .. M.options.cmd[1] .. "` is not installed; " .. M.INSTALL_HINT, levels.WARN)
      return nil
    end
    notify("the lspilot server is not attached to this buffer (yet); see :help lspilot-setup", levels.WARN)
    return nil
  end
  local args = opts.arguments
  if type(args) ~= "table" then
    local range = opts.range or M.current_range(bufnr, opts.cmd_opts, client.offset_encoding or "utf-16")
    args = { uri = vim.uri_from_bufnr(bufnr), range = range }
    if opts.instruction and opts.instruction ~= "" then
      args.instruction = opts.instruction
    end
    if opts.action then
      args.action = opts.action
    end
  end
  counter = counter + 1
  local token = string.format("lspilot-nvim-%d-%d", vim.fn.getpid(), counter)
  local job = new_job({
    token = token,
    command = command,
    bufnr = bufnr,
    client_id = client.id,
    uri = args.uri,
    range = args.range,
    arguments = args,
  })
  if command == COMMANDS.explain then
    open_float(job)
  end
  local params = { command = command, arguments = { args }, workDoneToken = token }
  local ok, request_id = compat.request(client, "workspace/executeCommand", params, function(err, result)
    M._finish(job, err, result)
  end, bufnr)
  if not ok then
    M._finish(job, { message = "the lspilot server is not running" }, nil)
  else
    job.request_id = request_id
  end
  return token
end

function M.explain(opts)
  return M.run(COMMANDS.explain, opts)
end

function M.refactor(opts)
  return M.run(COMMANDS.refactor, opts)
end

function M.write_tests(opts)
  return M.run(COMMANDS.tests, opts)
end

--- Cancels the job with `token`, or every running job. Returns how many were asked.
function M.cancel(token)
  local targets = {}
  if token then
    if jobs[token] then
      targets = { jobs[token] }
    end
  else
    for _, job in ipairs(job_list) do
      if job.status == "running" then
        table.insert(targets, job)
      end
    end
  end
  local asked = 0
  for _, job in ipairs(targets) do
    local client = vim.lsp.get_client_by_id(job.client_id)
    if job.status == "running" and not job.cancel_sent and client then
      job.cancel_sent = true
      asked = asked + 1
      compat.request(client, "workspace/executeCommand", {
        command = COMMANDS.cancel,
        arguments = { { token = job.token } },
      }, function() end, job.bufnr)
      -- Should the server not answer the action, cancel its request as well.
      vim.defer_fn(function()
        if job.status == "running" and job.request_id and not compat.is_stopped(client) then
          compat.cancel_request(client, job.request_id)
        end
      end, 3000)
    end
  end
  return asked
end

--- Closes the explanation window of `token` (or the newest one), cancelling its job
--- if it still runs.
function M.close(token)
  for i = #job_list, 1, -1 do
    local job = job_list[i]
    if (token == nil or job.token == token) and job.float then
      job.float.close()
      return true
    end
  end
  return false
end

function M.get_job(token)
  return jobs[token]
end

--- Jobs of this session, oldest first (each: token, command, status, text, error...).
function M.jobs()
  return job_list
end

--- A short statusline string: "lspilot: refactor 40%" while actions run, else "".
function M.status()
  local parts = {}
  for _, job in ipairs(job_list) do
    if job.status == "running" then
      local s = job.title
      local p = job.progress
      if p and type(p.percentage) == "number" then
        s = s .. " " .. p.percentage .. "%"
      elseif p and type(p.message) == "string" and p.message ~= "" then
        s = s .. " " .. vim.fn.strcharpart(p.message, 0, 30)
      else
        s = s .. "…"
      end
      table.insert(parts, s)
    end
  end
  if #parts == 0 then
    return ""
  end
  return "lspilot: " .. table.concat(parts, ", ")
end

-- Notifications --------------------------------------------------------------------------

function M._on_stream(_, params, ctx)
  if type(params) ~= "table" or is_nil(params.token) then
    return
  end
  local job = jobs[params.token]
  if not job then
    -- An explanation started elsewhere (e.g. a code action run by another plugin):
    -- show it too.
    if params.command ~= COMMANDS.explain then
      return
    end
    job = new_job({
      token = params.token,
      command = params.command,
      client_id = ctx and ctx.client_id,
      uri = params.uri,
      bufnr = type(params.uri) == "string" and vim.uri_to_bufnr(params.uri) or nil,
      external = true,
    })
    open_float(job)
  end
  if type(params.delta) == "string" and params.delta ~= "" then
    job.text = job.text .. params.delta
    if job.float and job.status == "running" then
      float.update(job, job.text)
    end
  end
  if params.done == true and job.external and job.status == "running" then
    job.status = "done"
    float.set_status(job)
    fire("LspilotDone", job_data(job))
  end
end

function M._on_progress(params, ctx)
  if type(params) ~= "table" or type(params.value) ~= "table" then
    return
  end
  local value = params.value
  local job = jobs[params.token]
  local data = {
    token = params.token,
    kind = value.kind,
    title = value.title,
    message = value.message,
    percentage = value.percentage,
    cancellable = value.cancellable,
    client_id = ctx and ctx.client_id,
    command = job and job.command or nil,
    bufnr = job and job.bufnr or nil,
  }
  if job then
    job.progress = data
  end
  fire("LspilotProgress", data)
end

-- User commands -------------------------------------------------------------------------

function M.create_commands()
  local function create(name, fn, opts)
    opts.force = true
    api.nvim_create_user_command(name, fn, opts)
  end
  create("LspilotExplain", function(o)
    M.explain({ cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: explain the selection" })
  create("LspilotRefactor", function(o)
    M.refactor({ cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: refactor the selection [instruction]" })
  create("LspilotTests", function(o)
    M.write_tests({ cmd_opts = o, instruction = o.args })
  end, { range = true, nargs = "*", desc = "lspilot: write tests for the selection [instruction]" })
  create("LspilotCancel", function()
    if M.cancel() == 0 then
      notify("nothing to cancel")
    end
  end, { nargs = 0, desc = "lspilot: cancel running actions" })
end

return M
