"""``lspilot acp``: the agent over the Agent Client Protocol (ACP v1, JSON-RPC on stdio)."""
