"""Chat: conversations about the code, kept across restarts; pure parts and their store."""
