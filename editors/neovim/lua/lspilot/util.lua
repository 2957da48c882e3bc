-- Small helpers every part of the plugin uses.
local M = {}

function M.notify(msg, level)
  vim.notify("lspilot: " .. msg, level or vim.log.levels.INFO, { title = "lspilot" })
end

--- Whether a decoded JSON value is absent (nil, or JSON null).
function M.is_nil(value)
  return value == nil or value == vim.NIL
end

--- `value` unless it is absent, else `default`.
function M.value(value, default)
  if M.is_nil(value) then
    return default
  end
  return value
end

--- A whole number with thousands separators: 1234567 -> "1,234,567".
function M.thousands(n)
  local s = tostring(math.floor(tonumber(n) or 0))
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then
    return s
  end
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

--- US dollars for people: "$1.23", "$0.0005", "$0.000011"; nil when there is no cost.
function M.dollars(cost)
  if type(cost) ~= "number" then
    return nil
  end
  if cost == 0 then
    return "$0"
  elseif cost >= 0.01 then
    return string.format("$%.2f", cost)
  end
  local text = string.format("%.6f", cost):gsub("0+$", "")
  if #text < 6 then
    text = string.format("%.4f", cost)
  end
  return "$" .. text
end

--- "812 tokens in, 240 out, $0.0003" from an LSP answer's `usage`, or nil.
function M.usage_words(usage)
  if type(usage) ~= "table" then
    return nil
  end
  local words = M.thousands(M.value(usage.promptTokens, 0)) .. " tokens in, "
    .. M.thousands(M.value(usage.completionTokens, 0)) .. " out"
  local cost = M.dollars(M.value(usage.cost, nil))
  if cost then
    words = words .. ", " .. cost
  end
  if usage.estimated == true then
    words = words .. " (estimated)"
  end
  return words
end

return M
