-- The running server as the rest of the plugin sees it: the lspilot client of a
-- buffer (or any), waiting for one that is still starting, the error messages it showed
-- (so a failure is not notified twice), and how to install it when it is missing.
-- client.lua starts clients and wires their handlers into jobs, chat and suggestions;
-- those modules find the client here, so nothing below client.lua requires it.
local compat = require("lspilot.compat")
local config = require("lspilot.config")
local util = require("lspilot.util")

local api = vim.api
local levels = vim.log.levels

local M = {}

local started_for_buf = {} -- bufnr -> the client id attach() gave it
local recent_errors = {} -- { message, at } of the server's error messages

--- Remembers that `bufnr` got client `id` (older Neovims list only initialized clients).
function M.started(bufnr, id)
  started_for_buf[bufnr] = id
end

--- Keeps an error message the server showed (window/showMessage, type Error).
function M.said(message)
  table.insert(recent_errors, { message = message, at = compat.uv.now() })
  if #recent_errors > 20 then
    table.remove(recent_errors, 1)
  end
end

--- Whether the server showed an error message holding `message` in the last 10 s.
function M.server_said(message)
  local now = compat.uv.now()
  for _, said in ipairs(recent_errors) do
    if now - said.at < 10000 and said.message:find(message, 1, true) then
      return true
    end
  end
  return false
end

-- lspilot is not on PyPI: install it from a checkout of its repository.
M.INSTALL_HINT = "install it from a checkout of lspilot: `pipx install /path/to/lspilot` "
  .. "or `uv tool install /path/to/lspilot`, or set cmd = { \"/path/to/lspilot/.venv/bin/lspilot\" } "
  .. "(made by ./dev/demo); see :help lspilot-install"

local told_missing = {}

--- Says once per program that the server command cannot be found, and how to install it.
function M.missing_server(program)
  if told_missing[program] then
    return
  end
  told_missing[program] = true
  util.notify("cannot start the server: `" .. program .. "` is not an executable; " .. M.INSTALL_HINT, levels.ERROR)
end

--- The buffer's initialized lspilot client, or nil.
function M.find(bufnr)
  for _, client in ipairs(compat.get_clients({ bufnr = bufnr, name = config.name })) do
    if client.initialized and not compat.is_stopped(client) then
      return client
    end
  end
  return nil
end

--- Any running lspilot client: the buffer's first, else the first one there is.
function M.any(bufnr)
  local client = bufnr and M.find(bufnr)
  if client then
    return client
  end
  for _, c in ipairs(compat.get_clients({ name = config.name })) do
    if c.initialized and not compat.is_stopped(c) then
      return c
    end
  end
  return nil
end

--- The buffer's client; when a server is still starting (a command typed right after
--- opening a file), waits up to `ms` for it.
function M.wait_for(bufnr, ms)
  if M.find(bufnr) then
    return M.find(bufnr)
  end
  local starting = false
  local candidates = compat.get_clients({ name = config.name })
  -- Older Neovims list only initialized clients; the one setup() started is known.
  local id = started_for_buf[bufnr]
  if id and vim.lsp.get_client_by_id(id) then
    table.insert(candidates, vim.lsp.get_client_by_id(id))
  end
  for _, client in ipairs(candidates) do
    if not client.initialized and not compat.is_stopped(client) then
      starting = true
    end
  end
  if starting then
    api.nvim_echo({ { "lspilot: waiting for the server to start…" } }, false, {})
    vim.wait(ms, function()
      return M.find(bufnr) ~= nil
    end, 50)
  end
  return M.find(bufnr)
end

return M
