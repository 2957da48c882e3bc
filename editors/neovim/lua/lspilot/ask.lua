-- The server's questions (window/showMessageRequest): agent approvals ("Allow" /
-- "Allow for this conversation" / "Deny"), the key question, "run the new tests?".
-- lspilot's client answers them with vim.ui.select, never with a blocking inputlist of
-- its own, and answers when the user has chosen, however long a picker stays open:
--
-- * Neovim 0.11 runs server-request handlers in a coroutine: the handler yields and
--   the answer is sent when it resumes.
-- * Neovim 0.7 (and any that calls the handler outside a coroutine) sends whatever the
--   handler returns at once. There the handler returns a placeholder; the write of that placeholder's
--   response to lspilot's stdin is held back (its request id read from it), and the
--   real response is written to the same pipe when the user chooses. The pipe is the
--   one spawned for lspilot's client (captured while the client starts); no other
--   client's traffic is touched.
-- * When neither works (a client this plugin did not start on an old Neovim), the
--   handler waits for the choice with vim.wait, so a picker that answers at once
--   (Neovim's own vim.ui.select) still works.
--
-- A dismissed select answers null, which the server takes as "Deny" / "Not now".
local compat = require("lspilot.compat")

local M = {}

M.MARKER = "lspilotPendingAnswer"
M.WAIT_MS = 300000 -- the server gives up on a question after 300 s

local pipes = {} -- client id -> the stdin pipe of its server (old Neovims)
local held = {} -- pending number -> { id = <raw JSON id>, pipe }
local counter = 0
local write_wrapped = false
local original_write

--- Listeners, by name: fn(question) called for each question before the select opens;
--- `question` = { message, actions, client_id }; the listener may return a function
--- called with the chosen title (nil when dismissed).
M.listeners = {}

--- The questions asked this session, oldest first: { message, titles, answer }.
M.asked = {}

local function format_item(action)
  local title = type(action) == "table" and action.title or tostring(action)
  return (tostring(title):gsub("\r\n", "\\r\\n"):gsub("\n", "\\n"))
end

--- The select's prompt: the message's first line (a picker shows one line; the chat
--- shows the whole question, diff and all), naming lspilot.
local function prompt_of(message)
  local first = message:match("^([^\n]*)") or message
  if not first:match("^lspilot") then
    first = "lspilot: " .. first
  end
  return first
end

--- Opens vim.ui.select for `params`; `done(choice)` gets the MessageActionItem or nil.
local function select(params, ctx, done)
  local message = type(params.message) == "string" and params.message or ""
  local actions = type(params.actions) == "table" and params.actions or {}
  local record = { message = message, titles = {}, answer = nil }
  for _, a in ipairs(actions) do
    table.insert(record.titles, format_item(a))
  end
  table.insert(M.asked, record)
  local after = {}
  for _, listener in pairs(M.listeners) do
    local ok, cb = pcall(listener, { message = message, actions = actions, client_id = ctx and ctx.client_id })
    if ok and type(cb) == "function" then
      table.insert(after, cb)
    end
  end
  local answered = false
  local function on_choice(choice)
    if answered then
      return
    end
    answered = true
    record.answer = choice and choice.title or vim.NIL
    for _, cb in ipairs(after) do
      pcall(cb, choice and choice.title or nil)
    end
    done(choice)
  end
  if #actions == 0 then
    vim.notify("lspilot: " .. (message:gsub("^lspilot:%s*", "", 1)), vim.log.levels.INFO)
    on_choice(nil)
    return
  end
  local ok, problem = pcall(vim.ui.select, actions, {
    prompt = prompt_of(message),
    kind = "lspilot_question",
    format_item = format_item,
  }, on_choice)
  if not ok then
    vim.notify("lspilot: could not ask: " .. tostring(problem), vim.log.levels.ERROR)
    on_choice(nil)
  end
end

local function write_response(pipe, raw_id, choice)
  local result = choice and vim.fn.json_encode({ title = choice.title }) or "null"
  local body = '{"jsonrpc":"2.0","id":' .. raw_id .. ',"result":' .. result .. "}"
  if not pipe:is_closing() then
    original_write(pipe, "Content-Length: " .. #body .. "\r\n\r\n" .. body)
  end
end

--- Holds back the placeholder response (old Neovims); everything else passes.
local function wrap_write(pipe)
  if write_wrapped then
    return true
  end
  local mt = getmetatable(pipe)
  local methods = mt and mt.__index
  if type(methods) ~= "table" or type(methods.write) ~= "function" then
    return false
  end
  original_write = methods.write
  methods.write = function(self, data, ...)
    if type(data) == "string" and data:find(M.MARKER, 1, true) then
      for _, p in pairs(pipes) do
        if p == self then
          local body = data:match("\r\n\r\n(.*)$") or data
          local ok, decoded = pcall(vim.fn.json_decode, body)
          local n = ok and type(decoded) == "table" and type(decoded.result) == "table" and decoded.result[M.MARKER]
          local entry = n and held[n]
          if entry and decoded.id ~= nil then
            entry.raw_id = vim.fn.json_encode(decoded.id)
            entry.pipe = self
            if entry.choice_made then
              held[n] = nil
              write_response(self, entry.raw_id, entry.choice)
            end
            return 0
          end
        end
      end
    end
    return original_write(self, data, ...)
  end
  write_wrapped = true
  return true
end

--- Runs `start()` (which starts lspilot's client) and remembers the stdin pipe of the
--- server it spawns, for answering questions later on Neovims without coroutine
--- handlers. Returns what `start` returns.
function M.capture(start)
  if compat.has_0_11 then
    return start()
  end
  local uv = compat.uv
  local spawn = uv.spawn
  local stdin
  uv.spawn = function(cmd, opts, ...)
    if type(opts) == "table" and type(opts.stdio) == "table" and stdin == nil then
      stdin = opts.stdio[1]
    end
    return spawn(cmd, opts, ...)
  end
  local ok, id = pcall(start)
  uv.spawn = spawn
  if not ok then
    error(id, 0)
  end
  if id and stdin and wrap_write(stdin) then
    pipes[id] = stdin
  end
  return id
end

--- The window/showMessageRequest handler of lspilot's client.
function M.handler(_, params, ctx)
  params = type(params) == "table" and params or {}
  local co, is_main = coroutine.running()
  if co ~= nil and not is_main then
    local waiting, early, got_early = false, nil, false
    select(params, ctx, function(choice)
      if not waiting then
        -- Answered before the handler yielded (Neovim's own vim.ui.select).
        got_early, early = true, choice
        return
      end
      vim.schedule(function()
        coroutine.resume(co, choice or vim.NIL)
      end)
    end)
    if got_early then
      return early or vim.NIL
    end
    waiting = true
    return coroutine.yield()
  end
  -- Old Neovims: answer now when the select answers at once, else later through the pipe.
  local now, choice = false, nil
  counter = counter + 1
  local n = counter
  local pipe = ctx and pipes[ctx.client_id]
  local entry = { choice_made = false }
  held[n] = entry
  select(params, ctx, function(c)
    if not now then
      now, choice = true, c
    end
    if entry.raw_id then
      held[n] = nil
      write_response(entry.pipe, entry.raw_id, c)
    else
      entry.choice_made, entry.choice = true, c
    end
  end)
  if entry.choice_made and entry.raw_id == nil and now then
    -- Answered synchronously (Neovim's own vim.ui.select): the normal response.
    held[n] = nil
    return choice or vim.NIL
  end
  if pipe and not pipe:is_closing() then
    return { [M.MARKER] = n }
  end
  held[n] = nil
  vim.wait(M.WAIT_MS, function()
    return entry.choice_made
  end, 50)
  return entry.choice or vim.NIL
end

return M
