-- Write tests' runs: what the end message says about them (a run that never ran a test
-- says why), the run's output in a scratch buffer (:LspilotTestOutput), and the test
-- file lspilot wrote to disk no longer marked modified.
local util = require("lspilot.util")

local api = vim.api
local M = {}

M.BUFFER_NAME = "lspilot://tests/output"

--- The last run's `tests` (the action result's: command, passed, failed, rounds,
--- output; ran = false and problem when no test ran), or nil.
M.last = nil

local function has_output(tests)
  return type(tests) == "table" and type(tests.output) == "string" and vim.trim(tests.output) ~= ""
end

--- Keeps `tests` as the last run's and returns what the end message adds: the problem
--- of a run that never ran a test, and the hint to see the output. Also takes the
--- 'modified' mark off the buffers the run wrote to disk.
--- `said`: the server's own words on the run, when it said them (the problem is not
--- repeated when they hold it).
function M.finished(tests, said)
  if type(tests) ~= "table" then
    return ""
  end
  M.last = tests
  M.sync_written()
  local words = ""
  local problem = util.value(tests.problem, nil)
  if tests.ran == false and type(problem) == "string" and problem ~= ""
    and not (type(said) == "string" and said:find(problem, 1, true)) then
    words = words .. "; no test ran: " .. problem
  end
  if has_output(tests) then
    words = words .. "; :LspilotTestOutput shows the output"
  end
  return words
end

-- Whether `buf` holds what its file holds, as the server sees the buffer: its lines
-- joined, the last line's end of line optional (an edit that inserted "...\n" into a new
-- buffer leaves an empty last line the file does not have).
local function same_as_disk(buf)
  local name = api.nvim_buf_get_name(buf)
  if name == "" or vim.fn.filereadable(name) ~= 1 then
    return false
  end
  local ok, raw = pcall(vim.fn.readfile, name, "b")
  if not ok then
    return false
  end
  local on_disk = table.concat(raw, "\n")
  local text = table.concat(api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
  return text == on_disk or text .. "\n" == on_disk
end

--- The server writes the test file to disk before running it; the buffer holding the
--- same text stayed 'modified' and out of date with the file. Those buffers (modified,
--- but exactly what is on disk) are read again: nothing is lost, undo included.
function M.sync_written()
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(buf) and vim.bo[buf].buftype == "" and vim.bo[buf].modified
      and same_as_disk(buf) then
      api.nvim_buf_call(buf, function()
        vim.cmd("silent! edit!")
      end)
    end
  end
end

--- :LspilotTestOutput: the last run's output in a scratch buffer (q closes it).
function M.show()
  local tests = M.last
  if not has_output(tests) then
    util.notify("no test run has output yet (Write tests runs them when you say so)")
    return nil
  end
  local buf = vim.fn.bufnr(M.BUFFER_NAME)
  if buf == -1 or not api.nvim_buf_is_valid(buf) then
    buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(buf, M.BUFFER_NAME)
    vim.bo[buf].bufhidden = "wipe"
    vim.bo[buf].swapfile = false
    vim.keymap.set("n", "q", "<Cmd>close<CR>", { buffer = buf, silent = true, nowait = true, desc = "lspilot: close" })
  end
  local lines = {}
  local command = util.value(tests.command, nil)
  if type(command) == "string" and command ~= "" then
    table.insert(lines, "$ " .. command)
    table.insert(lines, "")
  end
  local problem = util.value(tests.problem, nil)
  if tests.ran == false and type(problem) == "string" and problem ~= "" then
    table.insert(lines, "No test ran: " .. problem)
    table.insert(lines, "")
  end
  vim.list_extend(lines, vim.split((tests.output:gsub("\n$", "")), "\n", { plain = true }))
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("botright split")
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
    api.nvim_win_set_height(win, math.max(5, math.min(#lines, math.floor(vim.o.lines / 3))))
  else
    api.nvim_set_current_win(win)
  end
  -- The counts come last: show the end, the beginning is a scroll up.
  pcall(api.nvim_win_set_cursor, win, { #lines, 0 })
  return buf
end

return M
