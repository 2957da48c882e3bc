"""ACP's shapes, as pure functions: the client's prompt and capabilities in, the updates
and answers out (https://agentclientprotocol.com/protocol/schema, protocol version 1).
Nothing here talks to anyone."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from attrs import define

from lspilot.acp.rpc import invalid_params
from lspilot.agent.loop import StepStatus
from lspilot.settings import McpServerSetting, parse_value

PROTOCOL_VERSION = 1
MODES = (
    {"id": "agent", "name": "Agent",
     "description": "Reads, edits and runs in the workspace, asking where agentApproval says"},
    {"id": "ask", "name": "Ask", "description": "Answers from the prompt alone, no tools"},
)
MODE_IDS = tuple(mode["id"] for mode in MODES)

# agentApproval's kinds to ACP's ToolKind.
TOOL_KINDS = {"read": "read", "edit": "edit", "run": "execute", "mcp": "fetch"}
STATUSES: dict[StepStatus, str] = {"running": "pending", "done": "completed",
                                   "failed": "failed", "refused": "failed"}

# The permission options, and the loop's answers they stand for (lspilot.agent.loop).
ALLOW_ONCE, ALLOW_ALWAYS, REJECT = "allow", "allow_always", "reject"
PERMISSION_KINDS = {ALLOW_ONCE: "allow_once", ALLOW_ALWAYS: "allow_always",
                    REJECT: "reject_once"}


@define(frozen=True)
class ClientCapabilities:
    read_text_file: bool = False
    write_text_file: bool = False
    terminal: bool = False

    @classmethod
    def from_json(cls, value: Any) -> ClientCapabilities:
        caps: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        fs_caps = caps.get("fs")
        fs: Mapping[str, Any] = fs_caps if isinstance(fs_caps, Mapping) else {}
        return cls(read_text_file=fs.get("readTextFile") is True,
                   write_text_file=fs.get("writeTextFile") is True,
                   terminal=caps.get("terminal") is True)


def negotiated_version(requested: Any) -> int:
    """The version we answer: the client's when we speak it, else our latest."""
    if not isinstance(requested, int) or isinstance(requested, bool):
        raise invalid_params("protocolVersion must be an integer")
    return requested if requested == PROTOCOL_VERSION else PROTOCOL_VERSION


def agent_capabilities() -> dict[str, Any]:
    return {"loadSession": False,
            "promptCapabilities": {"image": False, "audio": False, "embeddedContext": True},
            "mcpCapabilities": {"http": True, "sse": False}}


def params_object(params: Any) -> Mapping[str, Any]:
    if not isinstance(params, Mapping):
        raise invalid_params("params must be an object")
    return params


def string_field(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_params(f"{name} must be a non-empty string")
    return value


def prompt_text(blocks: Any, root: Path) -> str:
    """The user's message from a prompt's content blocks: text as it is, an embedded
    resource as a fenced block under its path, a resource link as a mention of the file
    (the agent reads it with its tools)."""
    if not isinstance(blocks, list) or not blocks:
        raise invalid_params("prompt must be a non-empty list of content blocks")
    parts: list[str] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            raise invalid_params("each content block must be an object")
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise invalid_params("a text block needs a string 'text'")
            parts.append(text)
        elif kind == "resource":
            resource = block.get("resource")
            if not isinstance(resource, Mapping) or not isinstance(resource.get("uri"), str):
                raise invalid_params("a resource block needs a resource with a 'uri'")
            shown = _shown(resource["uri"], root)
            text = resource.get("text")
            if isinstance(text, str):
                parts.append(f"{shown}:\n```\n{text.rstrip()}\n```")
            else:
                parts.append(f"(the user attached {shown}, which is not text)")
        elif kind == "resource_link":
            uri = block.get("uri")
            if not isinstance(uri, str):
                raise invalid_params("a resource_link block needs a 'uri'")
            parts.append(f"(the user refers to {_shown(uri, root)})")
        elif kind in ("image", "audio"):
            raise invalid_params(f"{kind} content is not supported (promptCapabilities)")
        else:
            raise invalid_params(f"unknown content block type {kind!r}")
    return "\n\n".join(parts)


def _shown(uri: str, root: Path) -> str:
    """A file URI as a path relative to the workspace when it is inside it."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = Path(unquote(parsed.path))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# -- session/update -----------------------------------------------------------------------
def message_chunk(text: str) -> dict[str, Any]:
    return {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}


def text_content(text: str) -> dict[str, Any]:
    return {"type": "content", "content": {"type": "text", "text": text}}


def diff_content(path: Path, old: str | None, new: str) -> dict[str, Any]:
    return {"type": "diff", "path": str(path), "oldText": old, "newText": new}


def title_of(label: str, name: str) -> str:
    return label.rstrip("…").strip() or name


def raw_input(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments


def tool_call(call_id: str, title: str, kind: str, locations: Sequence[Mapping[str, Any]],
              arguments: str, content: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    return {"sessionUpdate": "tool_call", "toolCallId": call_id, "title": title,
            "kind": TOOL_KINDS.get(kind, "other"), "status": "pending",
            "locations": list(locations), "rawInput": raw_input(arguments),
            "content": list(content)}


def tool_call_update(call_id: str, status: str, *,
                     content: Sequence[Mapping[str, Any]] | None = None,
                     raw_output: Any = None) -> dict[str, Any]:
    update: dict[str, Any] = {"sessionUpdate": "tool_call_update", "toolCallId": call_id,
                              "status": status}
    if content is not None:
        update["content"] = list(content)
    if raw_output is not None:
        update["rawOutput"] = raw_output
    return update


def permission_options(titles: Sequence[str]) -> list[dict[str, Any]]:
    """Allow once / allow always / reject, named as the loop names its answers."""
    allow, always, deny = [*titles, "Allow", "Allow for this session", "Deny"][:3]
    return [{"optionId": ALLOW_ONCE, "name": allow, "kind": PERMISSION_KINDS[ALLOW_ONCE]},
            {"optionId": ALLOW_ALWAYS, "name": always.replace("conversation", "session"),
             "kind": PERMISSION_KINDS[ALLOW_ALWAYS]},
            {"optionId": REJECT, "name": deny, "kind": PERMISSION_KINDS[REJECT]}]


def chosen_option(result: Any) -> str | None:
    """The option a request_permission reply selected; None when cancelled or odd."""
    outcome = result.get("outcome") if isinstance(result, Mapping) else None
    if not isinstance(outcome, Mapping) or outcome.get("outcome") != "selected":
        return None
    option = outcome.get("optionId")
    return option if isinstance(option, str) else None


def usage_json(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"inputTokens": prompt_tokens, "outputTokens": completion_tokens,
            "totalTokens": prompt_tokens + completion_tokens}


def mcp_servers(given: Any) -> dict[str, McpServerSetting]:
    """The client's ``mcpServers`` (ACP's shape: ``env`` and ``headers`` as lists of
    ``{name, value}``) as lspilot's settings; ValueError names what is wrong."""
    if not isinstance(given, list):
        raise ValueError("must be a list")
    servers: dict[str, McpServerSetting] = {}
    for index, entry in enumerate(given):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"[{index}] must be an object with a name")
        kind = entry.get("type", "stdio")
        pairs = {"stdio": "env", "http": "headers"}.get(str(kind))
        if pairs is None:
            raise ValueError(f"{entry['name']}: type {kind!r} is not supported (stdio, http)")
        values = entry.get(pairs, [])
        if not isinstance(values, list) or not all(
                isinstance(v, dict) and isinstance(v.get("name"), str)
                and isinstance(v.get("value"), str) for v in values):
            raise ValueError(f"{entry['name']}.{pairs} must be a list of {{name, value}}")
        as_map = {v["name"]: v["value"] for v in values}
        raw: dict[str, Any] = ({"command": entry.get("command"), "args": entry.get("args", []),
                                "env": as_map} if kind == "stdio"
                               else {"url": entry.get("url"), "headers": as_map})
        servers.update(parse_value("mcpServers", {entry["name"]: raw}))
    return servers
