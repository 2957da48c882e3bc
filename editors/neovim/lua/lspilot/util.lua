-- Small helpers every part of the plugin uses.
local M = {}

--- `msg` with one leading "lspilot: " taken off (servers before issue 28 prefixed
--- their own messages; the plugin adds its own single prefix).
function M.unprefixed(msg)
  msg = tostring(msg)
  return (msg:gsub("^lspilot:%s*", "", 1))
end

--- vim.notify with one "lspilot: " prefix, however many `msg` came with.
function M.notify(msg, level)
  vim.notify("lspilot: " .. M.unprefixed(msg), level or vim.log.levels.INFO, { title = "lspilot" })
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

--- US dollars, the one format of every lspilot client (issue 28): "$0" for nothing,
--- "<$0.0001" below that, else four significant digits but never more than four
--- decimals ("$0.0041", "$0.0123", "$0.5000", "$1.235", "$12.35", "$1235"); nil when
--- there is no cost (the caller says "cost unknown").
function M.format_cost(cost)
  if type(cost) ~= "number" or cost ~= cost then
    return nil
  end
  if cost <= 0 then
    return "$0"
  elseif cost < 0.0001 then
    return "<$0.0001"
  end
  local decimals = math.min(4, math.max(0, 3 - math.floor(math.log10(cost))))
  return string.format("$%." .. decimals .. "f", cost)
end

--- "812 tokens in, 240 out, $0.0003" from an LSP answer's `usage`, or nil.
function M.usage_words(usage)
  if type(usage) ~= "table" then
    return nil
  end
  local words = M.thousands(M.value(usage.promptTokens, 0)) .. " tokens in, "
    .. M.thousands(M.value(usage.completionTokens, 0)) .. " out"
  local cost = M.format_cost(M.value(usage.cost, nil))
  if cost then
    words = words .. ", " .. cost
  end
  if usage.estimated == true then
    words = words .. " (estimated)"
  end
  return words
end

return M
