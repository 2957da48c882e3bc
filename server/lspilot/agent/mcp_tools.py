"""The tools of the user's MCP servers, offered as ``mcp__<server>__<tool>`` with the
server's own description and schema; their results bounded like every tool's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lspilot.agent.files import ToolError
from lspilot.agent.tools import Host, Result, Tool, bounded
from lspilot.mcp_client import McpError, McpServer, McpTool, result_text

MAX_NAME = 64  # what the Chat Completions API takes for a function name


def tool_name(server: str, tool: str) -> str:
    """``mcp__<server>__<tool>``, cut to 64 characters with a stable suffix when longer."""
    name = f"mcp__{server}__{tool}"
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    if len(name) <= MAX_NAME:
        return name
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9]}_{suffix}"


class McpToolCall(Tool):
    kind = "mcp"

    def __init__(self, server: McpServer, tool: McpTool) -> None:
        self.server = server
        self.tool = tool
        self.name = tool_name(server.name, tool.name)
        self.description = (tool.description or f"{tool.name} of the MCP server "
                            f"{server.name}")[:1024]
        self.parameters = tool.schema if tool.schema.get("type") == "object" else {
            "type": "object", "properties": {}}

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Calling {self.tool.name} ({self.server.name})…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        shown = json.dumps(dict(args), ensure_ascii=False)
        return (f"lspilot's agent wants to call {self.tool.name} of the MCP server "
                f"{self.server.name} with {bounded(shown, 800)}.")

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        try:
            result = await self.server.call(self.tool.name, args)
        except McpError as exc:
            raise ToolError(str(exc)) from None
        text, failed = result_text(result)
        if failed:
            raise ToolError(f"{self.tool.name} reported an error: {bounded(text, 4000)}")
        first = text.strip().splitlines()[0][:120] if text.strip() else "(no content)"
        return Result(bounded(text), first)


def mcp_tools(servers: list[McpServer]) -> list[Tool]:
    return [McpToolCall(server, tool) for server in servers for tool in server.tools]
