-- The explanation window: a floating markdown buffer that grows as text streams in.
local compat = require("lspilot.compat")

local api = vim.api
local M = {}

local function valid_win(win)
  return win ~= nil and api.nvim_win_is_valid(win)
end

local function valid_buf(buf)
  return buf ~= nil and api.nvim_buf_is_valid(buf)
end

local HEADER_NS = api.nvim_create_namespace("lspilot.float")

local function label_of(job)
  local label = tostring(job.progress_title or job.title or "explain"):gsub("^lspilot:%s*", "", 1)
  if label == "explain" then
    label = "Explain"
  end
  return "lspilot: " .. label
end

local function title_for(job)
  local label = label_of(job)
  if job.status == "running" then
    return " " .. label .. " … "
  elseif job.status == "done" then
    return " " .. label .. " "
  end
  return " " .. label .. " (" .. tostring(job.status) .. ") "
end

-- Whether the title is the window's (0.9+, with a border) or the buffer's first line.
local function title_in_border(border)
  return compat.has_0_9 and border ~= "none"
end

--- Opens the window for `job` near the cursor. `on_close(job)` runs once when the
--- window goes away, however it was closed.
function M.open(job, opts, on_close)
  opts = opts or {}
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "markdown"
  if compat.has_0_9 then
    -- Treesitter's markdown (bundled since 0.10; a parser the user installed on 0.9)
    -- conceals the markup; without it the markdown syntax and conceallevel do.
    pcall(vim.treesitter.start, buf, "markdown")
  end
  pcall(api.nvim_buf_set_name, buf, "lspilot://explain/" .. tostring(job.token))

  local columns, lines = vim.o.columns, vim.o.lines
  local width = math.max(20, math.min(opts.max_width or 90, columns - 4))
  local config = {
    relative = "cursor",
    row = 1,
    col = 0,
    width = width,
    height = 1,
    style = "minimal",
    border = opts.border or "rounded",
    focusable = true,
  }
  if title_in_border(config.border) then
    config.title = title_for(job)
    config.title_pos = "left"
  end
  -- Keep the window on screen when the cursor is low.
  local screen_row = vim.fn.screenrow()
  if screen_row + 4 > lines then
    config.row = -3
    config.anchor = "SW"
  end
  -- The cursor stays where it was unless float.focus asks (:LspilotFocus enters it).
  local source_win = api.nvim_get_current_win()
  local win = api.nvim_open_win(buf, opts.focus == true, config)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].breakindent = true
  vim.wo[win].conceallevel = 2
  vim.wo[win].cursorline = false

  job.float = {
    buf = buf,
    win = win,
    width = width,
    max_height = math.max(3, math.min(opts.max_height or 30, lines - 6)),
    -- Before 0.9 (no window titles) the title is the buffer's first line.
    header = not title_in_border(config.border),
    done_line = nil,
  }

  local closed = false
  local function closed_once()
    if closed then
      return
    end
    closed = true
    on_close(job)
  end
  local close = function()
    if valid_win(win) then
      api.nvim_win_close(win, true)
    end
    closed_once()
  end
  job.float.close = close
  -- vim.keymap arrived in 0.7, the oldest release supported.
  vim.keymap.set("n", "q", close, { buffer = buf, silent = true, nowait = true, desc = "lspilot: close (and cancel)" })
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      vim.schedule(closed_once)
    end,
  })
  -- Once the answer is complete, moving on in the window it came from closes it, as a
  -- hover does; while it streams it stays (closing it cancels the explanation).
  local source_buf = api.nvim_win_get_buf(source_win)
  local group = api.nvim_create_augroup("lspilot.float." .. buf, { clear = true })
  api.nvim_create_autocmd({ "CursorMoved", "CursorMovedI", "InsertEnter" }, {
    group = group,
    buffer = source_buf,
    callback = function()
      local f = job.float
      if f == nil or f.win ~= win then
        return true -- closed: drop this autocmd
      end
      if job.status ~= "running" and f.moved_from and api.nvim_get_current_win() == source_win then
        local cursor = api.nvim_win_get_cursor(source_win)
        if cursor[1] ~= f.moved_from[1] or cursor[2] ~= f.moved_from[2] then
          close()
          return true
        end
      end
    end,
  })
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
  job.float.source_win = source_win
  api.nvim_buf_set_lines(buf, 0, -1, false, job.float.header and { vim.trim(title_for(job)), "" } or { "" })
  pcall(api.nvim_win_set_cursor, win, { api.nvim_buf_line_count(buf), 0 })
  M.paint(job)
  vim.bo[buf].modifiable = false
  return job.float
end

--- Highlights the header (before 0.9) and the done line.
function M.paint(job)
  local f = job.float
  if not f or not valid_buf(f.buf) then
    return
  end
  api.nvim_buf_clear_namespace(f.buf, HEADER_NS, 0, -1)
  if f.header then
    api.nvim_buf_add_highlight(f.buf, HEADER_NS, "Title", 0, 0, -1)
  end
  if f.done_line then
    local last = api.nvim_buf_line_count(f.buf) - 1
    api.nvim_buf_add_highlight(f.buf, HEADER_NS, "Comment", last, 0, -1)
  end
end

--- Enters the window of `job` (:LspilotFocus). True when there was one.
function M.focus(job)
  local f = job.float
  if not f or not valid_win(f.win) then
    return false
  end
  api.nvim_set_current_win(f.win)
  return true
end

local function display_height(lines, width)
  local height = 0
  for _, line in ipairs(lines) do
    local w = vim.fn.strdisplaywidth(line)
    height = height + math.max(1, math.ceil(w / width))
  end
  return height
end

--- Shows `text` in the job's window (the whole text so far, not a delta).
function M.update(job, text)
  local f = job.float
  if not f or not valid_buf(f.buf) then
    return
  end
  f.text = text
  local lines = vim.split(text, "\n", { plain = true })
  -- No empty lines at the bottom (an answer usually ends with a line break).
  while #lines > 1 and lines[#lines] == "" do
    table.remove(lines)
  end
  if f.header then
    table.insert(lines, 1, vim.trim(title_for(job)))
    table.insert(lines, 2, "")
  end
  if f.done_line then
    table.insert(lines, "")
    table.insert(lines, f.done_line)
  end
  local follow = false
  if valid_win(f.win) then
    local cursor = api.nvim_win_get_cursor(f.win)
    follow = cursor[1] >= api.nvim_buf_line_count(f.buf)
  end
  vim.bo[f.buf].modifiable = true
  api.nvim_buf_set_lines(f.buf, 0, -1, false, lines)
  vim.bo[f.buf].modifiable = false
  M.paint(job)
  if valid_win(f.win) then
    local height = math.max(1, math.min(display_height(lines, f.width), f.max_height))
    api.nvim_win_set_height(f.win, height)
    if follow then
      pcall(api.nvim_win_set_cursor, f.win, { #lines, 0 })
    end
  end
end

--- Ends the window's text with `line` ("done · 812 tokens in, 240 out, $0.0003 · 1.2 s").
function M.set_done(job, line)
  local f = job.float
  if not f or not valid_buf(f.buf) then
    return
  end
  f.done_line = line
  if valid_win(f.source_win) then
    f.moved_from = api.nvim_win_get_cursor(f.source_win)
  end
  M.update(job, f.text or job.text or "")
end

--- Refreshes the title after the job's status changed.
function M.set_status(job)
  local f = job.float
  if f and f.header and valid_buf(f.buf) then
    M.update(job, f.text or job.text or "")
    return
  end
  if not f or not valid_win(f.win) or not compat.has_0_9 then
    return
  end
  local config = api.nvim_win_get_config(f.win)
  if config.border == nil or config.border == "none" then
    return
  end
  pcall(api.nvim_win_set_config, f.win, { title = title_for(job), title_pos = "left" })
end

--- The answer shown in the job's window (without the header and the done line), or nil.
function M.text(job)
  local f = job.float
  if not f or not valid_buf(f.buf) then
    return nil
  end
  local lines = api.nvim_buf_get_lines(f.buf, 0, -1, false)
  if f.header then
    lines = vim.list_slice(lines, 3)
  end
  if f.done_line then
    lines = vim.list_slice(lines, 1, #lines - 2)
  end
  return table.concat(lines, "\n")
end

return M
