-- Defaults for require("lspilot").setup() and lsp/lspilot.lua.
local M = {}

M.name = "lspilot"

M.filetypes = {
  "python", "lua", "javascript", "javascriptreact", "typescript", "typescriptreact",
  "go", "rust", "c", "cpp", "cs", "java", "kotlin", "scala", "swift", "ruby", "php",
  "sh", "bash", "zsh", "haskell", "ocaml", "elixir", "erlang", "zig", "sql",
  "html", "css", "vue", "svelte",
}

M.root_markers = {
  ".git", "pyproject.toml", "setup.py", "setup.cfg", "package.json", "Cargo.toml",
  "go.mod", "pom.xml", "build.gradle", "Makefile",
}

M.defaults = {
  -- The server command; `lspilot` must be on $PATH unless you give a full path.
  cmd = { "lspilot" },
  -- Extra environment for the server (e.g. LSPILOT_BASE_URL); nil inherits Neovim's.
  cmd_env = nil,
  filetypes = M.filetypes,
  root_markers = M.root_markers,
  -- The `lspilot` settings section (baseUrl, model, temperature, ...), answered to
  -- workspace/configuration. `{ model = "x" }` and `{ lspilot = { model = "x" } }`
  -- both work.
  settings = {},
  -- initializationOptions. The plugin renders explanations itself, so it asks the
  -- server not to also open them as a document or message.
  init_options = { explainShow = "none" },
  -- Extra client capabilities, merged into Neovim's.
  capabilities = nil,
  on_attach = nil,
  -- Start the server automatically for `filetypes`.
  autostart = true,
  -- The explanation window.
  float = {
    border = "rounded",
    max_width = 90,
    max_height = 30,
    -- Enter the window when it opens; otherwise the cursor stays in your code and
    -- :LspilotFocus enters it (q there closes it).
    focus = false,
  },
  -- vim.notify when a refactor or test action finishes (failures are always shown).
  notify_done = true,
  -- Echo a running action's progress ("lspilot: Refactor: Asking the model…") in the
  -- command line; it is not kept in :messages. Off: the statusline component
  -- (require("lspilot").statusline()) and the LspilotProgress event still have it.
  echo_progress = true,
  -- Ghost text (inline completions) while you type in insert mode.
  suggestion = {
    enabled = true,
    -- Neovim 0.12+: use vim.lsp.inline_completion instead of the plugin's own.
    native = true,
    -- Insert-mode keys; false leaves one unmapped. Each falls through to the key's
    -- own meaning when no suggestion is shown.
    keys = {
      accept = "<M-l>",
      accept_word = "<M-w>",
      accept_line = "<M-j>",
      next = "<M-]>",
      prev = "<M-[>",
      dismiss = "<C-]>",
    },
  },
  -- Next edit suggestions: after a change and `debounce` ms without another, the edit
  -- that follows from it, shown where it is (:help lspilot-next-edit).
  next_edit = {
    enabled = true,
    debounce = 500,
    -- Normal- and insert-mode keys; false leaves one unmapped. Each falls through to the
    -- key's own meaning when no suggestion is shown.
    keys = {
      jump = "<M-n>",
      accept = "<M-a>",
      dismiss = "<M-d>",
    },
  },
  -- :checkhealth lspilot: seconds to wait for `lspilot check` to reach the upstream.
  health_timeout = 20,
}

--- The options in force (setup() replaces them).
M.options = vim.deepcopy(M.defaults)

return M
