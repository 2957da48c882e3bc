-- The chat buffer (:LspilotChat, :LspilotChatApply, :LspilotChatNew): one conversation
-- with the server's lspilot.chat, its answers streamed in under a header per turn, a
-- prompt below a separator line at the bottom (<CR> sends), an answer's code block
-- applied to the source buffer's last visual selection with lspilot.chatApply.
-- In agent mode (:LspilotAgent) a turn's steps (lspilot/toolCall) and approval
-- questions show in its answer as they happen, and its steps and cost at its end.
local agent = require("lspilot.agent")
local ask = require("lspilot.ask")
local server = require("lspilot.server")
local compat = require("lspilot.compat")
local events = require("lspilot.events")
local jobs = require("lspilot.jobs")
local range = require("lspilot.range")
local util = require("lspilot.util")

local api = vim.api
local levels = vim.log.levels

local M = {}

M.COMMAND = "lspilot.chat"
M.RESET = "lspilot.chatReset"
M.APPLY = "lspilot.chatApply"
M.NAME = "lspilot://chat"
M.SEPARATOR = "──── your message (<CR> sends; q cancels an answer) ────"

M.namespace = api.nvim_create_namespace("lspilot-chat")

-- The one chat: its buffer, the server's conversation id, the turns shown, the running
-- turn's job, and the source buffer (the file the chat was started from).
local state = {
  buf = nil,
  conversation = nil,
  client_id = nil,
  turns = {}, -- { role, mark, text, rendered, status, turn }
  answers = 0, -- answers the server kept (the `turn` index of the next one)
  job = nil,
  source = nil, -- { bufnr, marks = { s, e }, mode }
  pending = nil, -- context for the next turn from the prompt { bufnr, uri, range }
  separator = nil, -- extmark of the separator line
  generation = 0,
  mode = "ask", -- "ask" (chat) or "agent" (the model works in the workspace with tools)
  answer = nil, -- the running turn's answer
}
M.state = state
--- The answer to the last :LspilotChatApply: { status, error }.
M.last_apply = nil

local function valid_buf(buf)
  return buf ~= nil and api.nvim_buf_is_valid(buf)
end

local function mark_row(id)
  local pos = api.nvim_buf_get_extmark_by_id(state.buf, M.namespace, id, {})
  return pos[1]
end

local function set_lines(first, last, lines)
  api.nvim_buf_set_lines(state.buf, first, last, false, lines)
end

local function reset_buffer()
  api.nvim_buf_clear_namespace(state.buf, M.namespace, 0, -1)
  set_lines(0, -1, { M.SEPARATOR, "" })
  state.separator = api.nvim_buf_set_extmark(state.buf, M.namespace, 0, 0, {})
end

local function separator_row()
  return mark_row(state.separator)
end

--- The chat buffer, made when missing.
local function ensure_buf()
  if valid_buf(state.buf) then
    return state.buf
  end
  local buf = api.nvim_create_buf(false, true)
  state.buf = buf
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].undolevels = -1 -- an undo would take the streamed text apart
  pcall(api.nvim_buf_set_name, buf, M.NAME)
  vim.bo[buf].filetype = "markdown"
  reset_buffer()
  local function map(mode, lhs, rhs, desc, expr)
    vim.keymap.set(mode, lhs, rhs, { buffer = buf, silent = true, nowait = true, expr = expr, desc = desc })
  end
  map("n", "<CR>", function()
    M.send_prompt()
  end, "lspilot: send the message")
  map("i", "<CR>", function()
    local row = api.nvim_win_get_cursor(0)[1] - 1
    if row > separator_row() then
      vim.schedule(M.send_prompt)
      return ""
    end
    return "\r"
  end, "lspilot: send the message", true)
  map("n", "q", function()
    if state.job and state.job.status == "running" then
      jobs.cancel(state.job.token)
    elseif #api.nvim_list_wins() > 1 then
      pcall(api.nvim_win_close, 0, false)
    end
  end, "lspilot: cancel the answer (else close the window)")
  api.nvim_create_autocmd("BufWinEnter", {
    buffer = buf,
    callback = function()
      M.wrap(api.nvim_get_current_win())
    end,
  })
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      state.buf = nil
      state.turns = {}
    end,
  })
  return buf
end

--- Long lines wrap at word boundaries, each continuation indented as its line (a
--- list item's, a code block's), in any window showing the chat (all since 0.7).
function M.wrap(win)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].breakindent = true
  vim.wo[win].breakindentopt = "shift:2"
end

--- The window showing the chat in this tab page, split off when there is none.
local function show(focus)
  local buf = ensure_buf()
  local win
  for _, w in ipairs(api.nvim_tabpage_list_wins(0)) do
    if api.nvim_win_get_buf(w) == buf then
      win = w
      break
    end
  end
  if not win then
    if api.nvim_win_get_config(0).relative ~= "" then
      for _, w in ipairs(api.nvim_tabpage_list_wins(0)) do
        if api.nvim_win_get_config(w).relative == "" then
          api.nvim_set_current_win(w)
          break
        end
      end
    end
    local width = math.max(40, math.floor(vim.o.columns * 0.4))
    vim.cmd("botright " .. width .. "vsplit")
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
    vim.wo[win].number = false
    vim.wo[win].relativenumber = false
  end
  M.wrap(win)
  if focus then
    api.nvim_set_current_win(win)
    pcall(api.nvim_win_set_cursor, win, { api.nvim_buf_line_count(buf), 0 })
  end
  return win
end

local function set_status(turn, text, hl)
  local row = mark_row(turn.mark)
  if row == nil then
    return
  end
  local opts = { id = turn.mark }
  if text and text ~= "" then
    opts.virt_text = { { "  " .. text, hl or "Comment" } }
    opts.virt_text_pos = "eol"
  end
  api.nvim_buf_set_extmark(state.buf, M.namespace, row, 0, opts)
end

local function text_lines(chunk, into)
  local lines = vim.split(chunk, "\n", { plain = true })
  while #lines > 0 and lines[#lines] == "" do
    table.remove(lines)
  end
  vim.list_extend(into, lines)
end

--- An answer's lines: its text, with the agent's steps (and their approval questions)
--- where they happened in it.
function M.answer_lines(turn, text)
  local lines = {}
  local pos = 0
  for _, seg in ipairs(turn.segments or {}) do
    local upto = math.min(seg.offset, #text)
    if upto > pos then
      text_lines(text:sub(pos + 1, upto), lines)
      pos = upto
    end
    table.insert(lines, agent.step_line(seg))
    if seg.question then
      vim.list_extend(lines, agent.question_lines(seg.question.message, seg.question.answer))
    end
  end
  if pos < #text then
    text_lines(text:sub(pos + 1), lines)
  end
  return lines
end

--- Shows `text` (the answer so far) under the turn's header; `extra` lines after it.
local function render(turn, text, extra)
  if not valid_buf(state.buf) then
    return
  end
  local row = mark_row(turn.mark)
  if row == nil then
    return
  end
  local lines = M.answer_lines(turn, text or "")
  for _, line in ipairs(extra or {}) do
    table.insert(lines, line)
  end
  set_lines(row + 1, row + 1 + turn.rendered, lines)
  turn.rendered = #lines
end

--- Adds a turn (the user's message and the answer's header) above the separator;
--- returns the answer's turn.
local function add_turn(message, mode)
  local sep = separator_row()
  local msg = vim.split(message, "\n", { plain = true })
  local lines = { "## You" }
  vim.list_extend(lines, msg)
  vim.list_extend(lines, { "", mode == "agent" and "## lspilot (agent)" or "## lspilot", "" })
  set_lines(sep, sep, lines)
  local you = { role = "user", text = message }
  you.mark = api.nvim_buf_set_extmark(state.buf, M.namespace, sep, 0, {})
  local answer = { role = "assistant", text = "", rendered = 0, status = "running", mode = mode, segments = {} }
  answer.mark = api.nvim_buf_set_extmark(state.buf, M.namespace, sep + #msg + 2, 0, {})
  table.insert(state.turns, you)
  table.insert(state.turns, answer)
  set_status(answer, mode == "agent" and "working…" or "answering…")
  return answer
end

local function set_context_hint()
  if not valid_buf(state.buf) then
    return
  end
  local opts = { id = state.separator }
  local p = state.pending
  local hint = {}
  if state.mode == "agent" then
    table.insert(hint, { "  agent mode", "Special" })
  end
  if p then
    local name = vim.fn.fnamemodify(api.nvim_buf_get_name(p.bufnr), ":t")
    local what = name
    if p.range then
      what = string.format("%s lines %d-%d", name, p.range.start.line + 1, p.range["end"].line + (p.range["end"].character == 0 and 0 or 1))
    end
    table.insert(hint, { "  with " .. what, "Comment" })
  end
  if #hint > 0 then
    opts.virt_text = hint
    opts.virt_text_pos = "eol"
  end
  api.nvim_buf_set_extmark(state.buf, M.namespace, separator_row(), 0, opts)
end

local function turn_client(bufnr)
  local c = state.client_id and vim.lsp.get_client_by_id(state.client_id)
  if c and not compat.is_stopped(c) then
    return c
  end
  return server.any(bufnr)
end

--- Sends `message` as the next turn; `context` { bufnr, uri, range } or nil.
local function send(message, context)
  if state.job and state.job.status == "running" then
    util.notify("an answer is still streaming: wait for it, or press q in the chat to cancel it", levels.WARN)
    return false
  end
  local src = context and context.bufnr
  local c = (context and context.client) or turn_client(src)
  if not c then
    util.notify("no lspilot server is running: open a file of one of its filetypes first (:help lspilot-setup)", levels.WARN)
    return false
  end
  show(true)
  local mode = state.mode
  local answer = add_turn(message, mode)
  local args = { message = message }
  if mode == "agent" then
    args.mode = "agent"
  end
  if state.conversation then
    args.conversation = state.conversation
  end
  if context and context.uri then
    args.uri = context.uri
    args.range = context.range
  end
  local generation = state.generation
  local token = jobs.run(M.COMMAND, {
    bufnr = (valid_buf(src) and src) or state.buf,
    client_id = c.id,
    arguments = args,
    on_text = function(job)
      if generation == state.generation then
        render(answer, job.text)
      end
    end,
    on_done = function(job, result)
      if generation ~= state.generation or not valid_buf(state.buf) then
        return
      end
      answer.text = job.text
      answer.status = job.status
      if state.answer == answer then
        state.answer = nil
      end
      if mode == "agent" then
        M.finish_agent(answer, job, result)
        return
      end
      if job.status == "done" then
        if type(result) == "table" and type(result.conversation) == "string" then
          state.conversation = result.conversation
        end
        answer.turn = state.answers
        state.answers = state.answers + 1
        render(answer, job.text)
        set_status(answer, util.usage_words(job.usage) or "")
      elseif job.status == "cancelled" then
        render(answer, job.text, { "", "*(cancelled)*" })
        set_status(answer, "cancelled", "WarningMsg")
      else
        local why = tostring(job.error and job.error.message or "failed")
        render(answer, job.text, { "", "*(failed: " .. why:gsub("\n", " ") .. ")*" })
        set_status(answer, "failed", "ErrorMsg")
      end
    end,
  })
  if not token then
    answer.status = "failed"
    render(answer, "", { "*(not sent)*" })
    set_status(answer, "failed", "ErrorMsg")
    return false
  end
  state.job = jobs.get(token)
  state.job.agent = mode == "agent"
  state.answer = answer
  state.client_id = c.id
  return true
end

--- The end of an agent turn: steps still shown as running are over, the answer's text,
--- and a last line with the steps, tokens and cost (also at the header's end).
function M.finish_agent(answer, job, result)
  result = type(result) == "table" and result or {}
  for _, seg in ipairs(answer.segments) do
    if seg.status == "running" then
      seg.status = job.status == "cancelled" and "cancelled" or "failed"
    end
    if seg.question and seg.question.answer == nil then
      seg.question.answer = false
    end
  end
  local steps = type(result.steps) == "table" and result.steps or answer.segments
  answer.steps = steps
  local stop = util.value(result.stopReason, nil)
  local words = agent.summary(steps, job.usage, stop)
  answer.summary = words
  if job.status == "done" then
    if type(result.conversation) == "string" then
      state.conversation = result.conversation
    end
    answer.turn = state.answers
    state.answers = state.answers + 1
    render(answer, job.text, { "", "*" .. words .. "*" })
    set_status(answer, words)
  elseif job.status == "cancelled" then
    render(answer, job.text, { "", "*(cancelled: " .. words .. ")*" })
    set_status(answer, "cancelled", "WarningMsg")
  else
    local why = tostring(job.error and job.error.message or "failed")
    render(answer, job.text, { "", "*(failed: " .. why:gsub("\n", " ") .. "; " .. words .. ")*" })
    set_status(answer, "failed", "ErrorMsg")
  end
end

--- lspilot/toolCall: a step of the running agent turn starts or ends.
function M.on_tool_call(params, ctx)
  if type(params) ~= "table" or type(params.id) ~= "string" then
    return
  end
  local job = state.job
  local answer = state.answer
  local data = {
    token = params.token, conversation = util.value(params.conversation, nil), id = params.id,
    name = params.name, arguments = params.arguments, status = params.status,
    summary = util.value(params.summary, nil), client_id = ctx and ctx.client_id,
  }
  events.fire("LspilotToolCall", data)
  if not (job and answer and job.token == params.token and valid_buf(state.buf)) then
    return
  end
  -- Ids are the model's and repeat across its answers (each may start at call_0): a
  -- step's end goes to the running step with its id, anything else is a new step.
  local seg
  for _, s in ipairs(answer.segments) do
    if s.id == params.id and s.status == "running" then
      seg = s
    end
  end
  if not seg then
    seg = { id = params.id, offset = #job.text }
    table.insert(answer.segments, seg)
  end
  seg.name = params.name
  seg.arguments = params.arguments
  seg.status = params.status
  seg.summary = data.summary
  render(answer, job.text)
end

--- A question from the server while an agent turn runs goes under its running step in
--- the chat (the whole message: the diff of an edit, the command line), and its answer
--- after it.
ask.listeners.chat = function(question)
  local answer = state.answer
  if not (answer and state.job and state.job.status == "running" and state.job.agent and valid_buf(state.buf)) then
    return nil
  end
  local seg
  for _, s in ipairs(answer.segments) do
    if s.status == "running" then
      seg = s
    end
  end
  if not seg then
    seg = { id = "question-" .. (#answer.segments + 1), name = "question", status = "running", offset = #state.job.text }
    table.insert(answer.segments, seg)
  end
  seg.question = { message = question.message }
  render(answer, state.job.text)
  local win = show(false)
  pcall(api.nvim_win_set_cursor, win, { mark_row(answer.mark) + 1 + answer.rendered, 0 })
  pcall(vim.cmd, "redraw")
  return function(title)
    seg.question.answer = title or false
    if valid_buf(state.buf) and answer.status == "running" then
      render(answer, state.job and state.job.text or answer.text)
    end
  end
end

--- The message typed below the separator, sent as the next turn (with the context
--- :LspilotChat remembered, if any).
function M.send_prompt()
  if not valid_buf(state.buf) then
    return false
  end
  local sep = separator_row()
  local lines = api.nvim_buf_get_lines(state.buf, sep + 1, -1, false)
  local message = vim.trim(table.concat(lines, "\n"))
  if message == "" then
    util.notify("type your message on the line below the separator, then press <CR>")
    return false
  end
  if state.job and state.job.status == "running" then
    util.notify("an answer is still streaming: wait for it, or press q to cancel it", levels.WARN)
    return false
  end
  local context = state.pending
  set_lines(sep + 1, -1, { "" })
  if send(message, context) then
    state.pending = nil
    set_context_hint()
  end
  pcall(api.nvim_win_set_cursor, 0, { api.nvim_buf_line_count(state.buf), 0 })
  return true
end

--- The context of a turn started from `bufnr`: the selection with a range, else the
--- document when the server has it open; nil from the chat buffer or another buffer.
local function context_for(bufnr, cmd_opts)
  if bufnr == state.buf or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local has_range = cmd_opts and cmd_opts.range and cmd_opts.range > 0
  local c = has_range and server.wait_for(bufnr, 15000) or server.find(bufnr)
  if not c then
    return nil
  end
  local context = { bufnr = bufnr, uri = vim.uri_from_bufnr(bufnr), client = c }
  state.source = { bufnr = bufnr }
  if has_range then
    context.range = range.current(bufnr, cmd_opts, c.offset_encoding or "utf-16")
    local vmode = vim.fn.visualmode()
    state.source.marks = { api.nvim_buf_get_mark(bufnr, "<"), api.nvim_buf_get_mark(bufnr, ">") }
    state.source.mode = vmode == "" and "V" or vmode
  end
  return context
end

--- :LspilotChat [message] (`mode` "ask") and :LspilotAgent [message] (`mode` "agent"):
--- opens the chat in that mode (the prompt line's turns keep it); with a message,
--- sends it (the selection or the current file as its context).
function M.open(message, cmd_opts, mode)
  state.mode = mode == "agent" and "agent" or "ask"
  local bufnr = api.nvim_get_current_buf()
  local context = context_for(bufnr, cmd_opts)
  message = vim.trim(message or "")
  if message == "" then
    if context then
      state.pending = context
    end
    show(true)
    set_context_hint()
    return true
  end
  state.pending = nil
  set_context_hint()
  return send(message, context)
end

--- Fenced code blocks in `lines` (as the server counts them): { first, last } line
--- indexes (1-based) of the opening and closing fences.
function M.code_blocks(lines)
  local blocks = {}
  local i = 1
  while i <= #lines do
    local line = lines[i]
    local lead = line:match("^[ \t]*()")
    local ch = line:sub(lead, lead)
    local found = false
    if ch == "`" or ch == "~" then
      local run = line:match("^" .. (ch == "`" and "`+" or "~+"), lead)
      for k = #run, 3, -1 do
        local close = "^[ \t]*" .. ch:rep(k) .. "[ \t]*$"
        for j = i + 1, #lines do
          if lines[j]:match(close) then
            table.insert(blocks, { first = i, last = j })
            i = j + 1
            found = true
            break
          end
        end
        if found then
          break
        end
      end
    end
    if not found then
      i = i + 1
    end
  end
  return blocks
end

--- The answer and block index (0-based) under the cursor, or nil and why not.
local function block_at_cursor()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  for _, turn in ipairs(state.turns) do
    if turn.role == "assistant" then
      local header = mark_row(turn.mark)
      if header and row > header and row <= header + turn.rendered then
        if turn.turn == nil then
          return nil, "that answer was not kept (" .. tostring(turn.status) .. "): there is nothing to apply"
        end
        local lines = vim.split(turn.text, "\n", { plain = true })
        local blocks = M.code_blocks(lines)
        local at = row - header -- 1-based line of the answer
        for index, block in ipairs(blocks) do
          if at >= block.first and at <= block.last then
            return turn, index - 1
          end
        end
        if #blocks == 1 then
          return turn, 0
        end
        return nil, (#blocks == 0 and "that answer has no code block"
          or "put the cursor on one of the answer's " .. #blocks .. " code blocks")
      end
    end
  end
  return nil, "put the cursor on a code block of an answer in the chat buffer"
end

--- The source buffer's last visual selection as an LSP Range, or nil and why not.
local function target_range(src, encoding)
  local s = api.nvim_buf_get_mark(src, "<")
  local e = api.nvim_buf_get_mark(src, ">")
  if s[1] == 0 or e[1] == 0 then
    return nil
  end
  local mode
  local remembered = state.source and state.source.marks
  if remembered and remembered[1][1] == s[1] and remembered[1][2] == s[2] and remembered[2][1] == e[1] and remembered[2][2] == e[2] then
    mode = state.source.mode
  else
    local last = api.nvim_buf_get_lines(src, e[1] - 1, e[1], false)[1] or ""
    mode = (s[2] == 0 and e[2] >= #last - 1) and "V" or "v"
  end
  return range.make(src, s, e, mode, encoding)
end

--- :LspilotChatApply: the code block under the cursor replaces the source buffer's
--- last visual selection (lspilot.chatApply, at the buffer's current version).
function M.apply()
  M.last_apply = nil
  if not valid_buf(state.buf) or api.nvim_get_current_buf() ~= state.buf then
    util.notify(":LspilotChatApply works in the chat buffer (:LspilotChat), on a code block of an answer", levels.WARN)
    return false
  end
  local turn, block = block_at_cursor()
  if not turn then
    util.notify(block, levels.WARN)
    return false
  end
  local src = state.source and state.source.bufnr
  if not valid_buf(src) then
    util.notify("no source buffer: start the chat from a file (:'<,'>LspilotChat) to apply its code", levels.WARN)
    return false
  end
  local c = server.find(src)
  if not c then
    util.notify("the lspilot server is not attached to " .. api.nvim_buf_get_name(src), levels.WARN)
    return false
  end
  local r = target_range(src, c.offset_encoding or "utf-16")
  if not r then
    util.notify("select the code to replace in " .. vim.fn.fnamemodify(api.nvim_buf_get_name(src), ":~:.") .. " first (the block replaces the last visual selection)", levels.WARN)
    return false
  end
  local args = {
    conversation = state.conversation,
    block = block,
    turn = turn.turn,
    uri = vim.uri_from_bufnr(src),
    range = r,
    version = vim.lsp.util.buf_versions[src],
  }
  local ok = compat.request(c, "workspace/executeCommand", { command = M.APPLY, arguments = { args } }, function(err, result)
    if err then
      M.last_apply = { status = "failed", error = { type = "lsp", message = err.message or vim.inspect(err) } }
      util.notify("applying the block failed: " .. tostring(M.last_apply.error.message), levels.ERROR)
      return
    end
    result = type(result) == "table" and result or {}
    M.last_apply = { status = util.value(result.status, "done"), error = util.value(result.error, nil) }
    if M.last_apply.status == "done" then
      util.notify(string.format("block %d applied to %s", block + 1, vim.fn.fnamemodify(api.nvim_buf_get_name(src), ":t")))
    else
      local e = M.last_apply.error or {}
      util.notify("the block was not applied: " .. tostring(e.message or e.type or "failed"), levels.WARN)
    end
  end, src)
  if not ok then
    util.notify("the lspilot server is not running", levels.ERROR)
  end
  return ok
end

--- :LspilotChatNew: cancels a streaming answer, forgets the conversation (the server's
--- lspilot.chatReset) and empties the chat buffer.
function M.new()
  state.generation = state.generation + 1
  if state.job and state.job.status == "running" then
    jobs.cancel(state.job.token)
  end
  local old = state.conversation
  local c = turn_client(state.source and state.source.bufnr)
  if old and c then
    compat.request(c, "workspace/executeCommand", { command = M.RESET, arguments = { { conversation = old } } }, function() end)
  end
  state.conversation = nil
  state.job = nil
  state.turns = {}
  state.answers = 0
  state.pending = nil
  if valid_buf(state.buf) then
    reset_buffer()
  end
  show(true)
  return true
end

return M
