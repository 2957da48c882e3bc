-- Agent mode in words: a step's line in the chat buffer (tool, its arguments in brief,
-- status, summary), an approval question's lines, and the turn's end line (steps and
-- cost). Only text here; lspilot.chat puts it in the buffer.
local util = require("lspilot.util")

local M = {}

M.MARKS = { running = "…", done = "✓", failed = "✗", refused = "⊘", cancelled = "⊘" }

local function cut(text, width)
  text = tostring(text):gsub("%s+", " ")
  if vim.fn.strchars(text) > width then
    return vim.fn.strcharpart(text, 0, width - 1) .. "…"
  end
  return text
end

--- The call's arguments in brief: the path (and lines), the pattern, the command line;
--- else the JSON text, cut.
function M.brief(name, arguments)
  if type(arguments) ~= "string" then
    return ""
  end
  local ok, args = pcall(vim.fn.json_decode, arguments)
  if not ok or type(args) ~= "table" then
    return cut(arguments, 60)
  end
  local function str(v)
    return type(v) == "string" and v or nil
  end
  if type(args.argv) == "table" then
    local words = {}
    for _, w in ipairs(args.argv) do
      w = tostring(w)
      table.insert(words, w:find("[%s\"']") and vim.fn.shellescape(w) or w)
    end
    return cut(table.concat(words, " "), 80)
  end
  local parts = {}
  local path = str(args.path)
  if path then
    local lines = ""
    if type(args.startLine) == "number" then
      lines = ":" .. args.startLine
      if type(args.endLine) == "number" then
        lines = lines .. "-" .. args.endLine
      end
    end
    table.insert(parts, path .. lines)
  end
  if str(args.pattern) then
    table.insert(parts, "/" .. args.pattern .. "/")
  end
  if str(args.glob) then
    table.insert(parts, args.glob)
  end
  if name == "create_file" and str(args.content) then
    local n = #vim.split((args.content:gsub("\n$", "")), "\n", { plain = true })
    table.insert(parts, n == 1 and "(1 line)" or ("(" .. n .. " lines)"))
  end
  if #parts == 0 then
    return cut(arguments, 60)
  end
  return cut(table.concat(parts, " "), 80)
end

--- One step as a line: "✓ read_file util.py: done, util.py:1-2".
function M.step_line(step)
  local mark = M.MARKS[step.status] or "•"
  local line = mark .. " " .. tostring(step.name)
  local brief = M.brief(step.name, step.arguments)
  if brief ~= "" then
    line = line .. " " .. brief
  end
  if step.status == "running" then
    return line .. " (running…)"
  end
  line = line .. " (" .. tostring(step.status) .. ")"
  if type(step.summary) == "string" and step.summary ~= "" then
    line = line .. ": " .. cut(step.summary, 120)
  end
  return line
end

--- An approval question as lines: its first line in bold, the rest (the diff, the
--- content of a new file) in a fenced block; `answer` once the user chose.
function M.question_lines(message, answer)
  local lines = vim.split(message, "\n", { plain = true })
  local out = { "**" .. lines[1] .. "**" }
  local rest = vim.list_slice(lines, 2)
  while #rest > 0 and vim.trim(rest[#rest]) == "" do
    table.remove(rest)
  end
  while #rest > 0 and vim.trim(rest[1]) == "" do
    table.remove(rest, 1)
  end
  if #rest > 0 then
    local diff = false
    for _, l in ipairs(rest) do
      if l:match("^@@") or l:match("^%-%-%- ") or l:match("^%+%+%+ ") then
        diff = true
      end
    end
    table.insert(out, "```" .. (diff and "diff" or ""))
    vim.list_extend(out, rest)
    table.insert(out, "```")
  end
  if answer == nil then
    table.insert(out, "→ waiting for your answer…")
  elseif answer == false then
    table.insert(out, "→ no answer (Deny)")
  else
    table.insert(out, "→ " .. answer)
  end
  return out
end

--- The turn's end line: "2 steps (2 done) · 240 tokens in, 40 out · $0.0041".
function M.summary(steps, usage, stop_reason)
  local counts, order = {}, {}
  for _, s in ipairs(steps or {}) do
    local st = tostring(s.status)
    if not counts[st] then
      table.insert(order, st)
      counts[st] = 0
    end
    counts[st] = counts[st] + 1
  end
  local parts = {}
  local n = #(steps or {})
  local words = n == 1 and "1 step" or (n .. " steps")
  if n > 0 then
    local each = {}
    for _, st in ipairs(order) do
      table.insert(each, counts[st] .. " " .. st)
    end
    words = words .. " (" .. table.concat(each, ", ") .. ")"
  end
  table.insert(parts, words)
  if type(usage) == "table" then
    local tokens = util.thousands(util.value(usage.promptTokens, 0)) .. " tokens in, "
      .. util.thousands(util.value(usage.completionTokens, 0)) .. " out"
    if usage.estimated == true then
      tokens = "~" .. tokens
    end
    table.insert(parts, tokens)
    local cost = util.format_cost(util.value(usage.cost, nil))
    if cost then
      table.insert(parts, cost)
    end
  end
  local line = table.concat(parts, " · ")
  if type(stop_reason) == "string" and stop_reason ~= "end_turn" then
    local why = { max_steps = "stopped: agentMaxSteps reached", max_cost = "stopped: the cost limit was reached" }
    line = line .. " · " .. (why[stop_reason] or ("stopped: " .. stop_reason))
  end
  return line
end

return M
