-- :checkhealth lspilot: the server command, the key, the upstream, the MCP servers,
-- this Neovim's features and where the log is.
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local util = require("lspilot.util")

local M = {}

-- vim.health (0.10+: start/ok/...; 0.8-0.9: report_*), or 0.7's require("health").
local function reporter()
  local h = vim.health
  if h and h.start then
    return { start = h.start, ok = h.ok, warn = h.warn, error = h.error, info = h.info }
  end
  h = (h and h.report_start) and h or require("health")
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn, error = h.report_error, info = h.report_info }
end

--- Runs `argv` with `env` for at most `seconds`: exit code (nil on time-out), output lines.
local function run(argv, env, seconds)
  local output = {}
  local function collect(_, data)
    for _, line in ipairs(data or {}) do
      if line ~= "" then
        table.insert(output, (line:gsub("\r$", "")))
      end
    end
  end
  local opts = { stdout_buffered = true, stderr_buffered = true, on_stdout = collect, on_stderr = collect }
  if env and next(env) then
    opts.env = env
  end
  local ok, id = pcall(vim.fn.jobstart, argv, opts)
  if not ok or id <= 0 then
    return -1, { "could not run " .. table.concat(argv, " ") .. ": " .. tostring(id) }
  end
  local code = vim.fn.jobwait({ id }, math.floor(seconds * 1000))[1]
  if code == -1 then
    vim.fn.jobstop(id)
    return nil, output
  end
  return code, output
end

-- The `lspilot` section the plugin gives the server, with initializationOptions under it.
local function plugin_settings(opts)
  local section = require("lspilot.client").settings_section(opts.settings).lspilot or {}
  return vim.tbl_deep_extend("force", opts.init_options or {}, section)
end

local function key_in_env(env)
  for _, name in ipairs({ "LSPILOT_API_KEY", "OPENAI_API_KEY" }) do
    local v = env[name] or vim.env[name]
    if type(v) == "string" and v ~= "" then
      return name
    end
  end
  return nil
end

local function check_server(report, opts)
  report.start("lspilot: the server")
  local program = opts.cmd[1]
  local path = vim.fn.exepath(program)
  if path == "" then
    report.error("`" .. program .. "` is not an executable (cmd = " .. vim.inspect(opts.cmd) .. ")", { require("lspilot.server").INSTALL_HINT })
    return false
  end
  local code, out = run(vim.list_extend(vim.deepcopy(opts.cmd), { "--version" }), opts.cmd_env, 15)
  if code == 0 then
    report.ok(string.format("%s (%s)", out[#out] or "lspilot", path))
    return true
  end
  report.error(string.format("`%s --version` %s: %s", table.concat(opts.cmd, " "),
    code == nil and "did not answer within 15 s" or ("exited with " .. code), table.concat(out, " / ")))
  return false
end

-- The running server's lspilot.status: answer, or nil and why not (nil, nil when no
-- server runs).
local function running_status()
  if not require("lspilot.server").any(vim.api.nvim_get_current_buf()) then
    return nil, nil
  end
  local answer, problem = require("lspilot.status").fetch_sync(5000)
  if type(answer) ~= "table" then
    return nil, problem or "no answer"
  end
  return answer, nil
end

local function check_key(report, opts, answer, problem)
  report.start("lspilot: the API key")
  if answer or problem then
    if answer and type(answer.apiKeySet) == "boolean" then
      if answer.apiKeySet then
        report.ok("the running server has a key (for " .. tostring(util.value(answer.baseUrl, "?")) .. ")")
      else
        report.warn("the running server has no key for " .. tostring(util.value(answer.baseUrl, "?")),
          { "export LSPILOT_API_KEY=sk-... before starting Neovim, or set settings.apiKey / settings.apiKeyCommand" })
      end
      return
    end
    report.info("could not ask the running server: " .. tostring(problem or "its answer has no apiKeySet") .. "; looking at the environment")
  end
  local settings = plugin_settings(opts)
  local env_name = key_in_env(opts.cmd_env or {})
  if type(settings.apiKey) == "string" and settings.apiKey ~= "" then
    report.ok("settings.apiKey is set")
  elseif settings.apiKeyCommand ~= nil then
    report.ok("settings.apiKeyCommand gives the key: " .. vim.inspect(settings.apiKeyCommand))
  elseif env_name then
    report.ok(env_name .. " is set")
  elseif settings.baseUrl == "local" or vim.env.LSPILOT_BASE_URL == "local" then
    report.ok("no key needed: baseUrl is local (the bundled model)")
  else
    report.warn("no API key: neither LSPILOT_API_KEY nor OPENAI_API_KEY is set, nor settings.apiKey",
      { "export LSPILOT_API_KEY=sk-... (a local server such as Ollama takes any key)" })
  end
end

local function check_upstream(report, opts)
  report.start("lspilot: the upstream")
  local settings = plugin_settings(opts)
  local env = vim.deepcopy(opts.cmd_env or {})
  -- The key goes through the environment, never the command line (ps shows that).
  if type(settings.apiKey) == "string" then
    env.LSPILOT_API_KEY = settings.apiKey
    settings.apiKey = nil
  end
  settings.explainShow = nil
  local argv = vim.list_extend(vim.deepcopy(opts.cmd), { "check" })
  if next(settings) then
    vim.list_extend(argv, { "--settings", vim.fn.json_encode(settings) })
  end
  local seconds = opts.health_timeout or 20
  local code, out = run(argv, env, seconds)
  local last = out[#out] or ""
  if code == 0 then
    report.ok("reachable: " .. last)
  elseif code == nil then
    report.error("`lspilot check` got no answer within " .. seconds .. " s (health_timeout)",
      { "check baseUrl and your network (HTTPS_PROXY, NO_PROXY)" })
  else
    report.error("not reachable: " .. (last:gsub("^lspilot check: ", "")),
      { "run `" .. table.concat(opts.cmd, " ") .. " check` in a shell for the whole report" })
  end
end

-- The configured MCP servers, as the running server sees them (lspilot.status).
local function check_mcp(report, answer, problem)
  report.start("lspilot: MCP servers")
  if not answer then
    report.info(problem and ("could not ask the running server: " .. tostring(problem))
      or "no lspilot server is running: open a file it serves to see its MCP servers")
    return
  end
  if answer.mcpServers == nil then
    report.info("this server does not report MCP servers (it is older than the plugin)")
    return
  end
  local servers = require("lspilot.status").mcp_servers(answer)
  if #servers == 0 then
    report.info("none configured (mcpServers: :help lspilot-agent)")
    return
  end
  for _, server in ipairs(servers) do
    if server.state == "running" then
      report.ok(server.text)
    elseif server.state == "failed" then
      report.warn(server.text, { "its tools are left out; check `command`, `args` and `env` in mcpServers" })
    else
      report.info(server.text)
    end
  end
end

local function check_neovim(report)
  report.start("lspilot: Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  report.ok("Neovim " .. version)
  local suggestion = require("lspilot.suggestion")
  if suggestion.native_available() then
    report.info("ghost text: vim.lsp.inline_completion (Neovim 0.12+)" .. (suggestion.uses_native() and "" or "; off: suggestion.native = false, the plugin's own renders it"))
  else
    report.info("ghost text: the plugin's own (extmarks; Neovim 0.7 to 0.11)" .. (compat.has_0_10 and ", inline" or ", overlay"))
  end
  report.info("ghost text is " .. (suggestion.is_enabled() and "on" or "off") .. " (:LspilotSuggestion toggle)")
  local next_edit = config.options.next_edit or {}
  report.info("next edit suggestions are " .. (next_edit.enabled and "on" or "off") .. " (next_edit.enabled); shown "
    .. (compat.has_0_10 and "inline" or "at the end of the line") .. " where the server advertises them")
  report.info(compat.has_0_8 and "User LspilotDone carries args.data" or "User LspilotDone: read require(\"lspilot\").last_event (0.7 has no args.data)")
  report.info(compat.has_0_11 and "vim.lsp.enable(\"lspilot\") works (lsp/lspilot.lua)" or "vim.lsp.enable needs Neovim 0.11: use require(\"lspilot\").setup()")
end

local function check_log(report)
  report.start("lspilot: the log")
  local path = vim.lsp.get_log_path()
  report.info("Neovim's LSP log: " .. path .. " (lspilot's lines arrive as window/logMessage)")
  local level = vim.lsp.log and vim.lsp.log.get_level and vim.lsp.log.get_level()
  if type(level) == "number" then
    local names = {}
    for name, n in pairs(vim.log.levels) do
      names[n] = name
    end
    report.info("it keeps " .. tostring(names[level] or level) .. " and above (vim.lsp.set_log_level(\"info\") for more)")
  end
end

function M.check()
  local report = reporter()
  local opts = config.options
  if check_server(report, opts) then
    local answer, problem = running_status()
    check_key(report, opts, answer, problem)
    check_upstream(report, opts)
    check_mcp(report, answer, problem)
  end
  check_neovim(report)
  check_log(report)
end

return M
