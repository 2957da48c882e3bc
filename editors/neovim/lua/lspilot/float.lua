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

local function title_for(job)
  local label = job.title or "lspilot"
  if job.status == "running" then
    return " " .. label .. " … "
  elseif job.status == "done" then
    return " " .. label .. " "
  end
  return " " .. label .. " (" .. tostring(job.status) .. ") "
end

--- Opens the window for `job` near the cursor. `on_close(job)` runs once when the
--- window goes away, however it was closed.
function M.open(job, opts, on_close)
  opts = opts or {}
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "markdown"
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
  if compat.has_0_9 and config.border ~= "none" then
    config.title = title_for(job)
    config.title_pos = "left"
  end
  -- Keep the window on screen when the cursor is low.
  local screen_row = vim.fn.screenrow()
  if screen_row + 4 > lines then
    config.row = -3
    config.anchor = "SW"
  end
  local win = api.nvim_open_win(buf, true, config)
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  vim.wo[win].cursorline = false

  job.float = { buf = buf, win = win, width = width, max_height = math.max(3, math.min(opts.max_height or 30, lines - 6)) }

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
  api.nvim_buf_set_lines(buf, 0, -1, false, { "" })
  vim.bo[buf].modifiable = false
  return job.float
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
  local lines = vim.split(text, "\n", { plain = true })
  -- No empty lines at the bottom (an answer usually ends with a line break).
  while #lines > 1 and lines[#lines] == "" do
    table.remove(lines)
  end
  local follow = false
  if valid_win(f.win) then
    local cursor = api.nvim_win_get_cursor(f.win)
    follow = cursor[1] >= api.nvim_buf_line_count(f.buf)
  end
  vim.bo[f.buf].modifiable = true
  api.nvim_buf_set_lines(f.buf, 0, -1, false, lines)
  vim.bo[f.buf].modifiable = false
  if valid_win(f.win) then
    local height = math.max(1, math.min(display_height(lines, f.width), f.max_height))
    api.nvim_win_set_height(f.win, height)
    if follow then
      pcall(api.nvim_win_set_cursor, f.win, { #lines, 0 })
    end
  end
end

--- Refreshes the title (0.9+) after the job's status changed.
function M.set_status(job)
  local f = job.float
  if not f or not valid_win(f.win) or not compat.has_0_9 then
    return
  end
  local config = api.nvim_win_get_config(f.win)
  if config.border == nil or config.border == "none" then
    return
  end
  pcall(api.nvim_win_set_config, f.win, { title = title_for(job), title_pos = "left" })
end

--- Text currently shown in the job's window, or nil.
function M.text(job)
  local f = job.float
  if not f or not valid_buf(f.buf) then
    return nil
  end
  return table.concat(api.nvim_buf_get_lines(f.buf, 0, -1, false), "\n")
end

return M
