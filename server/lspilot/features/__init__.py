"""What lspilot does, one feature object each, wired to LSP by ``lspilot.server``."""
