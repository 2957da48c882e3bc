-- Ranges: the LSP Range a visual selection or a command's line range covers.
local compat = require("lspilot.compat")

local api = vim.api
local M = {}

local function line_text(bufnr, row0)
  return api.nvim_buf_get_lines(bufnr, row0, row0 + 1, false)[1] or ""
end

--- An LSP Range from two positions `{row (1-based), col (0-based byte)}`, as a visual
--- selection in `mode` ("v" charwise; "V" and blockwise take whole lines) covers them.
function M.make(bufnr, first, last, mode, encoding)
  encoding = encoding or "utf-16"
  if first[1] > last[1] or (first[1] == last[1] and first[2] > last[2]) then
    first, last = last, first
  end
  local line_count = api.nvim_buf_line_count(bufnr)
  first = { math.max(1, math.min(first[1], line_count)), math.max(0, first[2]) }
  last = { math.max(1, math.min(last[1], line_count)), math.max(0, last[2]) }
  -- Where a selection that takes line `row` (1-based) with its newline ends.
  local function after_line(row)
    if row < line_count or vim.bo[bufnr].eol then
      return { line = row, character = 0 }
    end
    local text = line_text(bufnr, row - 1)
    return { line = row - 1, character = compat.to_lsp_col(text, #text, encoding) }
  end
  if mode ~= "v" then
    return { start = { line = first[1] - 1, character = 0 }, ["end"] = after_line(last[1]) }
  end
  local first_text = line_text(bufnr, first[1] - 1)
  local last_text = line_text(bufnr, last[1] - 1)
  local start = { line = first[1] - 1, character = compat.to_lsp_col(first_text, first[2], encoding) }
  local end_col = last[2]
  if vim.o.selection ~= "exclusive" then
    end_col = end_col + math.max(1, compat.char_len(last_text, end_col))
  end
  local finish
  if end_col > #last_text then
    finish = after_line(last[1])
  else
    finish = { line = last[1] - 1, character = compat.to_lsp_col(last_text, end_col, encoding) }
  end
  return { start = start, ["end"] = finish }
end

--- The range a command applies to: the visual selection (active, or the last one
--- when the command's line range is the one `:'<,'>` gives), else the command's lines,
--- else the cursor line.
function M.current(bufnr, cmd_opts, encoding)
  local mode = api.nvim_get_mode().mode
  if mode == "v" or mode == "V" or mode == "\22" then
    local v = vim.fn.getpos("v")
    local cur = vim.fn.getpos(".")
    api.nvim_feedkeys(api.nvim_replace_termcodes("<Esc>", true, false, true), "nx", false)
    return M.make(bufnr, { v[2], v[3] - 1 }, { cur[2], cur[3] - 1 }, mode, encoding)
  end
  if cmd_opts and cmd_opts.range and cmd_opts.range > 0 then
    local s = api.nvim_buf_get_mark(bufnr, "<")
    local e = api.nvim_buf_get_mark(bufnr, ">")
    if s[1] == cmd_opts.line1 and e[1] == cmd_opts.line2 then
      local vmode = vim.fn.visualmode()
      return M.make(bufnr, s, e, vmode == "" and "V" or vmode, encoding)
    end
    return M.make(bufnr, { cmd_opts.line1, 0 }, { cmd_opts.line2, 0 }, "V", encoding)
  end
  local row = api.nvim_win_get_cursor(0)[1]
  return M.make(bufnr, { row, 0 }, { row, 0 }, "V", encoding)
end

return M
