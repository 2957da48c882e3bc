-- Jobs: the actions (explain, refactor, write tests, custom) the plugin runs, their
-- lspilot/stream text and progress, the answer (status, text, usage, error), cancel,
-- and the User LspilotProgress / LspilotDone events.
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local events = require("lspilot.events")
local float = require("lspilot.float")
local progress = require("lspilot.progress")
local range = require("lspilot.range")
local server = require("lspilot.server")
local testrun = require("lspilot.testrun")
local util = require("lspilot.util")

local api = vim.api
local levels = vim.log.levels
local is_nil = util.is_nil

local M = {}

M.COMMANDS = {
  explain = "lspilot.explain",
  refactor = "lspilot.refactor",
  tests = "lspilot.writeTests",
  cancel = "lspilot.cancel",
  run = "lspilot.run",
  status = "lspilot.status",
  chat = "lspilot.chat",
}

local TITLES = {
  ["lspilot.explain"] = "explain",
  ["lspilot.refactor"] = "refactor",
  ["lspilot.writeTests"] = "tests",
  ["lspilot.run"] = "run",
  ["lspilot.chat"] = "chat",
}

local REQUEST_CANCELLED = -32800

local jobs = {} -- token -> job
local job_list = {} -- jobs in the order they started
local counter = 0

--- The data of User LspilotProgress / LspilotDone for `job`.
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
    usage = job.usage,
    tests = job.tests,
  }
end

local fire = events.fire

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
  float.open(job, config.options.float, on_float_closed)
  if job.text ~= "" then
    float.update(job, job.text)
  end
end

--- The answer's `usage` without JSON nulls (`cost` is absent when the price is
--- unknown), or nil.
function M.clean_usage(usage)
  if type(usage) ~= "table" then
    return nil
  end
  local clean = {}
  for key, value in pairs(usage) do
    if not is_nil(value) then
      clean[key] = value
    end
  end
  return clean
end

--- The last line of an explanation: "done · 812 tokens in, 240 out, $0.0003 · 1.2 s".
function M.done_line(job)
  local parts = { tostring(job.status) }
  local spent = util.usage_words(job.usage)
  if spent then
    if job.usage.cost == nil then
      spent = spent .. ", cost unknown"
    end
    table.insert(parts, spent)
  end
  table.insert(parts, string.format("%.1f s", (compat.uv.hrtime() - job.started) / 1e9))
  return "── " .. table.concat(parts, " · ")
end

--- Ends `job` with the command's answer (or its error): float, notification, event.
function M.finish(job, err, result)
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
    job.usage = M.clean_usage(result.usage)
    -- Write tests, when the server ran them: { command, passed, failed, rounds, output }.
    job.tests = type(result.tests) == "table" and result.tests or nil
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
    float.set_done(job, M.done_line(job))
  end
  if job.on_done then
    local ok, problem = pcall(job.on_done, job, result)
    if not ok then
      util.notify("internal error: " .. tostring(problem), levels.ERROR)
    end
  end
  progress.clear()
  local spent = util.usage_words(job.usage)
  local suffix = spent and (" (" .. spent .. ")") or ""
  -- Write tests' run: its problem when no test ran, the hint to see its output.
  local about_tests = testrun.finished(job.tests, job.run_said and job.run_said.text)
  if job.status == "failed" then
    local message = tostring(job.error and job.error.message or "unknown error")
    if not server.server_said(message) then
      util.notify(job.title .. " failed: " .. message, levels.ERROR)
    end
  elseif job.status == "cancelled" then
    util.notify(job.title .. " cancelled" .. suffix)
  elseif job.run_said then
    -- The server's words on the run ("Write tests: 1 test, all pass") end it, once.
    util.notify(job.run_said.text .. suffix .. about_tests,
      (job.run_said.type == 2 or (job.tests and job.tests.ran == false)) and levels.WARN or levels.INFO)
  elseif job.tests and job.tests.ran == false then
    util.notify(job.title .. " done" .. suffix .. about_tests, levels.WARN)
  elseif job.command ~= M.COMMANDS.explain and job.command ~= M.COMMANDS.chat and config.options.notify_done then
    util.notify(job.title .. " done" .. suffix .. about_tests)
  end
  fire("LspilotDone", job_data(job))
end

--- The server's message on a Write tests run ("lspilot: Write tests: 1 test, all pass",
--- window/showMessage Info or Warning, just before the action ends) is kept for the
--- action's done message, so the end is said once. True when kept.
function M.hold_message(message, kind)
  if kind ~= 2 and kind ~= 3 then
    return false
  end
  local text = util.unprefixed(message)
  for _, job in ipairs(M.running()) do
    local title = job.progress_title and util.unprefixed(job.progress_title)
    if job.command == M.COMMANDS.tests and title and title ~= ""
      and text:sub(1, #title + 2) == title .. ": " then
      job.run_said = { text = text, type = kind }
      return true
    end
  end
  return false
end

--- Runs an lspilot command on a range. `opts`: bufnr, range (LSP Range; default:
--- the selection, see range.current), cmd_opts (from a user command), instruction,
--- action (lspilot.run), arguments (the whole argument object, as a code action
--- carries it), on_text(job) after each streamed delta, on_done(job, result) when
--- it ends. Returns the job's progress token, or nil.
function M.run(command, opts)
  opts = opts or {}
  local bufnr = opts.bufnr
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  local client = opts.client_id and vim.lsp.get_client_by_id(opts.client_id) or server.wait_for(bufnr, 15000)
  if not client or compat.is_stopped(client) then
    local program = config.options.cmd[1]
    if vim.fn.executable(program) ~= 1 then
      util.notify("the server `" .. program .. "` is not installed; " .. server.INSTALL_HINT, levels.WARN)
      return nil
    end
    util.notify("the lspilot server is not attached to this buffer (yet); see :help lspilot-setup", levels.WARN)
    return nil
  end
  local args = opts.arguments
  if type(args) ~= "table" then
    local r = opts.range or range.current(bufnr, opts.cmd_opts, client.offset_encoding or "utf-16")
    args = { uri = vim.uri_from_bufnr(bufnr), range = r }
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
    on_text = opts.on_text,
    on_done = opts.on_done,
  })
  if command == M.COMMANDS.explain then
    open_float(job)
  end
  local params = { command = command, arguments = { args }, workDoneToken = token }
  local ok, request_id = compat.request(client, "workspace/executeCommand", params, function(err, result)
    M.finish(job, err, result)
  end, bufnr)
  if not ok then
    M.finish(job, { message = "the lspilot server is not running" }, nil)
  else
    job.request_id = request_id
  end
  return token
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
        command = M.COMMANDS.cancel,
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

--- Enters the explanation window of `token` (or the newest one). True when there was one.
function M.focus(token)
  for i = #job_list, 1, -1 do
    local job = job_list[i]
    if (token == nil or job.token == token) and job.float and float.focus(job) then
      return true
    end
  end
  return false
end

function M.get(token)
  return jobs[token]
end

--- Jobs of this session, oldest first (each: token, command, status, text, error...).
function M.list()
  return job_list
end

--- The running jobs.
function M.running()
  local list = {}
  for _, job in ipairs(job_list) do
    if job.status == "running" then
      table.insert(list, job)
    end
  end
  return list
end

--- A short statusline string while actions run ("lspilot: refactor Asking the model…",
--- "lspilot: refactor 40%"), else "".
function M.statusline()
  local parts = {}
  for _, job in ipairs(M.running()) do
    local s = job.title
    local p = job.progress
    if p and type(p.percentage) == "number" then
      s = s .. " " .. p.percentage .. "%"
    elseif p and type(p.message) == "string" and p.message ~= "" then
      s = s .. ": " .. vim.fn.strcharpart(p.message, 0, 40)
    else
      s = s .. "…"
    end
    table.insert(parts, s)
  end
  if #parts == 0 then
    return ""
  end
  return "lspilot: " .. table.concat(parts, ", ")
end

-- Notifications ------------------------------------------------------------------------

function M.on_stream(_, params, ctx)
  if type(params) ~= "table" or is_nil(params.token) then
    return
  end
  local job = jobs[params.token]
  if not job then
    -- An explanation started elsewhere (e.g. a code action run by another plugin):
    -- show it too.
    if params.command ~= M.COMMANDS.explain then
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
    if job.on_text and job.status == "running" then
      local ok, problem = pcall(job.on_text, job)
      if not ok then
        util.notify("internal error: " .. tostring(problem), levels.ERROR)
      end
    end
  end
  if params.done == true and job.external and job.status == "running" then
    job.status = "done"
    float.set_status(job)
    fire("LspilotDone", job_data(job))
  end
end

function M.on_progress(params, ctx)
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
    if type(value.title) == "string" then
      job.progress_title = value.title
    end
    -- The chat buffer shows its own turn's state; every other action echoes.
    if job.command ~= M.COMMANDS.chat then
      if value.kind == "end" then
        progress.clear()
      else
        progress.echo(progress.text(job.progress_title or ("lspilot: " .. job.title), value.message))
      end
    end
  end
  fire("LspilotProgress", data)
end

return M
