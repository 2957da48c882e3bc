"""Tool calls without a network: assembling streamed pieces, the prompt tool format, and
the wire JSON of tools, calls and tool messages."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lspilot.llm import prompt_tools
from lspilot.llm.events import ToolCallDelta
from lspilot.llm.prompt_tools import ToolCallParser
from lspilot.llm.toolcalls import ToolCallAssembler, finish_reason
from lspilot.llm.wire import (
    ChatMessage,
    ChatRequest,
    ToolCall,
    ToolCallChunk,
    ToolSpec,
    parse_chunk,
    request_json,
)

ARGS = '{"path": "src/ü.py", "startLine": 1, "note": "\\"quoted\\" ✓"}'
OTHER = '{"pattern": "def main", "glob": "*.py"}'


def piece(index: int | None = None, id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> ToolCallChunk:
    return ToolCallChunk(index, id, name, arguments)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(max(c, 0), len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def assemble(pieces: list[ToolCallChunk]) -> tuple[ToolCall, ...]:
    assembler = ToolCallAssembler()
    for p in pieces:
        assembler.feed([p])
    return assembler.calls()


# -- assembly ------------------------------------------------------------------------------
@settings(max_examples=300)
@given(st.lists(st.integers(0, len(ARGS)), max_size=40),
       st.lists(st.integers(0, len(OTHER)), max_size=20),
       st.booleans(), st.booleans())
def test_any_split_of_the_arguments_assembles_the_same_calls(
    cuts: list[int], other_cuts: list[int], later_index: bool, later_id: bool
) -> None:
    pieces = [piece(0, "call_a", "read_file", "")]
    pieces += [piece(0 if later_index else None, "call_a" if later_id else None, None, part)
               for part in split(ARGS, cuts)]
    pieces += [piece(1, "call_b", "search", "")]
    pieces += [piece(1 if later_index else None, "call_b" if later_id else None, None, part)
               for part in split(OTHER, other_cuts)]
    assert assemble(pieces) == (ToolCall("call_a", "read_file", ARGS),
                                ToolCall("call_b", "search", OTHER))


@given(st.binary(min_size=0, max_size=200), st.lists(st.integers(0, 200), max_size=30))
def test_arguments_split_at_any_byte_assemble_once_decoded(
    data: bytes, cuts: list[int]
) -> None:
    # A server that splits inside a UTF-8 sequence sends escaped text; the stream's SSE
    # decoder sees whole events. What reaches the assembler is text, joined as it came.
    text = data.decode("utf-8", errors="replace")
    pieces = [piece(0, "c", "f", part) for part in split(text, cuts)]
    assert assemble(pieces) == (ToolCall("c", "f", text),)


def test_pieces_without_id_or_index_go_to_the_last_call() -> None:
    calls = assemble([
        piece(None, "x1", "read_file", '{"pa'),
        piece(None, None, None, 'th": "a"}'),
        piece(None, "x2", "search", '{"pattern"'),
        piece(None, None, None, ': "b"}'),
    ])
    assert calls == (ToolCall("x1", "read_file", '{"path": "a"}'),
                     ToolCall("x2", "search", '{"pattern": "b"}'))


def test_an_id_without_index_finds_its_call() -> None:
    calls = assemble([
        piece(0, "x1", "a", "{"), piece(1, "x2", "b", "["),
        piece(None, "x1", None, "}"), piece(None, "x2", None, "]"),
    ])
    assert calls == (ToolCall("x1", "a", "{}"), ToolCall("x2", "b", "[]"))


def test_a_reused_index_with_a_new_id_is_a_new_call() -> None:
    # Servers that number every call 0 but give each its own id.
    calls = assemble([piece(0, "x1", "a", "{}"), piece(0, "x2", "b", "{}")])
    assert calls == (ToolCall("x1", "a", "{}"), ToolCall("x2", "b", "{}"))


def test_a_call_begun_without_index_keeps_its_pieces_that_name_one() -> None:
    calls = assemble([piece(None, "x1", "a", "{"), piece(0, None, None, "}")])
    assert calls == (ToolCall("x1", "a", "{}"),)


def test_calls_without_ids_get_stable_ones() -> None:
    pieces = [piece(0, None, "a", "{}"), piece(1, None, "b", "{}")]
    assert [c.id for c in assemble(pieces)] == ["call_0", "call_1"]
    assert assemble(pieces) == assemble(pieces)


def test_an_id_arriving_late_is_kept() -> None:
    assert assemble([piece(0, None, "a", "{"), piece(0, "late", None, "}")]) == (
        ToolCall("late", "a", "{}"),)


def test_events_are_numbered_by_position_and_carry_the_name_once() -> None:
    assembler = ToolCallAssembler()
    events = assembler.feed([piece(3, "x", "a", ""), piece(3, None, "a", "{}")])
    events += assembler.feed([piece(7, "y", "b", "[")])
    assert events == [ToolCallDelta(0, "x", "a", ""), ToolCallDelta(0, None, None, "{}"),
                      ToolCallDelta(1, "y", "b", "[")]


def test_finish_reason_says_tool_calls_when_there_are_calls() -> None:
    assert finish_reason("stop", True) == "tool_calls"
    assert finish_reason("tool_calls", True) == "tool_calls"
    assert finish_reason("function_call", True) == "tool_calls"
    assert finish_reason("length", True) == "length"  # cut short: the caller must know
    assert finish_reason("stop", False) == "stop"


def test_a_chunk_with_tool_calls_is_read_leniently() -> None:
    chunk = parse_chunk({"choices": [{"delta": {"tool_calls": [
        {"index": "1", "id": "a", "function": {"name": "f", "arguments": {"x": 1}}},
        {"function": {"arguments": "more"}},
    ]}}]})
    assert chunk.choices[0].delta.tool_calls == (
        piece(1, "a", "f", '{"x": 1}'), piece(None, None, None, "more"))


# -- the wire ------------------------------------------------------------------------------
def test_a_request_with_tools_and_a_tool_exchange() -> None:
    tool = ToolSpec("read_file", "Read a file.", {"type": "object", "properties": {}})
    request = ChatRequest(
        model="m",
        messages=(ChatMessage("user", "hi"),
                  ChatMessage("assistant", None, tool_calls=(ToolCall("c1", "read_file", "{}"),)),
                  ChatMessage("tool", "text", tool_call_id="c1")),
        tools=(tool,), tool_choice="auto", parallel_tool_calls=False, tool_format="prompt")
    assert request_json(request) == {
        "model": "m", "stream": True,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "read_file", "arguments": "{}"}}]},
            {"role": "tool", "content": "text", "tool_call_id": "c1"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "read_file", "description": "Read a file.",
            "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }


def test_unset_tool_parameters_are_left_out() -> None:
    data = request_json(ChatRequest(model="m", messages=(ChatMessage("user", "hi"),)))
    assert data == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                    "stream": True}


def test_a_tool_choice_naming_a_tool_forces_it() -> None:
    data = request_json(ChatRequest(model="m", messages=(), tool_choice="search"))
    assert data["tool_choice"] == {"type": "function", "function": {"name": "search"}}


# -- the prompt format ----------------------------------------------------------------------
TOOL = ToolSpec("read_file", "Read a file.", {"type": "object",
                                              "properties": {"path": {"type": "string"}}})


def test_prepare_puts_the_tools_in_the_system_prompt_and_the_exchange_in_text() -> None:
    request = ChatRequest(model="m", tools=(TOOL,), tool_choice="auto",
                          parallel_tool_calls=True, tool_format="prompt", messages=(
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Read a.py"),
        ChatMessage("assistant", "Reading.", tool_calls=(
            ToolCall("c1", "read_file", '{"path": "a.py"}'),
            ToolCall("c2", "read_file", "not json"))),
        ChatMessage("tool", "print(1)", tool_call_id="c1"),
        ChatMessage("tool", "error", tool_call_id="c2"),
    ))
    plain = prompt_tools.prepare(request)
    data = request_json(plain)
    assert "tools" not in data and "tool_choice" not in data
    assert "parallel_tool_calls" not in data
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    system = data["messages"][0]["content"]
    assert system.startswith("Be brief.\n\n# Tools")
    assert json.dumps({"type": "function", "function": {
        "name": TOOL.name, "description": TOOL.description,
        "parameters": TOOL.parameters}}) in system
    assert data["messages"][2]["content"] == (
        'Reading.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n'
        '</tool_call>\n<tool_call>\n{"name": "read_file", "arguments": "not json"}\n'
        "</tool_call>")
    assert data["messages"][3]["content"] == (
        "<tool_response>\nprint(1)\n</tool_response>\n<tool_response>\nerror\n"
        "</tool_response>")


def test_prepare_without_a_system_message_adds_one() -> None:
    plain = prompt_tools.prepare(ChatRequest(model="m", tools=(TOOL,),
                                             messages=(ChatMessage("user", "hi"),)))
    assert [m.role for m in plain.messages] == ["system", "user"]
    none = prompt_tools.prepare(ChatRequest(model="m", tools=(TOOL,), tool_choice="none",
                                            messages=(ChatMessage("user", "hi"),)))
    assert [m.role for m in none.messages] == ["user"]


ANSWER = (
    "I will read both. <b>ok</b> a < b\n"
    '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>\n'
    '<tool_call>{"name": "search", "arguments": {"pattern": "x"}}</tool_call>\n'
    '<tool_call>\n{"name": "read_file", "arguments": {"path": }\n</tool_call>\n'
    "Then I answer. <tool_"
)


def parse(parts: list[str]) -> tuple[str, list[ToolCallChunk]]:
    parser = ToolCallParser()
    out: list[Any] = []
    for part in parts:
        out += parser.feed(part)
    out += parser.close()
    assert all(item for item in out if isinstance(item, str))  # no empty text
    return ("".join(p for p in out if isinstance(p, str)),
            [p for p in out if isinstance(p, ToolCallChunk)])


@settings(max_examples=300)
@given(st.lists(st.integers(0, len(ANSWER)), max_size=60))
def test_the_prompt_format_reads_the_same_at_any_split(cuts: list[int]) -> None:
    text, calls = parse(split(ANSWER, cuts))
    assert text == "I will read both. <b>ok</b> a < b\nThen I answer. <tool_"
    assert calls == [
        piece(0, "call_0", "read_file", '{"path": "a.py"}'),
        piece(1, "call_1", "search", '{"pattern": "x"}'),
        # Not JSON: the name as far as it can be read, the raw text as the arguments.
        piece(2, "call_2", "read_file", '{"name": "read_file", "arguments": {"path": }'),
    ]


def test_no_markup_is_shown_before_a_tag_completes() -> None:
    parser = ToolCallParser()
    assert parser.feed("Sure. <tool") == ["Sure. "]
    assert parser.feed("_ca") == []
    assert parser.feed('ll>{"name": "f", "argu') == []
    assert parser.feed('ments": {}}</tool_call>') == [piece(0, "call_0", "f", "{}")]


def test_a_call_cut_off_by_the_end_of_the_answer_still_counts() -> None:
    _, calls = parse(['<tool_call>{"name": "f", "arguments": {"a": 1}}'])
    assert calls == [piece(0, "call_0", "f", '{"a": 1}')]


def test_a_fenced_call_and_parameters_instead_of_arguments() -> None:
    _, calls = parse(['<tool_call>```json\n{"name": "f", "parameters": {"a": 1}}\n```'
                      "</tool_call>"])
    assert calls == [piece(0, "call_0", "f", '{"a": 1}')]


# -- calls written without the tags (small models) ------------------------------------------
NAMES = ("read_file", "search")
FENCED = ('```json\n{\n  "name": "read_file",\n  "arguments": {\n    "path": "src/util.py"\n'
          "  }\n}\n```\nI will read it.")


def parse_bare(parts: list[str]) -> tuple[str, list[ToolCallChunk]]:
    parser = ToolCallParser(NAMES)
    out: list[Any] = []
    for part in parts:
        out += parser.feed(part)
    out += parser.close()
    return ("".join(p for p in out if isinstance(p, str)),
            [p for p in out if isinstance(p, ToolCallChunk)])


@given(st.lists(st.integers(0, len(FENCED)), max_size=30))
def test_a_fenced_call_without_tags_at_any_split(cuts: list[int]) -> None:
    text, calls = parse_bare(split(FENCED, cuts))
    assert calls == [piece(0, "call_0", "read_file", '{"path": "src/util.py"}')]
    assert text == "I will read it."


@given(st.lists(st.integers(0, 80), max_size=20))
def test_a_bare_object_call_at_any_split(cuts: list[int]) -> None:
    answer = '  {"name": "search", "arguments": {"pattern": "TODO"}}'
    text, calls = parse_bare(split(answer, cuts))
    assert calls == [piece(0, "call_0", "search", '{"pattern": "TODO"}')] and text == ""


@settings(max_examples=50)
@given(st.sampled_from([
    '```json\n{"name": "README.md", "arguments": {}}\n```',  # not an offered tool
    '```json\n{"name": "search"}\n```',  # no arguments: just JSON about a tool
    "```python\nprint(1)\n```",
    '{"a": 1} is an object',
    "{not json",
    "`x` is code",
    "Plain words.",
    'Say {"name": "search", "arguments": {}} later: only the start counts',
]), st.lists(st.integers(0, 80), max_size=10))
def test_anything_else_is_text_unchanged(answer: str, cuts: list[int]) -> None:
    assert parse_bare(split(answer, cuts)) == (answer, [])


def test_without_tool_names_a_fenced_call_is_text() -> None:
    assert parse([FENCED]) == (FENCED, [])
