"""lspilot: an AI copilot language server for any LSP editor."""

__version__ = "0.1.0"
