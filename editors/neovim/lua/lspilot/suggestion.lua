-- Ghost text: the server's textDocument/inlineCompletion shown as you type.
--
-- Neovim 0.12+ has vim.lsp.inline_completion, which is used when present (option
-- suggestion.native). On 0.7 to 0.11 the plugin renders it itself: on every change or
-- cursor move in insert mode it cancels the request in flight and sends a new
-- Automatic one (the server debounces those, answers superseded ones empty and
-- typing-through from its cache); the answer's first item is drawn with an extmark
-- (the first line as virt_text, the rest as virt_lines) and cleared on leaving insert
-- mode and on any cursor move it did not predict. Typing the suggested characters keeps
-- the rest shown without asking again.
local server = require("lspilot.server")
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local shown = require("lspilot.shown")
local util = require("lspilot.util")

local api = vim.api
local M = {}

M.METHOD = "textDocument/inlineCompletion"
M.INVOKED, M.AUTOMATIC = 1, 2
M.HIGHLIGHT = "LspilotSuggestion"
M.namespace = api.nvim_create_namespace("lspilot.suggestion")

-- slot.current, the suggestion on screen: { bufnr, row (0-based), col (byte), before,
-- after (the line's text either side of col), items = { { text, replace } }, index,
-- typed, early }. `text` is what goes in at col, `replace` how many bytes right of col
-- it replaces. slot.pending: { client, id, bufnr, snap, encoding, params } of the
-- request in flight.
local slot = shown.new("LspilotSuggestion", M.namespace)

local enabled = true
local attached = {} -- bufnr -> true
local last_key = nil -- the (buffer, cursor, changedtick) last handled

-- Highlight ---------------------------------------------------------------------------

shown.highlights("lspilot.suggestion.highlight", function()
  -- default = true: a colorscheme or the user's own LspilotSuggestion wins.
  api.nvim_set_hl(0, M.HIGHLIGHT, { link = "Comment", default = true })
end)

-- State -------------------------------------------------------------------------------

local function fire(event, fields)
  slot:fire(event, fields)
end

function M.native_available()
  return vim.lsp.inline_completion ~= nil and type(vim.lsp.inline_completion.enable) == "function"
end

function M.uses_native()
  return M.native_available() and config.options.suggestion.native ~= false
end

--- Which renderer shows ghost text here.
function M.engine()
  if M.uses_native() then
    return "vim.lsp.inline_completion"
  end
  return "the plugin's own"
end

function M.is_enabled()
  return enabled
end

local function cancel_pending()
  slot:cancel_pending()
end

--- Removes the ghost text (and forgets the suggestion); `reason` goes into the event.
function M.clear(reason)
  return slot:clear(reason)
end

function M.set_enabled(flag)
  enabled = flag and true or false
  if M.uses_native() then
    for bufnr in pairs(attached) do
      if api.nvim_buf_is_valid(bufnr) then
        pcall(vim.lsp.inline_completion.enable, enabled, { bufnr = bufnr })
      end
    end
  end
  if not enabled then
    cancel_pending()
    M.clear("disabled")
  end
end

local function cursor_state(bufnr)
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  return {
    bufnr = bufnr,
    row = row,
    col = col,
    before = line:sub(1, col),
    after = line:sub(col + 1),
    key = table.concat({ bufnr, row, col, api.nvim_buf_get_changedtick(bufnr) }, ":"),
  }
end

local function in_insert_mode()
  local mode = api.nvim_get_mode().mode
  return mode:sub(1, 1) == "i"
end

--- The suggestion shown now: { text (what is still to come), bufnr, row, col,
--- index, count }, or nil.
function M.get()
  local s = slot.current
  if s == nil then
    return nil
  end
  local item = s.items[s.index]
  return {
    text = item.text:sub(#s.typed + 1),
    bufnr = s.bufnr,
    row = s.row,
    col = s.col + #s.typed,
    index = s.index,
    count = #s.items,
  }
end

-- Drawing -----------------------------------------------------------------------------

local untab = shown.untab

local function render()
  local s = slot.current
  api.nvim_buf_clear_namespace(s.bufnr, M.namespace, 0, -1)
  local item = s.items[s.index]
  local rest = item.text:sub(#s.typed + 1)
  local lines = vim.split(rest, "\n", { plain = true })
  local col = s.col + #s.typed
  local first = untab(lines[1], s.bufnr)
  -- The text right of the cursor that a whole accept replaces, when the suggestion's
  -- first line ends with it (a closing bracket already there): not drawn twice.
  local replaced = s.after:sub(1, item.replace)
  if #lines == 1 and replaced ~= "" and first:sub(-#replaced) == replaced then
    first = first:sub(1, #first - #replaced)
  end
  local mark = { hl_mode = "combine", priority = 200 }
  if compat.has_0_10 then
    mark.virt_text = { { first, M.HIGHLIGHT } }
    mark.virt_text_pos = "inline"
  else
    -- No inline virtual text before 0.10: overlay the suggestion at the cursor and
    -- redraw the rest of the line after it, so nothing is hidden.
    mark.virt_text = { { first, M.HIGHLIGHT } }
    if s.after ~= "" then
      table.insert(mark.virt_text, { untab(s.after, s.bufnr), "Normal" })
    end
    mark.virt_text_pos = "overlay"
  end
  mark.virt_lines = shown.virt_lines(lines, s.bufnr, M.HIGHLIGHT)
  api.nvim_buf_set_extmark(s.bufnr, M.namespace, s.row, col, mark)
  fire("shown", { bufnr = s.bufnr, text = rest, index = s.index, count = #s.items, early = s.early ~= nil })
end

-- Shows `items` (answered for `snap`); `early`: the request whose first lines they are.
local function show(bufnr, snap, items, early)
  M.clear("replaced")
  slot.current = {
    bufnr = bufnr,
    row = snap.row,
    col = snap.col,
    before = snap.before,
    after = snap.after,
    items = items,
    index = 1,
    typed = "",
    early = early,
  }
  render()
end

-- Asking ------------------------------------------------------------------------------

-- The items of an answer ({ items } or a bare list) as { text, replace } relative to
-- the cursor of `snap`; items that do not fit the line are left out.
local function normalize(result, snap, encoding)
  local list = result
  if type(result) == "table" and type(result.items) == "table" then
    list = result.items
  end
  if type(list) ~= "table" then
    return {}
  end
  local line = snap.before .. snap.after
  local items = {}
  for _, raw in ipairs(list) do
    local text = type(raw) == "table" and raw.insertText or nil
    if type(text) == "table" then
      text = text.value -- a StringValue (snippet): its text as it stands
    end
    local replace = 0
    local fits = type(text) == "string"
    local r = type(raw) == "table" and raw.range or nil
    if fits and type(r) == "table" and type(r.start) == "table" and type(r["end"]) == "table" then
      if r.start.line ~= snap.row or r["end"].line ~= snap.row then
        fits = false
      else
        local first = compat.from_lsp_col(line, r.start.character, encoding)
        local last = compat.from_lsp_col(line, r["end"].character, encoding)
        if first > snap.col or last < snap.col then
          fits = false
        else
          -- The range may start before the cursor: that part is typed already.
          local typed = line:sub(first + 1, snap.col)
          if text:sub(1, #typed) ~= typed then
            fits = false
          else
            text = text:sub(#typed + 1)
            replace = last - snap.col
          end
        end
      end
    end
    if fits and not text:match("^%s*$") then
      table.insert(items, { text = text, replace = replace })
    end
  end
  return items
end

--- Asks the server for a suggestion at the cursor of `bufnr`; `kind` is the trigger
--- kind (1 Invoked by a key, 2 Automatic as you type).
function M.request(bufnr, kind)
  cancel_pending()
  local client = server.find(bufnr)
  if not client then
    return false
  end
  local snap = cursor_state(bufnr)
  local encoding = client.offset_encoding or "utf-16"
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = snap.row, character = compat.to_lsp_col(snap.before .. snap.after, snap.col, encoding) },
    context = { triggerKind = kind or M.AUTOMATIC },
  }
  local sent = slot:request(client, M.METHOD, params, bufnr,
    { snap = snap, encoding = encoding, params = params }, function(this, err, result)
    -- A block's first lines may be shown already (M.on_lines): the answer replaces them.
    local early = slot.current ~= nil and slot.current.early == this
    if err then
      if early then
        M.clear("failed")
      end
      fire("failed", { bufnr = bufnr, message = tostring(err.message or vim.inspect(err)) })
      return
    end
    if not enabled or not in_insert_mode() or api.nvim_get_current_buf() ~= bufnr or cursor_state(bufnr).key ~= snap.key then
      if early and slot.current.typed ~= "" then
        -- The user is typing through the first lines: the rest of the block joins them.
        local items = normalize(result, snap, encoding)
        if #items > 0 and items[1].text:sub(1, #slot.current.items[1].text) == slot.current.items[1].text then
          slot.current.items, slot.current.index, slot.current.early = items, 1, nil
          render()
          return
        end
      end
      fire("stale", { bufnr = bufnr })
      return
    end
    local items = normalize(result, snap, encoding)
    if #items == 0 then
      if early then
        M.clear("empty")
      end
      fire("empty", { bufnr = bufnr })
      return
    end
    if early then
      slot:drop() -- not a new suggestion: the same one, complete (no "cleared" in between)
    end
    show(bufnr, snap, items)
  end)
  if not sent then
    return false
  end
  fire("requested", { bufnr = bufnr, kind = kind or M.AUTOMATIC })
  return true
end

--- lspilot/inlineCompletionLines: a block's complete lines while the rest streams,
--- shown at once for the request in flight (the answer replaces them).
function M.on_lines(params, ctx)
  local p = slot.pending
  if p == nil or type(params) ~= "table" or type(params.text) ~= "string" then
    return
  end
  local doc, pos = params.textDocument, params.position
  if (ctx and ctx.client_id ~= p.client.id) or type(doc) ~= "table" or type(pos) ~= "table"
    or doc.uri ~= p.params.textDocument.uri or pos.line ~= p.params.position.line
    or pos.character ~= p.params.position.character then
    return
  end
  if slot.current ~= nil and slot.current.early ~= p then
    return -- something else is shown (or typed through): leave it
  end
  if not enabled or not in_insert_mode() or api.nvim_get_current_buf() ~= p.bufnr
    or cursor_state(p.bufnr).key ~= p.snap.key then
    return
  end
  local items = normalize({ items = { { insertText = params.text } } }, p.snap, p.encoding)
  if #items == 0 then
    return
  end
  slot:drop()
  show(p.bufnr, p.snap, items, p)
end

-- Whether the buffer now is what the shown suggestion predicted: the same line, the
-- same text right of the cursor, and typed since the suggestion some of its characters.
local function predicted(state)
  local s = slot.current
  if s == nil or s.bufnr ~= state.bufnr or s.row ~= state.row or state.col < s.col then
    return false
  end
  if state.before:sub(1, s.col) ~= s.before or state.after ~= s.after then
    return false
  end
  local typed = state.before:sub(s.col + 1)
  local text = s.items[s.index].text
  if #typed >= #text or text:sub(1, #typed) ~= typed then
    return false
  end
  s.typed = typed
  return true
end

local function on_change(bufnr)
  if not enabled or not in_insert_mode() or api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local state = cursor_state(bufnr)
  if state.key == last_key then
    return -- CursorMovedI and TextChangedI of one keystroke
  end
  last_key = state.key
  if predicted(state) then
    render()
    return
  end
  M.clear("moved")
  M.request(bufnr, M.AUTOMATIC)
end

-- Keys --------------------------------------------------------------------------------

-- The next word of `text`: leading blanks, then a run of word characters (or of other
-- characters that are not blanks), else the blanks alone.
local function next_word(text)
  return text:match("^%s*[%w_\128-\255]+") or text:match("^%s*[^%s%w_\128-\255]+") or text:match("^%s+") or text
end

local function next_line(text)
  if text:sub(1, 1) == "\n" then
    return "\n" .. text:sub(2):match("^[^\n]*")
  end
  return text:match("^[^\n]*")
end

--- Inserts the suggestion, all of it (`what` "all"), its next word ("word") or the rest
--- of its line ("line"). Returns false when none is shown.
function M.accept(what)
  local bufnr = api.nvim_get_current_buf()
  local s = slot.current
  if not slot:shown_in(bufnr) then
    return false
  end
  local state = cursor_state(bufnr)
  if not predicted(state) and not (state.row == s.row and state.col == s.col and s.typed == "") then
    M.clear("moved")
    return false
  end
  local item = s.items[s.index]
  local rest = item.text:sub(#s.typed + 1)
  local chunk = rest
  if what == "word" then
    chunk = next_word(rest)
  elseif what == "line" then
    chunk = next_line(rest)
  end
  local whole = chunk == rest
  local replace = whole and item.replace or 0
  local lines = vim.split(chunk, "\n", { plain = true })
  local row, col = state.row, state.col
  replace = math.min(replace, #state.after)
  api.nvim_buf_set_text(bufnr, row, col, row, col + replace, lines)
  local new_row = row + #lines - 1
  local new_col = #lines == 1 and col + #chunk or #lines[#lines]
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  fire("accepted", { bufnr = bufnr, text = chunk, what = what or "all" })
  if whole then
    M.clear("accepted")
    return true
  end
  -- Part of it went in: the rest stays, anchored at the new cursor.
  local after = cursor_state(bufnr)
  s.items = { { text = rest:sub(#chunk + 1), replace = item.replace } }
  s.index = 1
  s.typed = ""
  s.row, s.col = after.row, after.col
  s.before, s.after = after.before, after.after
  last_key = after.key
  render()
  return true
end

function M.accept_word()
  return M.accept("word")
end

function M.accept_line()
  return M.accept("line")
end

--- Hides the suggestion until the next change. False when none is shown.
function M.dismiss()
  cancel_pending()
  return M.clear("dismissed")
end

--- Shows the next (`delta` 1) or previous (-1) suggestion; with one or none, asks the
--- server (Invoked) at the cursor.
function M.next(delta)
  local bufnr = api.nvim_get_current_buf()
  local s = slot.current
  if slot:shown_in(bufnr) and #s.items > 1 then
    s.index = (s.index - 1 + (delta or 1)) % #s.items + 1
    s.typed = ""
    render()
    return true
  end
  if not enabled or not attached[bufnr] then
    return false
  end
  last_key = cursor_state(bufnr).key
  return M.request(bufnr, M.INVOKED)
end

function M.prev()
  return M.next(-1)
end

local OWN_KEYS = {
  accept = { M.accept, "accept the suggestion" },
  accept_word = { M.accept_word, "accept the suggestion's next word" },
  accept_line = { M.accept_line, "accept the suggestion's line" },
  next = { M.next, "next suggestion" },
  prev = { M.prev, "previous suggestion" },
  dismiss = { M.dismiss, "dismiss the suggestion" },
}

local function native_keys()
  local ic = vim.lsp.inline_completion
  return {
    accept = { function()
      return ic.get() ~= false
    end, "accept the suggestion" },
    next = { function()
      ic.select({ count = 1 })
      return true
    end, "next suggestion" },
    prev = { function()
      ic.select({ count = -1 })
      return true
    end, "previous suggestion" },
  }
end

local function map_keys(bufnr, actions)
  shown.map_keys(bufnr, "i", config.options.suggestion.keys, actions)
end

--- Ghost text for `bufnr` (called from the client's on_attach).
function M.attach(_, bufnr)
  if attached[bufnr] or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  attached[bufnr] = true
  if M.uses_native() then
    pcall(vim.lsp.inline_completion.enable, enabled, { bufnr = bufnr })
    map_keys(bufnr, native_keys())
    return
  end
  local group = api.nvim_create_augroup("lspilot.suggestion." .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "CursorMovedI", "TextChangedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_change(bufnr)
    end,
    desc = "lspilot: ask for ghost text",
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel_pending()
      last_key = nil
      M.clear("left")
    end,
    desc = "lspilot: clear the ghost text",
  })
  api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      attached[bufnr] = nil
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
  map_keys(bufnr, OWN_KEYS)
end

function M.is_attached(bufnr)
  return attached[bufnr or api.nvim_get_current_buf()] == true
end

return M
