"""A client nobody on the team wrote: the official Python SDK's ClientSideConnection
(PyPI ``agent-client-protocol``) drives ``lspilot acp`` through a prompt with a tool call
and a permission request. The SDK checks every message against its schema (pydantic
models generated from ACP's schema.json): an update that does not fit never reaches the
client's ``session_update``, a reply that does not fit fails the call."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.acp_client import API_KEY, settings_home
from tests.e2e.test_agent import tool_reply
from tests.fake_upstream import FakeUpstream, Reply

acp = pytest.importorskip("acp")
schema = pytest.importorskip("acp.schema")


class Editor:
    """The SDK's Client protocol: buffers for fs/*, a user who allows once."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.permissions: list[Any] = []
        self.buffers: dict[str, str] = {}
        self.writes: list[tuple[str, str]] = []

    async def request_permission(self, options: list[Any], session_id: str, tool_call: Any,
                                 **kwargs: Any) -> Any:
        self.permissions.append((tool_call, options))
        allow = next(o for o in options if o.kind == "allow_once")
        return schema.RequestPermissionResponse(
            outcome=schema.AllowedOutcome(outcome="selected", option_id=allow.option_id))

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def read_text_file(self, path: str, session_id: str, limit: int | None = None,
                             line: int | None = None, **kwargs: Any) -> Any:
        text = self.buffers.get(path)
        if text is None:
            text = Path(path).read_text(encoding="utf-8")
        return schema.ReadTextFileResponse(content=text)

    async def write_text_file(self, content: str, path: str, session_id: str,
                              **kwargs: Any) -> Any:
        self.writes.append((path, content))
        self.buffers[path] = content
        return schema.WriteTextFileResponse()

    def on_connect(self, conn: Any) -> None:
        pass


async def test_the_official_sdk_client_runs_a_turn_with_a_tool_and_a_permission(
        upstream: FakeUpstream, workspace: Path) -> None:
    util = workspace / "util.py"
    util.write_text("def add(a, b):\n    return a - b\n")
    upstream.enqueue(
        tool_reply(("read_file", {"path": "util.py"})),
        tool_reply(("edit_file", {"path": "util.py", "old": "a - b", "new": "a + b"})),
        Reply.stream(["Fixed ", "add."]))
    env = {"PATH": "/usr/bin:/bin", "LSPILOT_BASE_URL": upstream.base_url,
           "LSPILOT_API_KEY": API_KEY, **settings_home(workspace, {})}
    editor = Editor()
    async with acp.spawn_agent_process(editor, sys.executable, "-m", "lspilot", "acp",
                                       env=env) as (conn, _process):
        init = await conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=schema.ClientCapabilities(
                fs=schema.FileSystemCapabilities(read_text_file=True, write_text_file=True)),
            client_info=schema.Implementation(name="sdk-test", version="1"))
        assert init.protocol_version == 1 and init.auth_methods == []
        session = await conn.new_session(cwd=str(workspace), mcp_servers=[])
        assert session.modes is not None and session.modes.current_mode_id == "agent"
        answer = await conn.prompt(session_id=session.session_id,
                                   prompt=[acp.text_block("fix add in util.py")])
        assert answer.stop_reason == "end_turn"
        assert answer.usage is not None and answer.usage.total_tokens > 0

    kinds = [type(u).__name__ for u in editor.updates]
    assert kinds.count("ToolCallStart") == 2, kinds
    starts = [u for u in editor.updates if isinstance(u, schema.ToolCallStart)]
    assert [s.kind for s in starts] == ["read", "edit"]
    ends = [u for u in editor.updates if isinstance(u, schema.ToolCallProgress)
            and u.status == "completed"]
    diff = ends[-1].content[0]
    assert isinstance(diff, schema.FileEditToolCallContent)
    assert (diff.old_text, diff.new_text) == ("def add(a, b):\n    return a - b\n",
                                              "def add(a, b):\n    return a + b\n")
    text = "".join(u.content.text for u in editor.updates
                   if isinstance(u, schema.AgentMessageChunk))
    assert text == "Fixed add."
    assert any(isinstance(u, schema.UsageUpdate) for u in editor.updates)
    assert len(editor.permissions) == 1
    tool_call, options = editor.permissions[0]
    assert tool_call.tool_call_id == starts[1].tool_call_id
    assert {o.kind for o in options} == {"allow_once", "allow_always", "reject_once"}
    assert editor.writes == [(str(util), "def add(a, b):\n    return a + b\n")]
