"""The agent's tools' pure parts: MCP tool names, argument checks, history fitting."""

from __future__ import annotations

import pytest

from lspilot.agent import prompt
from lspilot.agent.files import ToolError
from lspilot.agent.mcp_tools import tool_name
from lspilot.agent.tools import EditFile, ReadFile, RunCommand, check_arguments
from lspilot.llm.wire import ChatMessage, ToolCall


def test_mcp_tool_names_are_cut_to_64_characters_with_a_stable_suffix():
    assert tool_name("time", "get_current_time") == "mcp__time__get_current_time"
    assert tool_name("my.server", "do it") == "mcp__my_server__do_it"
    long = tool_name("server", "x" * 100)
    assert len(long) == 64 and long == tool_name("server", "x" * 100)
    assert long != tool_name("server", "x" * 99 + "y")


@pytest.mark.parametrize(("tool", "args", "message"), [
    (ReadFile(), [], "must be a JSON object"),
    (ReadFile(), {}, "missing path"),
    (ReadFile(), {"path": 3}, "'path' must be a string"),
    (ReadFile(), {"path": "a", "startLine": "1"}, "'startLine' must be a whole number"),
    (ReadFile(), {"path": "a", "start": 1}, "unknown argument 'start'"),
    (EditFile(), {"path": "a", "old": "x"}, "missing new"),
    (RunCommand(), {"argv": "ls -l"}, "'argv' must be a list of strings"),
    (RunCommand(), {"argv": ["ls", 1]}, "'argv' must be a list of strings"),
])
def test_arguments_that_do_not_fit_the_schema_say_what_is_off(tool, args, message):
    with pytest.raises(ToolError, match=message):
        check_arguments(tool, args)


def _exchange(n: int, result: str) -> list[ChatMessage]:
    call = ToolCall(f"c{n}", "read_file", '{"path": "a.py"}')
    return [ChatMessage("user", f"question {n}"),
            ChatMessage("assistant", None, tool_calls=(call,)),
            ChatMessage("tool", result, tool_call_id=f"c{n}"),
            ChatMessage("assistant", f"answer {n}")]


def test_old_tool_results_are_shortened_before_any_exchange_goes():
    history = [*_exchange(1, "x" * 5000), *_exchange(2, "y" * 5000), ChatMessage("user", "now")]
    fitted, dropped = prompt.fit(history, 4000)
    assert dropped == 0 and len(fitted) == len(history)
    assert fitted[2].content.endswith("(shortened)") and fitted[6].content.endswith("(shortened)")
    fitted, dropped = prompt.fit(history, 100)
    assert dropped == 2 and fitted == [ChatMessage("user", "now")]


def test_a_tool_call_never_loses_its_result():
    history = [*_exchange(1, "x" * 50), *_exchange(2, "y" * 50), ChatMessage("user", "now")]
    fitted, _ = prompt.fit(history, 200)
    ids = {c.id for m in fitted for c in m.tool_calls}
    assert ids == {m.tool_call_id for m in fitted if m.role == "tool"}
