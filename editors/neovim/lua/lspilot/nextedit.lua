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
local server = require("lspilot.server")
local shown = require("lspilot.shown")

local api = vim.api
local M = {}

M.METHOD = "textDocument/copilotInlineEdit"
M.HIGHLIGHT = "LspilotNextEdit"
M.HIGHLIGHT_DELETE = "LspilotNextEditDelete"
M.namespace = api.nvim_create_namespace("lspilot.nextedit")

local attached = {} -- bufnr -> true
local timers = {} -- bufnr -> the debounce timer
-- slot.current, the suggestion on screen: { bufnr, version, tick, encoding, edits = {
-- { range, newText, text, row, col, end_row, end_col } } } (rows and byte columns
-- 0-based). slot.pending: { client, id, bufnr } of the request in flight.
local slot = shown.new("LspilotNextEdit", M.namespace)

shown.highlights("lspilot.nextedit.highlight", function()
  -- default = true: a colorscheme or the user's own groups win.
  api.nvim_set_hl(0, M.HIGHLIGHT, { link = "DiffAdd", default = true })
  api.nvim_set_hl(0, M.HIGHLIGHT_DELETE, { strikethrough = true, default = true })
end)

local function options()
  return config.options.next_edit or config.defaults.next_edit
end

local function fire(event, fields)
  slot:fire(event, fields)
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

--- Removes the suggestion; `reason` goes into the event. False when none is shown.
function M.clear(reason)
  return slot:clear(reason)
end

--- The suggestion shown now: { bufnr, version, edits = { { row, col, end_row, end_col,
--- text (what it replaces), newText } } }, or nil.
function M.get()
  local s = slot.current
  if s == nil then
    return nil
  end
  local edits = {}
  for _, e in ipairs(s.edits) do
    table.insert(edits, { row = e.row, col = e.col, end_row = e.end_row, end_col = e.end_col,
      text = e.text, newText = e.newText })
  end
  return { bufnr = s.bufnr, version = s.version, edits = edits }
end

-- Drawing -------------------------------------------------------------------------------

local untab = shown.untab

local function render()
  local s = slot.current
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
    mark.virt_lines = shown.virt_lines(lines, s.bufnr, M.HIGHLIGHT)
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
  slot:cancel_pending()
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
  local sent = slot:request(client, M.METHOD, params, bufnr, nil, function(_, err, result)
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
    slot.current = { bufnr = bufnr, version = version, tick = tick, encoding = encoding, edits = edits }
    render()
  end)
  if not sent then
    return false
  end
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
  slot:cancel_pending(bufnr)
  if slot:shown_in(bufnr) then
    M.clear("edited")
  end
  if options().enabled then
    schedule_request(bufnr)
  end
end

-- Keys ----------------------------------------------------------------------------------

local function shown_here()
  return slot:shown_in(api.nvim_get_current_buf())
end

--- Moves the cursor to the start of the suggested edit. False when none is shown.
function M.jump()
  if not shown_here() then
    return false
  end
  local e = slot.current.edits[1]
  api.nvim_win_set_cursor(0, { e.row + 1, e.col })
  fire("jumped", { bufnr = slot.current.bufnr, row = e.row, col = e.col })
  return true
end

--- Applies the suggested edits, as one undo step. False when none is shown.
function M.accept()
  if not shown_here() then
    return false
  end
  local s = slot.current
  if api.nvim_buf_get_changedtick(s.bufnr) ~= s.tick then
    M.clear("edited")
    return false
  end
  local text_edits = {}
  for _, e in ipairs(s.edits) do
    table.insert(text_edits, { range = e.range, newText = e.newText })
  end
  slot:drop()
  -- Its own undo step, even in insert mode or right after the change that led to it.
  vim.o.undolevels = vim.o.undolevels
  vim.lsp.util.apply_text_edits(text_edits, s.bufnr, s.encoding)
  fire("accepted", { bufnr = s.bufnr, edits = #text_edits })
  return true
end

--- Hides the suggestion until the next change. False when none is shown.
function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  slot:cancel_pending(bufnr)
  if timers[bufnr] then
    timers[bufnr]:stop()
  end
  if not shown_here() then
    return false
  end
  return M.clear("dismissed")
end

local KEYS = {
  jump = { M.jump, "jump to the next edit suggestion" },
  accept = { M.accept, "accept the next edit suggestion" },
  dismiss = { M.dismiss, "dismiss the next edit suggestion" },
}

local function map_keys(bufnr)
  shown.map_keys(bufnr, { "n", "i" }, options().keys, KEYS)
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
      if slot:shown_in(bufnr) then
        slot.current = nil -- the buffer and its extmarks are going: nothing to clear
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
