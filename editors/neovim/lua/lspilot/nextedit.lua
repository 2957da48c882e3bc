-- Next edit suggestions: after you change the buffer and pause, the server's
-- textDocument/copilotInlineEdit proposes the edit that follows (the other uses of a
-- name you renamed, the call sites of a parameter you added), anywhere near the cursor.
--
-- Changes are seen through nvim_buf_attach's on_lines (every change, in any mode,
-- typed or made by a command), not TextChanged autocmds, which only fire when Neovim
-- waits for a key. After `next_edit.debounce` ms without a change, one request is sent
-- for the current buffer at the cursor, only when the server advertises
-- capabilities.experimental.copilotInlineEdit. The answer's edits are drawn with
-- extmarks: the text they replace struck through (LspilotNextEditDelete), the new text
-- as virtual text (LspilotNextEdit): inline after it on 0.10+, at the line's end on
-- older Neovims, extra lines below. A newer change clears it and cancels the request in
-- flight; an answer for a version that moved on is dropped. Accept applies the edits
-- with vim.lsp.util.apply_text_edits as one undo step.
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local events = require("lspilot.events")
local server = require("lspilot.server")

local api = vim.api
local M = {}

M.METHOD = "textDocument/copilotInlineEdit"
M.HIGHLIGHT = "LspilotNextEdit"
M.HIGHLIGHT_DELETE = "LspilotNextEditDelete"
M.namespace = api.nvim_create_namespace("lspilot.nextedit")

local attached = {} -- bufnr -> true
local timers = {} -- bufnr -> the debounce timer
local pending = nil -- { client, id, bufnr } of the request in flight
-- The suggestion on screen: { bufnr, version, encoding, edits = { { range, newText,
-- text, row, col, end_row, end_col } } } (rows and byte columns 0-based).
local current = nil

local function define_highlights()
  -- default = true: a colorscheme or the user's own groups win.
  api.nvim_set_hl(0, M.HIGHLIGHT, { link = "DiffAdd", default = true })
  api.nvim_set_hl(0, M.HIGHLIGHT_DELETE, { strikethrough = true, default = true })
end
define_highlights()
api.nvim_create_autocmd("ColorScheme", {
  group = api.nvim_create_augroup("lspilot.nextedit.highlight", { clear = true }),
  callback = define_highlights,
})

local function options()
  return config.options.next_edit or config.defaults.next_edit
end

local function fire(event, fields)
  events.fire("LspilotNextEdit", vim.tbl_extend("force", { event = event }, fields or {}))
end

--- The version lspilot's client knows the buffer at (what didChange last said).
local function buf_version(bufnr)
  local versions = vim.lsp.util.buf_versions
  local v = versions and versions[bufnr]
  if type(v) == "number" then
    return v
  end
  return api.nvim_buf_get_changedtick(bufnr)
end

--- Whether `client` answers textDocument/copilotInlineEdit.
function M.supported(client)
  local caps = client and client.server_capabilities
  local experimental = type(caps) == "table" and caps.experimental or nil
  return type(experimental) == "table" and experimental.copilotInlineEdit == true
end

local function cancel_pending()
  if pending then
    local p = pending
    pending = nil
    if not compat.is_stopped(p.client) then
      pcall(compat.cancel_request, p.client, p.id)
    end
  end
end

--- Removes the suggestion; `reason` goes into the event. False when none is shown.
function M.clear(reason)
  if current == nil then
    return false
  end
  local bufnr = current.bufnr
  current = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  end
  fire("cleared", { bufnr = bufnr, reason = reason })
  return true
end

--- The suggestion shown now: { bufnr, version, edits = { { row, col, end_row, end_col,
--- text (what it replaces), newText } } }, or nil.
function M.get()
  if current == nil then
    return nil
  end
  local edits = {}
  for _, e in ipairs(current.edits) do
    table.insert(edits, { row = e.row, col = e.col, end_row = e.end_row, end_col = e.end_col,
      text = e.text, newText = e.newText })
  end
  return { bufnr = current.bufnr, version = current.version, edits = edits }
end

-- Drawing -------------------------------------------------------------------------------

local function untab(text, bufnr)
  return (text:gsub("\t", string.rep(" ", vim.bo[bufnr].tabstop)))
end

local function render()
  local s = current
  api.nvim_buf_clear_namespace(s.bufnr, M.namespace, 0, -1)
  for _, e in ipairs(s.edits) do
    if e.row ~= e.end_row or e.col ~= e.end_col then
      api.nvim_buf_set_extmark(s.bufnr, M.namespace, e.row, e.col, {
        end_row = e.end_row, end_col = e.end_col, hl_group = M.HIGHLIGHT_DELETE, priority = 200,
      })
    end
    local lines = vim.split(e.newText, "\n", { plain = true })
    local mark = { priority = 200, hl_mode = "combine" }
    if lines[1] ~= "" then
      if compat.has_0_10 then
        mark.virt_text = { { untab(lines[1], s.bufnr), M.HIGHLIGHT } }
        mark.virt_text_pos = "inline"
      else
        -- No inline virtual text before 0.10: the new text at the end of the line.
        mark.virt_text = { { " → ", "NonText" }, { untab(lines[1], s.bufnr), M.HIGHLIGHT } }
        mark.virt_text_pos = "eol"
      end
    end
    if #lines > 1 then
      mark.virt_lines = {}
      for i = 2, #lines do
        table.insert(mark.virt_lines, { { untab(lines[i], s.bufnr), M.HIGHLIGHT } })
      end
    end
    if mark.virt_text or mark.virt_lines then
      local row, col = e.end_row, e.end_col
      if not compat.has_0_10 then
        row, col = e.row, 0 -- eol text shows on the line the edit starts on
      end
      api.nvim_buf_set_extmark(s.bufnr, M.namespace, row, col, mark)
    end
  end
  fire("shown", { bufnr = s.bufnr, version = s.version, edits = M.get().edits })
end

-- Asking --------------------------------------------------------------------------------

-- The answer's edits as byte positions in the buffer now; nil when one does not fit.
local function normalize(result, bufnr, version, encoding)
  local list = type(result) == "table" and result.edits or nil
  if type(list) ~= "table" then
    return {}
  end
  local count = api.nvim_buf_line_count(bufnr)
  local edits = {}
  for _, raw in ipairs(list) do
    local r = type(raw) == "table" and raw.range or nil
    local new_text = type(raw) == "table" and (raw.newText or raw.text) or nil
    local doc = type(raw) == "table" and raw.textDocument or nil
    if type(doc) == "table" and type(doc.version) == "number" and doc.version ~= version then
      return nil
    end
    if type(r) ~= "table" or type(new_text) ~= "string" or type(r.start) ~= "table" or type(r["end"]) ~= "table" then
      return nil
    end
    if r.start.line >= count or r["end"].line >= count then
      return nil
    end
    local first = api.nvim_buf_get_lines(bufnr, r.start.line, r.start.line + 1, false)[1]
    local last = api.nvim_buf_get_lines(bufnr, r["end"].line, r["end"].line + 1, false)[1]
    local e = {
      range = r,
      newText = new_text,
      row = r.start.line,
      col = compat.from_lsp_col(first, r.start.character, encoding),
      end_row = r["end"].line,
      end_col = compat.from_lsp_col(last, r["end"].character, encoding),
    }
    e.text = table.concat(api.nvim_buf_get_text(bufnr, e.row, e.col, e.end_row, e.end_col, {}), "\n")
    if e.text ~= e.newText then
      table.insert(edits, e)
    end
  end
  return edits
end

--- Asks the server for the next edit at the cursor of the current buffer `bufnr`.
function M.request(bufnr)
  cancel_pending()
  if bufnr ~= api.nvim_get_current_buf() or not options().enabled then
    return false
  end
  local client = server.find(bufnr)
  if not client or not M.supported(client) then
    return false
  end
  local cursor = api.nvim_win_get_cursor(0)
  local line = api.nvim_buf_get_lines(bufnr, cursor[1] - 1, cursor[1], false)[1] or ""
  local encoding = client.offset_encoding or "utf-16"
  local version = buf_version(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr), version = version },
    position = { line = cursor[1] - 1, character = compat.to_lsp_col(line, cursor[2], encoding) },
  }
  local this
  -- client:request() sends the buffer's pending didChange first.
  local ok, id = compat.request(client, M.METHOD, params, function(err, result)
    if pending ~= this then
      return -- superseded or cancelled
    end
    pending = nil
    if err then
      fire("failed", { bufnr = bufnr, message = tostring(err.message or vim.inspect(err)) })
      return
    end
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      fire("stale", { bufnr = bufnr })
      return
    end
    local edits = normalize(result, bufnr, version, encoding)
    if edits == nil then
      fire("stale", { bufnr = bufnr })
      return
    end
    if #edits == 0 then
      fire("empty", { bufnr = bufnr })
      return
    end
    M.clear("replaced")
    current = { bufnr = bufnr, version = version, tick = tick, encoding = encoding, edits = edits }
    render()
  end, bufnr)
  if not ok then
    return false
  end
  this = { client = client, id = id, bufnr = bufnr }
  pending = this
  fire("requested", { bufnr = bufnr, version = version })
  return true
end

local function schedule_request(bufnr)
  local timer = timers[bufnr]
  if timer == nil then
    timer = compat.uv.new_timer()
    timers[bufnr] = timer
  end
  timer:stop()
  timer:start(options().debounce, 0, vim.schedule_wrap(function()
    if attached[bufnr] and api.nvim_buf_is_valid(bufnr) then
      M.request(bufnr)
    end
  end))
end

-- Every change: a shown suggestion is stale, the request in flight too; ask again after
-- the pause.
local function on_change(bufnr)
  if pending and pending.bufnr == bufnr then
    cancel_pending()
  end
  if current and current.bufnr == bufnr then
    M.clear("edited")
  end
  if options().enabled then
    schedule_request(bufnr)
  end
end

-- Keys ----------------------------------------------------------------------------------

local function shown_here()
  return current ~= nil and current.bufnr == api.nvim_get_current_buf()
end

--- Moves the cursor to the start of the suggested edit. False when none is shown.
function M.jump()
  if not shown_here() then
    return false
  end
  local e = current.edits[1]
  api.nvim_win_set_cursor(0, { e.row + 1, e.col })
  fire("jumped", { bufnr = current.bufnr, row = e.row, col = e.col })
  return true
end

--- Applies the suggested edits, as one undo step. False when none is shown.
function M.accept()
  if not shown_here() then
    return false
  end
  local s = current
  if api.nvim_buf_get_changedtick(s.bufnr) ~= s.tick then
    M.clear("edited")
    return false
  end
  local text_edits = {}
  for _, e in ipairs(s.edits) do
    table.insert(text_edits, { range = e.range, newText = e.newText })
  end
  current = nil
  api.nvim_buf_clear_namespace(s.bufnr, M.namespace, 0, -1)
  -- Its own undo step, even in insert mode or right after the change that led to it.
  vim.o.undolevels = vim.o.undolevels
  vim.lsp.util.apply_text_edits(text_edits, s.bufnr, s.encoding)
  fire("accepted", { bufnr = s.bufnr, edits = #text_edits })
  return true
end

--- Hides the suggestion until the next change. False when none is shown.
function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  if pending and pending.bufnr == bufnr then
    cancel_pending()
  end
  if timers[bufnr] then
    timers[bufnr]:stop()
  end
  if not shown_here() then
    return false
  end
  return M.clear("dismissed")
end

local function feed(lhs)
  api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), "n", false)
end

local KEYS = {
  jump = { M.jump, "jump to the next edit suggestion" },
  accept = { M.accept, "accept the next edit suggestion" },
  dismiss = { M.dismiss, "dismiss the next edit suggestion" },
}

local function map_keys(bufnr)
  for name, lhs in pairs(options().keys or {}) do
    local action = KEYS[name]
    if lhs and action then
      vim.keymap.set({ "n", "i" }, lhs, function()
        if not action[1]() then
          feed(lhs) -- nothing shown: the key does what it does without lspilot
        end
      end, { buffer = bufnr, silent = true, desc = "lspilot: " .. action[2] })
    end
  end
end

--- Next edit suggestions for `bufnr` (called from the client's on_attach).
function M.attach(_, bufnr)
  if attached[bufnr] or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  attached[bufnr] = true
  api.nvim_buf_attach(bufnr, false, {
    on_lines = function()
      if not attached[bufnr] then
        return true -- detach
      end
      -- on_lines runs amid the change: act once it is done.
      vim.schedule(function()
        if attached[bufnr] then
          on_change(bufnr)
        end
      end)
    end,
    on_detach = function()
      attached[bufnr] = nil
    end,
  })
  local group = api.nvim_create_augroup("lspilot.nextedit." .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      attached[bufnr] = nil
      if timers[bufnr] then
        timers[bufnr]:stop()
        timers[bufnr]:close()
        timers[bufnr] = nil
      end
      if current and current.bufnr == bufnr then
        current = nil
      end
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
  map_keys(bufnr)
end

function M.is_attached(bufnr)
  return attached[bufnr or api.nvim_get_current_buf()] == true
end

return M
