-- :LspilotStatus: asks the server for `lspilot.status` and shows it readably.
-- Answer: { version, model, baseUrl, apiKeySet, running = { { token, action, uri } },
--           session = { requests, promptTokens, completionTokens, cost,
--                       groups = { actions, chat, ghostText, nextEdits } (each the
--                       same four totals; servers since issue 28) },
--           mcpServers = { { name, state, tools, error? } } }.
local server = require("lspilot.server")
local compat = require("lspilot.compat")
local util = require("lspilot.util")

local value = util.value
local M = {}

M.COMMAND = "lspilot.status"

local NO_SERVER = "no lspilot server is running for this buffer (or any); open a file of "
  .. "one of its filetypes, or see :help lspilot-setup"

--- Sends lspilot.status to the buffer's client (or any lspilot client);
--- `callback(err, answer)` with err a message string.
function M.fetch(callback, bufnr)
  local c = server.any(bufnr or vim.api.nvim_get_current_buf())
  if not c then
    callback(NO_SERVER, nil)
    return false
  end
  local ok = compat.request(c, "workspace/executeCommand", { command = M.COMMAND, arguments = {} }, function(err, result)
    if err then
      callback(M.explain_error(err), nil)
    elseif type(result) ~= "table" then
      callback("the server answered lspilot.status with " .. vim.inspect(result) .. ", not a status object", nil)
    else
      callback(nil, result)
    end
  end, bufnr)
  if not ok then
    callback("the lspilot server is not running", nil)
  end
  return ok
end

--- The same, waiting up to `ms` for the answer: answer, err.
function M.fetch_sync(ms, bufnr)
  local done, answer, problem = false, nil, nil
  if not M.fetch(function(err, result)
    done, answer, problem = true, result, err
  end, bufnr) and not done then
    return nil, problem or NO_SERVER
  end
  vim.wait(ms, function()
    return done
  end, 20)
  if not done then
    return nil, "the server did not answer lspilot.status within " .. ms .. " ms"
  end
  return answer, problem
end

function M.explain_error(err)
  local message = tostring(err.message or vim.inspect(err))
  if err.code == -32602 or err.code == -32601 or message:find("lspilot.status", 1, true) then
    return "the server does not answer lspilot.status (" .. message .. "): it is older than "
      .. "this plugin; install lspilot again from your checkout (:help lspilot-install)"
  end
  return "lspilot.status failed: " .. message
end

local function file_of(uri)
  if type(uri) ~= "string" then
    return "?"
  end
  local ok, path = pcall(vim.uri_to_fname, uri)
  return ok and vim.fn.fnamemodify(path, ":~:.") or uri
end

--- The configured MCP servers of an answer (`mcpServers`), each as { name, state,
--- tools, error, text }: `text` says it in words ("time: running, 2 tools").
function M.mcp_servers(answer)
  local list = {}
  local servers = type(answer) == "table" and answer.mcpServers or nil
  if type(servers) ~= "table" then
    return list
  end
  for _, s in ipairs(servers) do
    if type(s) == "table" then
      local name = tostring(value(s.name, "?"))
      local state = tostring(value(s.state, "?"))
      local tools = tonumber(value(s.tools, 0)) or 0
      local err = value(s.error, nil)
      local text = name .. ": " .. state
      if state == "running" then
        text = text .. ", " .. tools .. (tools == 1 and " tool" or " tools")
      elseif state == "stopped" then
        text = text .. " (it starts with the first agent turn)"
      elseif state == "refused" then
        text = text .. " (the workspace's settings named it and you said not to start it)"
      end
      if type(err) == "string" and err ~= "" then
        text = text .. ": " .. err
      end
      table.insert(list, { name = name, state = state, tools = tools, error = err, text = text })
    end
  end
  return list
end

-- session.groups: the key and the label of each, in the order shown.
M.GROUPS = {
  { key = "actions", label = "actions" },
  { key = "chat", label = "chat" },
  { key = "ghostText", label = "ghost text" },
  { key = "nextEdits", label = "next edits" },
}

--- "3 requests, 1,234 tokens in, 56 out, $0.0041" for a totals table (the session's,
--- or one of its groups).
function M.usage_line(totals)
  local cost = util.format_cost(value(totals.cost, nil))
  if cost == nil then
    if (tonumber(value(totals.requests, 0)) or 0) == 0 then
      cost = "nothing spent"
    else
      cost = "cost unknown (no price for the model: see the prices setting)"
    end
  end
  local requests = tonumber(value(totals.requests, 0)) or 0
  return string.format("%s %s, %s tokens in, %s out, %s",
    util.thousands(requests), requests == 1 and "request" or "requests",
    util.thousands(value(totals.promptTokens, 0)),
    util.thousands(value(totals.completionTokens, 0)), cost)
end

--- The answer as lines of text.
function M.format(answer)
  local lines = {}
  local function add(label, text)
    table.insert(lines, string.format("%-12s %s", label, text))
  end
  table.insert(lines, "lspilot " .. tostring(value(answer.version, "?")))
  add("model", tostring(value(answer.model, "?")))
  add("endpoint", tostring(value(answer.baseUrl, "?")))
  local key = value(answer.apiKeySet, nil)
  add("API key", key == true and "set" or key == false and "not set (LSPILOT_API_KEY, or settings.apiKey)" or "?")
  local running = type(answer.running) == "table" and answer.running or {}
  if #running == 0 then
    add("running", "nothing")
  else
    for i, run in ipairs(running) do
      add(i == 1 and "running" or "", string.format("%s %s (%s)", tostring(value(run.action, "?")), file_of(value(run.uri, nil)), tostring(value(run.token, "?"))))
    end
  end
  local session = type(answer.session) == "table" and answer.session or {}
  add("session", M.usage_line(session))
  -- Where it went (servers since issue 28): actions, chat, ghost text, next edits.
  local groups = type(answer.session) == "table" and type(session.groups) == "table" and session.groups or nil
  if groups then
    for _, group in ipairs(M.GROUPS) do
      if type(groups[group.key]) == "table" then
        add("  " .. group.label, M.usage_line(groups[group.key]))
      end
    end
  end
  for i, server in ipairs(M.mcp_servers(answer)) do
    add(i == 1 and "MCP" or "", server.text)
  end
  local suggestion = require("lspilot.suggestion")
  add("ghost text", (suggestion.is_enabled() and "on" or "off") .. " (" .. suggestion.engine() .. ")")
  return lines
end

--- :LspilotStatus.
function M.show()
  return M.fetch(function(err, answer)
    if err then
      util.notify(err, vim.log.levels.ERROR)
      return
    end
    M.last = answer
    vim.notify(table.concat(M.format(answer), "\n"), vim.log.levels.INFO, { title = "lspilot" })
  end)
end

return M
