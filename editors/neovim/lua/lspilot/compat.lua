-- Version shims: lspilot supports Neovim 0.7 (Debian 12) through current releases.
-- Every API that changed between those versions goes through here, so the rest of
-- the plugin is written once. Newer APIs are used where present.
local M = {}

local function has(feature)
  return vim.fn.has(feature) == 1
end

M.has_0_8 = has("nvim-0.8")
M.has_0_9 = has("nvim-0.9")
M.has_0_10 = has("nvim-0.10")
M.has_0_11 = has("nvim-0.11")

M.uv = vim.uv or vim.loop

-- Client methods became `client:method()` in 0.11; the `client.method()` form warns.
local function call(client, name, ...)
  if M.has_0_11 then
    return client[name](client, ...)
  end
  return client[name](...)
end

function M.request(client, method, params, handler, bufnr)
  return call(client, "request", method, params, handler, bufnr)
end

function M.notify(client, method, params)
  return call(client, "notify", method, params)
end

function M.cancel_request(client, id)
  return call(client, "cancel_request", id)
end

function M.is_stopped(client)
  if client == nil then
    return true
  end
  return call(client, "is_stopped")
end

--- Clients named `name` (all, or attached to `bufnr` when given).
function M.get_clients(filter)
  filter = filter or {}
  local clients
  if vim.lsp.get_clients then
    clients = vim.lsp.get_clients(filter)
  else
    clients = {}
    local source = filter.bufnr and vim.lsp.buf_get_clients(filter.bufnr) or vim.lsp.get_active_clients()
    for _, client in pairs(source) do
      if filter.name == nil or client.name == filter.name then
        table.insert(clients, client)
      end
    end
  end
  return clients
end

--- Fires `User <pattern>`. `data` reaches `args.data` on 0.8+; on 0.7 callbacks read
--- `require("lspilot").last_event` instead.
function M.user_event(pattern, data)
  local opts = { pattern = pattern, modeline = false }
  if M.has_0_8 then
    opts.data = data
  end
  pcall(vim.api.nvim_exec_autocmds, "User", opts)
end

--- The length in bytes of the UTF-8 sequence that starts with `byte`.
local function utf8_len(byte)
  if byte >= 0xF0 then
    return 4
  elseif byte >= 0xE0 then
    return 3
  elseif byte >= 0xC0 then
    return 2
  end
  return 1
end

--- Byte index `col` (0-based) in `line` to an LSP character offset in `encoding`.
--- Written out here because vim.str_utfindex changed its signature in 0.11.
function M.to_lsp_col(line, col, encoding)
  if col > #line then
    col = #line
  end
  if encoding == "utf-8" then
    return col
  end
  local units = 0
  local i = 1
  while i <= col do
    local len = utf8_len(line:byte(i))
    units = units + ((encoding == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return units
end

--- LSP character offset back to a byte index in `line` (for cursor placement).
function M.from_lsp_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local units = 0
  local i = 1
  while i <= #line and units < character do
    local len = utf8_len(line:byte(i))
    units = units + ((encoding == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return i - 1
end

--- The byte length of the character starting at byte `col` (0-based) in `line`.
function M.char_len(line, col)
  local byte = line:byte(col + 1)
  if byte == nil then
    return 0
  end
  return utf8_len(byte)
end

--- Upward search for a root marker from `path`'s directory; nil when none is found.
function M.find_root(path, markers)
  if vim.fs and vim.fs.find and vim.fs.dirname then
    local found = vim.fs.find(markers, { path = vim.fs.dirname(path), upward = true })[1]
    return found and vim.fs.dirname(found) or nil
  end
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while dir and dir ~= "" do
    for _, marker in ipairs(markers) do
      if M.uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return nil
end

return M
