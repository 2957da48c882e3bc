-- Drives one scenario in headless Neovim for tests/editors/test_neovim.py and writes
-- what it saw as JSON to $LSPILOT_TEST_OUT, then quits. The scenario and its
-- parameters come as JSON in $LSPILOT_TEST_SPEC:
--   { scenario, file, select = { from = {row, col}, to = {row, col}, mode }, instruction }
-- Rows are 1-based, columns 0-based bytes, like nvim_buf_get_mark().
local api = vim.api
local lspilot = require("lspilot")

local spec = vim.fn.json_decode(os.getenv("LSPILOT_TEST_SPEC"))
local out_path = os.getenv("LSPILOT_TEST_OUT")
local STEP_TIMEOUT = 20000

local result = {
  scenario = spec.scenario,
  nvim = tostring(vim.version().major) .. "." .. tostring(vim.version().minor),
  notifications = {},
  events = {},
  snapshots = {},
}

vim.notify = function(msg, level)
  table.insert(result.notifications, { msg = tostring(msg), level = level or vim.log.levels.INFO })
end

-- The plugin asks the server's questions with vim.ui.select (stubbed below); nothing
-- may fall back to vim.fn.inputlist, which would wait for a key forever here.
result.questions = {}
vim.fn.inputlist = function(items)
  table.insert(result.questions, items)
  return 0
end

local function record_event(name)
  return function(args)
    local data = args.data or lspilot.last_event or {}
    table.insert(result.events, {
      name = name,
      kind = data.kind,
      status = data.status,
      token = data.token,
      command = data.command,
      usage = data.usage,
      lsp_status = vim.lsp.status and vim.lsp.status() or nil,
      statusline = lspilot.statusline(),
      -- What the command line shows now (the plugin's echo), and the message sent.
      echo = require("lspilot.progress").echoed,
      message = data.message,
    })
  end
end
api.nvim_create_autocmd("User", { pattern = "LspilotProgress", callback = record_event("progress") })
api.nvim_create_autocmd("User", { pattern = "LspilotDone", callback = record_event("done") })
api.nvim_create_autocmd("User", {
  pattern = "LspilotToolCall",
  callback = function(args)
    local data = args.data or lspilot.last_event or {}
    table.insert(result.events, {
      name = "toolCall", id = data.id, tool = data.name, status = data.status,
      summary = data.summary, arguments = data.arguments, token = data.token,
    })
  end,
})

-- vim.ui.select as a picker the user answers later: it keeps the question and returns;
-- a scenario answers it from its own loop (so a handler that blocked until the answer
-- would never see it).
local pending_select = nil
result.selects = {}
vim.ui.select = function(items, opts, on_choice)
  local titles = {}
  for _, item in ipairs(items) do
    table.insert(titles, opts.format_item and opts.format_item(item) or tostring(item))
  end
  local entry = { prompt = opts.prompt, kind = opts.kind, titles = titles }
  table.insert(result.selects, entry)
  if spec.scenario ~= "agent" then
    -- Other scenarios meet "run the new tests?": answered with the last choice
    -- ("Not now") unless spec.answer names another (1-based), a moment later.
    local index = spec.answer or #items
    entry.answered = items[index] and items[index].title or vim.NIL
    vim.schedule(function()
      on_choice(items[index], index)
    end)
    return
  end
  pending_select = { items = items, on_choice = on_choice, entry = entry }
end

local suggestion = require("lspilot.suggestion")

-- The ghost text on screen: lspilot's extmarks in the current buffer, with their text.
local function ghost_marks(buf)
  local marks = {}
  buf = buf or api.nvim_get_current_buf()
  for _, mark in ipairs(api.nvim_buf_get_extmarks(buf, suggestion.namespace, 0, -1, { details = true })) do
    local details = mark[4] or {}
    local text, hl = "", nil
    for _, chunk in ipairs(details.virt_text or {}) do
      text = text .. chunk[1]
      hl = hl or chunk[2]
    end
    local lines = {}
    for _, line in ipairs(details.virt_lines or {}) do
      local joined = ""
      for _, chunk in ipairs(line) do
        joined = joined .. chunk[1]
      end
      table.insert(lines, joined)
    end
    table.insert(marks, {
      row = mark[2],
      col = mark[3],
      virt_text = text,
      virt_text_first = details.virt_text and details.virt_text[1] and details.virt_text[1][1] or nil,
      hl = hl,
      pos = details.virt_text_pos,
      virt_lines = lines,
    })
  end
  return marks
end

api.nvim_create_autocmd("User", {
  pattern = "LspilotSuggestion",
  callback = function(args)
    local data = args.data or lspilot.last_event or {}
    table.insert(result.events, {
      name = "suggestion",
      event = data.event,
      text = data.text,
      reason = data.reason,
      what = data.what,
      early = data.early,
      kind = data.kind,
      message = data.message,
      -- What is drawn at the moment of the event.
      marks = ghost_marks(),
      mode = api.nvim_get_mode().mode,
      line = api.nvim_get_current_line(),
    })
  end,
})

-- Screens (tests/editors/test_neovim.py's screen tests run Neovim in a terminal): at
-- each named point the driver redraws and waits until the test has read the screen.
-- Without spec.screens this does nothing.
function driver_screen(name)
  if not spec.screens then
    return
  end
  vim.cmd("redraw!")
  local ready = spec.screens .. "/" .. name .. ".ready"
  local taken = spec.screens .. "/" .. name .. ".taken"
  vim.fn.writefile({ name }, ready)
  local function taken_yet()
    return vim.fn.filereadable(taken) == 1
  end
  local co, is_main = coroutine.running()
  if co == nil or is_main then
    vim.wait(10000, taken_yet, 20)
    return
  end
  -- Inside the ghost text scenario's coroutine: yield to the event loop between looks,
  -- so insert mode and its redraws go on.
  local deadline = vim.loop.now() + 10000
  while not taken_yet() and vim.loop.now() < deadline do
    vim.defer_fn(function()
      coroutine.resume(co)
    end, 20)
    coroutine.yield()
  end
end

local function fail(message)
  error(message, 2)
end

local function wait(ms, predicate, what)
  if not vim.wait(ms, predicate, 10) then
    fail("timed out waiting for " .. what)
  end
end

local function buf_lines(buf)
  return api.nvim_buf_get_lines(buf or 0, 0, -1, false)
end

local function floats()
  local wins = {}
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_config(win).relative ~= "" then
      table.insert(wins, win)
    end
  end
  return wins
end

local function float_text()
  local wins = floats()
  if #wins == 0 then
    return nil
  end
  return table.concat(buf_lines(api.nvim_win_get_buf(wins[1])), "\n")
end

local function open_and_attach()
  vim.cmd("edit " .. vim.fn.fnameescape(spec.file))
  local buf = api.nvim_get_current_buf()
  if spec.immediately then
    -- Run the command at once, while the server still starts: the plugin must wait.
    result.original = buf_lines(buf)
    return buf, nil
  end
  wait(STEP_TIMEOUT, function()
    local client = lspilot.get_client(buf)
    return client ~= nil and client.initialized == true
  end, "the lspilot client to attach and initialize")
  local client = lspilot.get_client(buf)
  result.offset_encoding = client.offset_encoding
  result.init_options = client.config.init_options
  result.original = buf_lines(buf)
  return buf, client
end

-- Makes a visual selection and leaves visual mode, so '< and '> are set as after a
-- real selection; the command then runs as `:'<,'>Command`, the way a user types it.
local function select_range()
  local sel = spec.select
  api.nvim_win_set_cursor(0, { sel.from[1], sel.from[2] })
  local mode = sel.mode == "v" and "v" or "V"
  vim.cmd("normal! " .. mode)
  api.nvim_win_set_cursor(0, { sel.to[1], sel.to[2] })
  vim.cmd("normal! \27")
end

local function run_on_selection(command)
  select_range()
  local before = #lspilot.jobs()
  local args = spec.instruction and (" " .. spec.instruction) or ""
  vim.cmd("'<,'>" .. command .. args)
  local list = lspilot.jobs()
  if #list ~= before + 1 then
    fail(command .. " started no job; notifications: " .. vim.inspect(result.notifications))
  end
  local job = list[#list]
  result.request_range = job.range
  local client = vim.lsp.get_client_by_id(job.client_id)
  result.offset_encoding = client and client.offset_encoding
  result.init_options = client and client.config.init_options
  return job
end

local function job_summary(job)
  return {
    token = job.token,
    command = job.command,
    status = job.status,
    text = job.text,
    error = job.error,
    cancel_sent = job.cancel_sent or false,
  }
end

local function wait_done(job, ms)
  wait(ms or STEP_TIMEOUT, function()
    return job.status ~= "running"
  end, job.command .. " to finish")
end

local scenarios = {}

function scenarios.refactor()
  local buf = open_and_attach()
  local tick = api.nvim_buf_get_changedtick(buf)
  local job = run_on_selection("LspilotRefactor")
  if spec.screens then
    -- The command line while it runs: the echoed progress.
    wait(STEP_TIMEOUT, function()
      return require("lspilot.progress").echoed ~= nil or job.status ~= "running"
    end, "the progress echo")
    driver_screen("progress")
  end
  wait_done(job)
  -- The edit arrives before the command's answer; give a late one a moment anyway.
  vim.wait(2000, function()
    return api.nvim_buf_get_changedtick(buf) ~= tick
  end, 10)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
  result.modified = vim.bo[buf].modified
end

function scenarios.tests()
  local buf = open_and_attach()
  local job = run_on_selection("LspilotTests")
  wait_done(job)
  -- window/showDocument follows the edit.
  vim.wait(3000, function()
    return api.nvim_get_current_buf() ~= buf
  end, 10)
  result.job = job_summary(job)
  result.current_name = api.nvim_buf_get_name(0)
  result.buffers = {}
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and api.nvim_buf_get_name(b) ~= "" then
      table.insert(result.buffers, { name = api.nvim_buf_get_name(b), lines = buf_lines(b),
        modified = vim.bo[b].modified })
    end
  end
  result.source_after = buf_lines(buf)
  result.tests = job.tests
  if spec.show_output then
    vim.cmd("LspilotTestOutput")
    result.output_buffer = { name = api.nvim_buf_get_name(0), lines = buf_lines(0),
      modifiable = vim.bo.modifiable, buftype = vim.bo.buftype }
    driver_screen("test_output")
  end
  vim.cmd("silent! wall")
end

function scenarios.explain()
  local buf = open_and_attach()
  local float = require("lspilot.float")
  local job = run_on_selection("LspilotExplain")
  result.float_is_current = api.nvim_win_get_config(0).relative ~= ""
  local last
  wait(STEP_TIMEOUT, function()
    local text = job.float and float.text(job)
    if text ~= nil and text ~= last then
      table.insert(result.snapshots, text)
      last = text
    end
    return job.status ~= "running"
  end, "the explanation to finish")
  result.job = job_summary(job)
  result.float_count = #floats()
  result.float_text = job.float and float.text(job)
  result.float_lines = job.float and buf_lines(job.float.buf)
  local wins = floats()
  if #wins > 0 then
    local win = wins[1]
    result.float_filetype = vim.bo[api.nvim_win_get_buf(win)].filetype
    result.float_conceallevel = vim.wo[win].conceallevel
    local title = api.nvim_win_get_config(win).title
    if type(title) == "table" then
      local joined = ""
      for _, chunk in ipairs(title) do
        joined = joined .. (type(chunk) == "table" and chunk[1] or tostring(chunk))
      end
      title = joined
    end
    result.float_title = title
    local ok, parser = pcall(vim.treesitter.get_parser, api.nvim_win_get_buf(win))
    result.float_treesitter = ok and parser ~= nil and vim.treesitter.highlighter ~= nil
      and vim.treesitter.highlighter.active[api.nvim_win_get_buf(win)] ~= nil
  end
  result.buffer = buf_lines(buf)
  result.current_after = api.nvim_win_get_config(0).relative ~= ""
  driver_screen("explain")
  -- :LspilotFocus enters the window; q there closes it; the job is done, so nothing is
  -- cancelled.
  vim.cmd("LspilotFocus")
  result.float_is_current_after_focus = api.nvim_win_get_config(0).relative ~= ""
  if #wins > 0 then
    api.nvim_feedkeys("q", "xt", false)
  end
  vim.wait(200)
  result.float_count_after_q = #floats()
  result.job_after_q = job_summary(job)
  if spec.move_closes then
    -- A second explanation, closed by moving the cursor once it is done.
    local second = run_on_selection("LspilotExplain")
    wait_done(second)
    result.float_count_second = #floats()
    api.nvim_win_set_cursor(0, { 1, 0 })
    vim.cmd("doautocmd <nomodeline> CursorMoved")
    vim.wait(200, function()
      return #floats() == 0
    end, 10)
    result.float_count_after_move = #floats()
  end
end

-- Cancels a running refactor with :LspilotCancel once text streams in.
function scenarios.cancel()
  local buf = open_and_attach()
  local job = run_on_selection("LspilotRefactor")
  wait(STEP_TIMEOUT, function()
    return job.text ~= "" or job.status ~= "running"
  end, "the first streamed text")
  result.status_before_cancel = job.status
  result.text_before_cancel = job.text
  vim.cmd("LspilotCancel")
  wait_done(job, 10000)
  -- Nothing may be applied after a cancel: wait for a late edit that must not come.
  vim.wait(1500)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
  result.modified = vim.bo[buf].modified
end

-- Closes a running explanation with q, which must cancel it.
function scenarios.explain_close()
  local buf = open_and_attach()
  local job = run_on_selection("LspilotExplain")
  wait(STEP_TIMEOUT, function()
    return job.text ~= "" or job.status ~= "running"
  end, "the first streamed text")
  result.status_before_close = job.status
  local wins = floats()
  result.float_count = #wins
  if #wins > 0 then
    api.nvim_set_current_win(wins[1])
    api.nvim_feedkeys("q", "xt", false)
  end
  result.float_count_after_q = #floats()
  wait_done(job, 10000)
  vim.wait(500)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
end

-- An upstream error surfaces through vim.notify with the server's message.
function scenarios.failure()
  local buf = open_and_attach()
  local job = run_on_selection("LspilotRefactor")
  wait_done(job)
  vim.wait(300)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
end

-- The server's code action, picked through vim.lsp.buf.code_action()'s menu.
function scenarios.code_action()
  local buf = open_and_attach()
  local sel = spec.select
  local wanted = spec.action_command
  result.offered = {}
  vim.ui.select = function(items, opts, on_choice)
    local choice, index
    for i, item in ipairs(items) do
      local action = item.action or item[2] or item
      local command = type(action.command) == "table" and action.command.command or action.command
      table.insert(result.offered, { title = action.title, command = command, kind = action.kind })
      if command == wanted and not choice then
        choice, index = item, i
      end
    end
    on_choice(choice, index)
  end
  local before = #lspilot.jobs()
  -- Mark-indexed, end inclusive: through the last character of the last line.
  local last_line = api.nvim_buf_get_lines(buf, sel.to[1] - 1, sel.to[1], false)[1]
  local first, last = { sel.from[1], 0 }, { sel.to[1], math.max(0, #last_line - 1) }
  if vim.fn.has("nvim-0.8") == 1 then
    vim.lsp.buf.code_action({ range = { start = first, ["end"] = last } })
  else
    vim.lsp.buf.range_code_action(nil, first, last)
  end
  wait(STEP_TIMEOUT, function()
    return #lspilot.jobs() > before
  end, "the code action to start a job")
  local job = lspilot.jobs()[#lspilot.jobs()]
  result.request_range = job.range
  wait_done(job)
  local tick = api.nvim_buf_get_changedtick(buf)
  vim.wait(500, function()
    return api.nvim_buf_get_changedtick(buf) ~= tick
  end, 10)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
end

-- A refactor whose upstream makes the server log (INFO, WARNING), then the server is
-- stopped and its exit awaited: by then Neovim has read all it wrote to stderr, so
-- the test can read lsp.log whole.
function scenarios.log()
  local buf, client = open_and_attach()
  local job = run_on_selection("LspilotRefactor")
  wait_done(job)
  result.job = job_summary(job)
  result.buffer = buf_lines(buf)
  result.log_path = vim.lsp.get_log_path()
  client = client or vim.lsp.get_client_by_id(job.client_id)
  local id = client.id
  if vim.fn.has("nvim-0.11") == 1 then
    client:stop()
  else
    client.stop()
  end
  -- Neovim forgets a client once its process has exited; what it wrote to stderr
  -- during the action was read long before.
  wait(STEP_TIMEOUT, function()
    return vim.lsp.get_client_by_id(id) == nil
  end, "the server to exit")
end

-- The server command does not exist: open two files, try a command.
function scenarios.missing_server()
  vim.cmd("edit " .. vim.fn.fnameescape(spec.file))
  vim.cmd("edit " .. vim.fn.fnameescape(spec.other_file))
  vim.cmd("buffer " .. vim.fn.fnameescape(spec.file))
  select_range()
  vim.cmd("'<,'>LspilotRefactor")
  result.jobs = #lspilot.jobs()
  result.clients = #require("lspilot.compat").get_clients({})
end

-- A plain-text usage report, the same on 0.7 and later.
function scenarios.status()
  local buf = open_and_attach()
  local job = run_on_selection("LspilotRefactor")
  wait_done(job)
  result.job = job_summary(job)
  result.job.usage = job.usage
  local before = #result.notifications
  vim.cmd("LspilotStatus")
  wait(STEP_TIMEOUT, function()
    return #result.notifications > before
  end, ":LspilotStatus to show the status")
  result.status_message = result.notifications[#result.notifications].msg
  result.status_answer = require("lspilot.status").last
  result.buffer = buf_lines(buf)
end

-- :checkhealth lspilot with a running client; the report is the current buffer. With
-- spec.agent_message, an agent turn runs first (it starts the MCP servers).
function scenarios.health()
  open_and_attach()
  if spec.agent_message then
    vim.cmd("LspilotAgent " .. spec.agent_message)
    local job = require("lspilot.chat").state.job
    if not job then
      fail(":LspilotAgent started no turn; notifications: " .. vim.inspect(result.notifications))
    end
    wait_done(job)
    result.job = job_summary(job)
    vim.cmd("only")
  end
  vim.cmd("checkhealth lspilot")
  result.health = buf_lines(0)
end

-- setup() got bad options (neovim_init.lua passes spec.options as they are): the
-- server still starts with the defaults for those; a bad :LspilotSuggestion argument.
function scenarios.bad_options()
  open_and_attach()
  result.options = {
    float = lspilot.options.float,
    notify_done = lspilot.options.notify_done,
    keys = lspilot.options.suggestion.keys,
  }
  -- setup() ran before this driver could catch vim.notify: its problems are kept.
  result.option_problems = lspilot.option_problems
  vim.cmd("LspilotSuggestion sideways")
end

-- Chat: the chat buffer's lines, growing snapshots while `job` streams.
local function chat_lines()
  return buf_lines(require("lspilot.chat").state.buf)
end

local function wait_chat_turn(job, snapshots)
  local last
  wait(STEP_TIMEOUT, function()
    local text = table.concat(chat_lines(), "\n")
    if snapshots and text ~= last then
      table.insert(snapshots, text)
      last = text
    end
    return job.status ~= "running"
  end, "the chat answer to finish")
end

local function row_of(lines, text)
  local found
  for i, line in ipairs(lines) do
    if line == text then
      found = i
    end
  end
  if not found then
    fail("no line " .. vim.inspect(text) .. " in the chat: " .. vim.inspect(lines))
  end
  return found
end

-- :'<,'>LspilotChat on a selection, a second turn typed on the prompt line (<CR> in
-- insert mode), then :LspilotChatApply on a line outside the answer's blocks (refused)
-- and inside its spec.apply_line block.
function scenarios.chat()
  local buf = open_and_attach()
  local chat = require("lspilot.chat")
  select_range()
  vim.cmd("'<,'>LspilotChat " .. spec.message)
  local job = chat.state.job
  if not job then
    fail(":LspilotChat started no turn; notifications: " .. vim.inspect(result.notifications))
  end
  result.chat_is_current = api.nvim_get_current_buf() == chat.state.buf
  result.chat_floating = api.nvim_win_get_config(0).relative ~= ""
  result.chat_filetype = vim.bo.filetype
  result.chat_wrap = { vim.wo.wrap, vim.wo.linebreak, vim.wo.breakindent }
  result.windows = #api.nvim_tabpage_list_wins(0)
  result.first_request = job.arguments
  wait_chat_turn(job, result.snapshots)
  result.first = job_summary(job)
  result.conversation = chat.state.conversation
  result.after_first = chat_lines()
  result.cursor_after_first = api.nvim_win_get_cursor(0)
  api.nvim_feedkeys("GA" .. spec.second .. "\r\27", "xt", false)
  wait(STEP_TIMEOUT, function()
    return chat.state.job ~= job
  end, "the prompt line's turn to start")
  local second = chat.state.job
  result.second_request = second.arguments
  wait_chat_turn(second)
  result.second = job_summary(second)
  result.after_second = chat_lines()
  driver_screen("chat")
  local before = #result.notifications
  api.nvim_win_set_cursor(0, { row_of(chat_lines(), spec.outside_line), 0 })
  vim.cmd("LspilotChatApply")
  result.outside_notifications = vim.list_slice(result.notifications, before + 1)
  api.nvim_win_set_cursor(0, { row_of(chat_lines(), spec.apply_line), 0 })
  vim.cmd("LspilotChatApply")
  wait(STEP_TIMEOUT, function()
    return chat.last_apply ~= nil
  end, "lspilot.chatApply to answer")
  result.apply = chat.last_apply
  result.source = buf_lines(buf)
  result.source_modified = vim.bo[buf].modified
end

-- :LspilotChat on the file (no range), a second turn that q cancels while it streams,
-- :LspilotChatNew, and a turn sent with <CR> in normal mode from the prompt line.
function scenarios.chat_cancel_new()
  local buf = open_and_attach()
  local chat = require("lspilot.chat")
  vim.cmd("LspilotChat " .. spec.message)
  local first = chat.state.job
  result.first_request = first.arguments
  wait_chat_turn(first)
  result.first = job_summary(first)
  result.conversation = chat.state.conversation
  vim.cmd("LspilotChat " .. spec.second)
  local second = chat.state.job
  wait(STEP_TIMEOUT, function()
    return second.text ~= "" or second.status ~= "running"
  end, "the second answer's first text")
  result.status_before_q = second.status
  api.nvim_feedkeys("q", "xt", false)
  wait_chat_turn(second)
  result.second = job_summary(second)
  result.after_cancel = chat_lines()
  vim.cmd("LspilotChatNew")
  result.after_new = chat_lines()
  result.conversation_after_new = chat.state.conversation or vim.NIL
  local last = api.nvim_buf_line_count(chat.state.buf)
  api.nvim_buf_set_lines(chat.state.buf, last - 1, last, false, { spec.third })
  api.nvim_win_set_cursor(0, { last, 0 })
  api.nvim_feedkeys("\r", "xt", false)
  wait(STEP_TIMEOUT, function()
    return chat.state.job ~= nil and chat.state.job ~= second
  end, "the normal-mode <CR> turn to start")
  local third = chat.state.job
  result.third_request = third.arguments
  wait_chat_turn(third)
  result.third = job_summary(third)
  result.third_conversation = chat.state.conversation
  result.after_third = chat_lines()
  result.source = buf_lines(buf)
end

-- Agent mode: :LspilotAgent on the file; each question answered from this loop with the
-- next of spec.answers (a title, or false: the select dismissed); with spec.cancel_on
-- (a tool name), once that step runs and spec.pid_file exists, q in the chat cancels.
function scenarios.agent()
  local buf = open_and_attach()
  local chat = require("lspilot.chat")
  vim.cmd("LspilotAgent " .. spec.message)
  local job = chat.state.job
  if not job then
    fail(":LspilotAgent started no turn; notifications: " .. vim.inspect(result.notifications))
  end
  result.request = job.arguments
  local answer = chat.state.answer
  local answers = vim.deepcopy(spec.answers or {})
  local cancelled = false
  local function step_running(name)
    for _, seg in ipairs(answer.segments) do
      if seg.name == name and seg.status == "running" then
        return true
      end
    end
    return false
  end
  local function cancel_due()
    return spec.cancel_on and not cancelled and step_running(spec.cancel_on)
      and vim.fn.filereadable(spec.pid_file) == 1 and #vim.fn.readfile(spec.pid_file) > 0
  end
  while job.status == "running" do
    wait(STEP_TIMEOUT, function()
      return pending_select ~= nil or cancel_due() or job.status ~= "running"
    end, "a question, the step to cancel, or the agent turn's end")
    if pending_select then
      local p = pending_select
      pending_select = nil
      p.entry.chat = chat_lines()
      local want = table.remove(answers, 1)
      local choice, index
      for i, item in ipairs(p.items) do
        if item.title == want then
          choice, index = item, i
        end
      end
      p.entry.answered = want or vim.NIL
      p.on_choice(choice, index)
    elseif cancel_due() then
      cancelled = true
      result.chat_before_cancel = chat_lines()
      result.status_before_cancel = job.status
      for _, w in ipairs(api.nvim_tabpage_list_wins(0)) do
        if api.nvim_win_get_buf(w) == chat.state.buf then
          api.nvim_set_current_win(w)
        end
      end
      api.nvim_feedkeys("q", "xt", false)
    end
  end
  result.job = job_summary(job)
  result.job.usage = job.usage
  result.summary = answer.summary
  result.steps = answer.steps
  result.chat = chat_lines()
  result.asked = require("lspilot.ask").asked
  result.conversation = chat.state.conversation
  result.source = buf_lines(buf)
  result.source_modified = vim.bo[buf].modified
  api.nvim_buf_call(buf, function()
    vim.cmd("silent undo")
  end)
  result.source_after_undo = buf_lines(buf)
end

-- The one cost format (util.format_cost) on spec.costs, no server involved; a cost of
-- false stands for "no cost" (nil).
function scenarios.format_cost()
  local util = require("lspilot.util")
  result.costs = {}
  for _, cost in ipairs(spec.costs) do
    table.insert(result.costs, util.format_cost(cost ~= false and cost or nil) or vim.NIL)
  end
  -- What a Write tests end message adds for a run's `tests`.
  result.tests_words = {}
  for _, tests in ipairs(spec.tests or {}) do
    table.insert(result.tests_words, require("lspilot.testrun").finished(tests))
  end
  -- :LspilotStatus's lines for answers with and without session.groups.
  result.status_lines = {}
  for _, answer in ipairs(spec.status_answers or {}) do
    table.insert(result.status_lines, require("lspilot.status").format(answer))
  end
end

-- Ghost text. Insert mode only lasts while Neovim reads keys, so this scenario runs as
-- a coroutine: it types with nvim_input() and yields until what it waits for happened.
local co
local driver_finish -- defined with finish() below

local function await(predicate, what, ms)
  local deadline = vim.loop.now() + (ms or STEP_TIMEOUT)
  while not predicate() do
    if vim.loop.now() > deadline then
      fail("timed out waiting for " .. what)
    end
    local me = coroutine.running()
    vim.defer_fn(function()
      local ok, err = coroutine.resume(me)
      if not ok then
        result.ok = false
        result.error = debug.traceback(me, err)
        vim.schedule(driver_finish)
      end
    end, 10)
    coroutine.yield()
  end
end

local function suggestion_events()
  local list = {}
  for _, e in ipairs(result.events) do
    if e.name == "suggestion" then
      table.insert(list, e)
    end
  end
  return list
end

-- Waits for the next suggestion event `event` after the `seen`-th, returns it and its
-- index.
local function await_event(event, seen, what)
  local found, index
  await(function()
    local list = suggestion_events()
    for i = seen + 1, #list do
      -- A block's early first lines count as "shown" only where a test asks for them.
      local early_ok = not list[i].early or spec.early_shown
      if list[i].event == event and early_ok then
        found, index = list[i], i
        return true
      end
    end
    return false
  end, what or ("the suggestion event " .. event))
  return found, index
end

local function count_events()
  return #suggestion_events()
end

-- spec.at = {row, col}: where to start typing (i before col; A at the end of row when
-- col is nil);
-- spec.type: what to type; spec.steps: a list of { keys, wait = event } after the
-- ghost text first shows, each step's result recorded in result.steps.
function scenarios.suggest()
  local buf = open_and_attach()
  result.suggestion_engine = suggestion.engine()
  result.attached = suggestion.is_attached(buf)
  api.nvim_win_set_cursor(0, { spec.at[1], spec.at[2] or 0 })
  local seen = count_events()
  api.nvim_input((spec.at[2] and "i" or "A") .. (spec.type or ""))
  if spec.first_wait ~= false then
    local shown
    shown, seen = await_event("shown", seen, "the ghost text to appear")
    result.shown = shown
    result.get = suggestion.get()
    driver_screen(spec.early_shown and "ghost_block" or "ghost_text")
  else
    await(function()
      return api.nvim_get_mode().mode:sub(1, 1) == "i" and api.nvim_get_current_line() ~= result.original[spec.at[1]]
    end, "the typing to arrive")
  end
  result.steps = {}
  for _, step in ipairs(spec.steps or {}) do
    local before = seen
    api.nvim_input(step.keys)
    local event
    event, seen = await_event(step.wait, before, step.wait .. " after " .. step.keys)
    local between = {}
    for i, e in ipairs(suggestion_events()) do
      if i > before and i <= seen then
        table.insert(between, e.event)
      end
    end
    table.insert(result.steps, {
      keys = step.keys,
      event = event,
      events = between,
      line = api.nvim_get_current_line(),
      cursor = api.nvim_win_get_cursor(0),
      mode = api.nvim_get_mode().mode,
      marks = ghost_marks(buf),
    })
  end
  result.buffer = buf_lines(buf)
  api.nvim_input("<Esc>")
  await(function()
    return api.nvim_get_mode().mode == "n"
  end, "normal mode")
  result.marks_after = ghost_marks(buf)
end

-- Next edit suggestions ----------------------------------------------------------------

local nextedit = require("lspilot.nextedit")

local function next_edit_events()
  local list = {}
  for _, e in ipairs(result.events) do
    if e.name == "nextEdit" then
      table.insert(list, e)
    end
  end
  return list
end

-- lspilot's next-edit extmarks in `buf`: position, end, highlight and virtual text.
local function next_edit_marks(buf)
  local marks = {}
  for _, mark in ipairs(api.nvim_buf_get_extmarks(buf, nextedit.namespace, 0, -1, { details = true })) do
    local d = mark[4] or {}
    local text, hl = "", nil
    for _, chunk in ipairs(d.virt_text or {}) do
      text = text .. chunk[1]
      if chunk[2] ~= "NonText" then
        hl = hl or chunk[2]
      end
    end
    table.insert(marks, {
      row = mark[2], col = mark[3], end_row = d.end_row, end_col = d.end_col,
      hl_group = d.hl_group, virt_text = text ~= "" and text or nil, virt_hl = hl, pos = d.virt_text_pos,
    })
  end
  return marks
end

api.nvim_create_autocmd("User", {
  pattern = "LspilotNextEdit",
  callback = function(args)
    local data = args.data or lspilot.last_event or {}
    table.insert(result.events, { name = "nextEdit", event = data.event, reason = data.reason,
      version = data.version, edits = data.edits, message = data.message })
  end,
})

-- Waits for the next next-edit event `event` after the `seen`-th; returns it and its index.
local function wait_next_edit(event, seen, what)
  local found, index
  wait(STEP_TIMEOUT, function()
    local list = next_edit_events()
    for i = seen + 1, #list do
      if list[i].event == event then
        found, index = list[i], i
        return true
      end
    end
    return false
  end, what or ("the next edit event " .. event))
  return found, index
end

local function keys(lhs)
  api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), "xt", false)
end

-- spec.edit: keys that change the buffer at spec.at = {row, col}; the suggestion shows;
-- then spec.finish: "accept" (the jump key, the accept key, then undo), "dismiss" (the
-- dismiss key) or "edit" (spec.second_edit's keys: a newer change clears it).
function scenarios.next_edit()
  local buf = open_and_attach()
  result.supported = nextedit.supported(lspilot.get_client(buf))
  api.nvim_win_set_cursor(0, spec.at)
  keys(spec.edit)
  result.after_edit = buf_lines(buf)
  local shown, seen = wait_next_edit("shown", 0, "the next edit suggestion to show")
  result.shown = shown
  result.marks = next_edit_marks(buf)
  result.get = nextedit.get()
  local k = lspilot.options.next_edit.keys
  if spec.finish == "accept" then
    keys(k.jump)
    result.cursor_after_jump = api.nvim_win_get_cursor(0)
    result.mode_after_jump = api.nvim_get_mode().mode
    keys(k.accept)
    result.after_accept = buf_lines(buf)
    result.marks_after = next_edit_marks(buf)
    vim.cmd("silent undo")
    result.after_undo = buf_lines(buf)
  elseif spec.finish == "dismiss" then
    keys(k.dismiss)
    result.marks_after = next_edit_marks(buf)
    result.after_dismiss = buf_lines(buf)
    -- Nothing comes back until the next change: the pause passes, no request follows.
    vim.wait(lspilot.options.next_edit.debounce + 700)
  else
    keys(spec.second_edit)
    result.cleared = wait_next_edit("cleared", seen, "the suggestion to clear")
    result.marks_after = next_edit_marks(buf)
    result.get_after = nextedit.get() or vim.NIL
    -- The newer change is asked about in its turn.
    wait_next_edit("requested", seen, "a request for the newer change")
  end
  result.next_edit_events = next_edit_events()
  result.buffer = buf_lines(buf)
end

-- next_edit.enabled = false: the change is made, the pause passes, nothing is asked
-- (the ghost-text-free normal mode change leaves the upstream alone).
function scenarios.next_edit_off()
  local buf = open_and_attach()
  api.nvim_win_set_cursor(0, spec.at)
  keys(spec.edit)
  -- A ghost-text request would not come in normal mode; an lspilot.status answer comes
  -- after anything the server was asked before it.
  vim.wait(lspilot.options.next_edit.debounce + 500)
  require("lspilot.status").fetch_sync(5000, buf)
  result.next_edit_events = next_edit_events()
  result.buffer = buf_lines(buf)
end

local function finish()
  -- :messages: what the plugin echoed (progress) must not pile up there.
  result.messages = vim.fn.execute("messages")
  -- The ghost text's highlight as defined now (the plugin's default or the user's).
  result.suggestion_highlight = vim.trim(vim.fn.execute("highlight LspilotSuggestion"))
  vim.fn.writefile({ vim.fn.json_encode(result) }, out_path)
  vim.cmd("qa!")
end

-- A last guard: the Python side kills Neovim too, but a result is more useful.
vim.defer_fn(function()
  result.ok = false
  result.error = "driver timed out (45 s)"
  driver_finish()
end, 45000)

local finished = false
driver_finish = function()
  if not finished then
    finished = true
    finish()
  end
end

local scenario = scenarios[spec.scenario]
if scenario == scenarios.suggest then
  co = coroutine.create(function()
    scenario()
  end)
  local ok, err = coroutine.resume(co)
  if not ok then
    result.ok = false
    result.error = debug.traceback(co, err)
    driver_finish()
  else
    -- The coroutine ends in a timer callback; finish then.
    local timer = vim.loop.new_timer()
    timer:start(20, 20, vim.schedule_wrap(function()
      if coroutine.status(co) == "dead" and not finished then
        timer:stop()
        if result.ok == nil then
          result.ok = true
        end
        driver_finish()
      end
    end))
  end
else
  local ok, err = xpcall(function()
    if not scenario then
      fail("unknown scenario " .. tostring(spec.scenario))
    end
    scenario()
  end, debug.traceback)
  result.ok = ok
  if not ok then
    result.error = tostring(err)
  end
  driver_finish()
end
