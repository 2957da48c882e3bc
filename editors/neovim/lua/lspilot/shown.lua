-- One suggestion shown at a time, drawn in its own namespace, and the one request in
-- flight that may replace it: what ghost text (suggestion.lua) and next edit suggestions
-- (nextedit.lua) both are. A newer request supersedes the one in flight (cancelled, its
-- answer dropped); clearing removes the drawing and says why in a "cleared" event.
local compat = require("lspilot.compat")
local events = require("lspilot.events")

local api = vim.api
local M = {}

local Slot = {}
Slot.__index = Slot

--- A slot drawing in `namespace` and firing `User <pattern>` events ({ event = ... }).
--- Its fields: `current` (the suggestion on screen, a table with at least `bufnr`, or
--- nil) and `pending` ({ client, id, bufnr, ... } of the request in flight, or nil).
function M.new(pattern, namespace)
  return setmetatable({ pattern = pattern, namespace = namespace, current = nil, pending = nil }, Slot)
end

function Slot:fire(event, fields)
  events.fire(self.pattern, vim.tbl_extend("force", { event = event }, fields or {}))
end

--- Cancels the request in flight (only when it is for `bufnr`, if given).
function Slot:cancel_pending(bufnr)
  local p = self.pending
  if p == nil or (bufnr ~= nil and p.bufnr ~= bufnr) then
    return
  end
  self.pending = nil
  if not compat.is_stopped(p.client) then
    pcall(compat.cancel_request, p.client, p.id)
  end
end

--- Sends `method` and makes it the request in flight: { client, id, bufnr } plus
--- `fields`, returned (nil when it could not be sent). `on_answer(this, err, result)`
--- runs only while it is still the one in flight, and it no longer is then.
function Slot:request(client, method, params, bufnr, fields, on_answer)
  local this
  -- client:request() sends the buffer's pending didChange first (0.7 and later).
  local ok, id = compat.request(client, method, params, function(err, result)
    if self.pending ~= this then
      return -- superseded or cancelled: its answer is stale
    end
    self.pending = nil
    on_answer(this, err, result)
  end, bufnr)
  if not ok then
    return nil
  end
  this = vim.tbl_extend("force", fields or {}, { client = client, id = id, bufnr = bufnr })
  self.pending = this
  return this
end

--- Whether the suggestion shown is in `bufnr`.
function Slot:shown_in(bufnr)
  return self.current ~= nil and self.current.bufnr == bufnr
end

--- Forgets the suggestion and removes its drawing, without an event (it is replaced by
--- itself, or accepted); returns what was shown, or nil.
function Slot:drop()
  local s = self.current
  if s == nil then
    return nil
  end
  self.current = nil
  if api.nvim_buf_is_valid(s.bufnr) then
    api.nvim_buf_clear_namespace(s.bufnr, self.namespace, 0, -1)
  end
  return s
end

--- Removes the suggestion; `reason` goes into the "cleared" event. False when none is
--- shown.
function Slot:clear(reason)
  local s = self:drop()
  if s == nil then
    return false
  end
  self:fire("cleared", { bufnr = s.bufnr, reason = reason })
  return true
end

-- Drawing and keys both kinds share -----------------------------------------------------

--- Defines highlight groups with `define` now and again after every colorscheme (which
--- clears them); `define` uses default = true, so a colorscheme's or the user's win.
function M.highlights(group, define)
  define()
  api.nvim_create_autocmd("ColorScheme", {
    group = api.nvim_create_augroup(group, { clear = true }),
    callback = define,
  })
end

--- `text` with tabs as spaces (virtual text draws a tab as one cell).
function M.untab(text, bufnr)
  return (text:gsub("\t", string.rep(" ", vim.bo[bufnr].tabstop)))
end

--- The lines after the first of `lines` as virt_lines in `hl`, or nil when there are
--- none (the first goes in virt_text, where the caller wants it).
function M.virt_lines(lines, bufnr, hl)
  if #lines < 2 then
    return nil
  end
  local out = {}
  for i = 2, #lines do
    table.insert(out, { { M.untab(lines[i], bufnr), hl } })
  end
  return out
end

local function feed(lhs)
  api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), "n", false)
end

--- Maps `keys` ({ name = lhs or false }) in `modes` for `bufnr` to `actions` ({ name =
--- { fn, description } }); when `fn` returns false (nothing shown) the key does what it
--- does without lspilot.
function M.map_keys(bufnr, modes, keys, actions)
  for name, lhs in pairs(keys or {}) do
    local action = actions[name]
    if lhs and action then
      vim.keymap.set(modes, lhs, function()
        if not action[1]() then
          feed(lhs)
        end
      end, { buffer = bufnr, silent = true, desc = "lspilot: " .. action[2] })
    end
  end
end

return M
