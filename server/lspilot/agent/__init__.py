"""Agent mode: the model calls tools (read, list, search, edit, create, run) until it
answers; lspilot runs them inside the workspace, with the user's approval."""
