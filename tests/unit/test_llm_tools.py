"""Tool calls through the real client: httpx to the fake upstream on 127.0.0.1, SSE
tool-call deltas as servers send them, typed events, assembly, retries, the prompt
format. No mocks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lspilot.llm import errors
from lspilot.llm.client import ChatClient
from lspilot.llm.events import Finish, StreamEvent, TextDelta, ToolCallDelta
from lspilot.llm.stream import TextStream
from lspilot.llm.wire import ChatMessage, ChatRequest, ToolCall, ToolSpec, Usage
from tests.fake_upstream import FakeUpstream, Reply, tool_call_deltas
from tests.unit.test_client import endpoint
from tests.unit.test_client import request as plain_request

TOOL = ToolSpec("read_file", "Read a file.",
                {"type": "object", "properties": {"path": {"type": "string"}}})
ARGS = json.dumps({"path": "src/ünï.py", "note": "x" * 300 + " ✓ \"q\""}, ensure_ascii=False)


def request(**params: Any) -> ChatRequest:
    return attrs.evolve(plain_request(), **params)


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    chat = ChatClient()
    yield chat
    await chat.aclose()


async def events_of(stream: TextStream) -> list[StreamEvent]:
    async with stream:
        return [event async for event in stream.events()]


def merged(events: list[StreamEvent]) -> list[StreamEvent]:
    """Adjacent text joined: how text is batched depends on the network reads."""
    out: list[StreamEvent] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text)
        else:
            out.append(event)
    return out


def calls_in(events: list[StreamEvent]) -> dict[int, tuple[str | None, str, str]]:
    """The calls the events alone describe (a consumer that does not use tool_calls)."""
    built: dict[int, list[Any]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            call = built.setdefault(event.index, [None, "", ""])
            call[0] = call[0] or event.id
            call[1] += event.name or ""
            call[2] += event.arguments
    return {i: (c[0], c[1], c[2]) for i, c in built.items()}


async def test_a_streamed_call_comes_out_as_events_and_whole(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    deltas = [{"content": "Let me "}, {"content": "look."},
              *tool_call_deltas("read_file", ARGS, id="call_Ab1", pieces=40)]
    upstream.enqueue(Reply.deltas(deltas, finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,), tool_choice="auto"), endpoint(upstream))
    events = merged(await events_of(stream))
    assert events[0] == TextDelta("Let me look.")
    assert isinstance(events[1], ToolCallDelta)
    assert events[1].name == "read_file" and events[1].id == "call_Ab1"
    assert calls_in(events) == {0: ("call_Ab1", "read_file", ARGS)}
    assert events[-1] == Finish("tool_calls", Usage(11, len(deltas), 11 + len(deltas)))
    assert stream.tool_calls == (ToolCall("call_Ab1", "read_file", ARGS),)
    assert stream.text == "Let me look."
    sent = upstream.requests[0].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "read_file", "description": "Read a file.", "parameters": TOOL.parameters}}]
    assert sent["tool_choice"] == "auto"
    assert "parallel_tool_calls" not in sent and "tool_format" not in sent


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 40), st.integers(1, 60), st.booleans(), st.booleans())
async def test_several_calls_split_anywhere_on_the_wire(
    upstream: FakeUpstream, split_bytes: int, pieces: int, later_index: bool, later_id: bool
) -> None:
    other = '{"pattern": "dëf", "glob": "*.py"}'
    upstream.enqueue(Reply.deltas(
        [*tool_call_deltas("read_file", ARGS, index=0, id="a", pieces=pieces,
                           later_index=later_index, later_id=later_id),
         *tool_call_deltas("search", other, index=1, id="b", pieces=pieces,
                           later_index=later_index, later_id=later_id)],
        finish_reason="tool_calls", split_bytes=split_bytes))
    client = ChatClient()
    try:
        stream = client.stream(request(tools=(TOOL,)), endpoint(upstream))
        async with stream:
            texts = [text async for text in stream]  # the text-only way assembles too
    finally:
        await client.aclose()
    assert texts == []
    assert stream.tool_calls == (ToolCall("a", "read_file", ARGS),
                                 ToolCall("b", "search", other))
    assert stream.finish_reason == "tool_calls"


async def test_missing_ids_and_indexes_later_and_a_server_that_says_stop(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(
        [*tool_call_deltas("read_file", '{"path": "a.py"}', index=None, id="x1", pieces=5),
         *tool_call_deltas("read_file", '{"path": "b.py"}', index=None, id="x2", pieces=5)],
        finish_reason="stop"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream))
    events = await events_of(stream)
    assert stream.tool_calls == (ToolCall("x1", "read_file", '{"path": "a.py"}'),
                                 ToolCall("x2", "read_file", '{"path": "b.py"}'))
    assert stream.finish_reason == "tool_calls"
    assert isinstance(events[-1], Finish) and events[-1].reason == "tool_calls"


async def test_calls_without_ids_get_generated_ones(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(
        [*tool_call_deltas("a", "{}", index=0, id=None),
         *tool_call_deltas("b", "{}", index=1, id=None)], finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream))
    async with stream:
        async for _ in stream:
            pass
    assert [c.id for c in stream.tool_calls] == ["call_0", "call_1"]


async def test_text_and_a_call_in_one_delta_keep_their_order(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # The fast path must not take a delta with tool calls for plain text.
    upstream.enqueue(Reply.deltas(
        [{"content": "Before. "},
         {"content": "Now: ", "tool_calls": [
             {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]},
         {"content": "After."}], finish_reason="tool_calls"))
    events = merged(await events_of(client.stream(request(tools=(TOOL,)), endpoint(upstream))))
    assert events == [TextDelta("Before. Now: "), ToolCallDelta(0, "c", "f", "{}"),
                          TextDelta("After."), Finish("tool_calls", Usage(11, 3, 14))]


async def test_a_whole_answer_with_calls(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.tool_answer([("c1", "read_file", '{"path": "a"}'),
                                        ("c2", "search", "{}")], finish_reason="stop"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream))
    events = await events_of(stream)
    assert events == [ToolCallDelta(0, "c1", "read_file", '{"path": "a"}'),
                      ToolCallDelta(1, "c2", "search", "{}"), Finish("tool_calls", None)]
    assert stream.tool_calls == (ToolCall("c1", "read_file", '{"path": "a"}'),
                                 ToolCall("c2", "search", "{}"))


async def test_complete_reads_a_non_streamed_tool_answer_too(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(tool_call_deltas("f", '{"a": 1}', id="k"),
                                  finish_reason="tool_calls"))
    text, _ = await client.complete(request(tools=(TOOL,)), endpoint(upstream))
    assert text == ""
    assert upstream.requests[0].json["stream"] is False


async def test_no_retry_once_a_call_was_handed_on(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # Cut after the role chunk and two tool deltas: a retry could assemble them twice.
    upstream.enqueue(Reply.deltas(tool_call_deltas("f", '{"a": 1}', pieces=4),
                                  cut_after=3, finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream, max_retries=3))
    with pytest.raises(errors.UpstreamError):
        await events_of(stream)
    assert len(upstream.requests) == 1


async def test_a_cut_before_anything_is_still_retried(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(tool_call_deltas("f", "{}"), role_chunk=False, cut_after=0),
                     Reply.deltas(tool_call_deltas("f", "{}", id="ok"),
                                  finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream, max_retries=2))
    await events_of(stream)
    assert stream.tool_calls == (ToolCall("ok", "f", "{}"),)
    assert len(upstream.requests) == 2


async def test_tool_arguments_count_towards_the_size_limit(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(tool_call_deltas("f", "x" * 500, pieces=10),
                                  finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,)),
                           endpoint(upstream, max_response_chars=200))
    with pytest.raises(errors.ResponseTooLarge):
        await events_of(stream)


async def test_abandoning_events_drops_the_connection(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    import asyncio

    upstream.enqueue(Reply.deltas(tool_call_deltas("f", "x" * 400, pieces=200), delay=0.05,
                                  finish_reason="tool_calls"))
    stream = client.stream(request(tools=(TOOL,)), endpoint(upstream))
    events = stream.events()
    async for event in events:
        if isinstance(event, ToolCallDelta) and event.arguments:
            break
    await events.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(upstream.requests[0].client_closed.wait, 2)
    with pytest.raises(RuntimeError, match="once"):
        stream.events()


async def test_parallel_tool_calls_is_sent_only_when_chosen(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    for choice in (False, True):
        async with client.stream(request(tools=(TOOL,), parallel_tool_calls=choice),
                                 endpoint(upstream)) as stream:
            async for _ in stream:
                pass
    assert [r.json["parallel_tool_calls"] for r in upstream.requests] == [False, True]


async def test_plain_text_streams_as_before(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.stream(["Hello", " world"]))
    stream = client.stream(request(), endpoint(upstream))
    events = merged(await events_of(stream))
    assert events == [TextDelta("Hello world"), Finish("stop", Usage(11, 2, 13))]
    assert stream.tool_calls == ()
    assert stream.finish_reason == "stop"


# -- the prompt format through the same stream -------------------------------------------
PROMPT_ANSWER = ('Reading it.\n<tool_call>\n{"name": "read_file", "arguments": '
                 '{"path": "a.py"}}\n</tool_call>\n<tool_call>\n{"name": "read_file", '
                 '"arguments": {"path": "b.py"}}\n</tool_call>')


@pytest.mark.parametrize("size", [1, 3, 7, 50])
async def test_the_prompt_format_gives_the_same_events(
    upstream: FakeUpstream, client: ChatClient, size: int
) -> None:
    chunks = [PROMPT_ANSWER[i:i + size] for i in range(0, len(PROMPT_ANSWER), size)]
    upstream.enqueue(Reply.stream(chunks, finish_reason="stop"))
    conversation = (
        ChatMessage("user", "Read a.py and b.py"),
        ChatMessage("assistant", None, tool_calls=(ToolCall("c0", "list_files", "{}"),)),
        ChatMessage("tool", "a.py\nb.py", tool_call_id="c0"),
    )
    stream = client.stream(request(messages=conversation, tools=(TOOL,),
                                   tool_format="prompt"), endpoint(upstream))
    events = await events_of(stream)
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "Reading it.\n"
    assert "<" not in shown
    assert stream.text == "Reading it.\n"
    assert stream.tool_calls == (ToolCall("call_0", "read_file", '{"path": "a.py"}'),
                                 ToolCall("call_1", "read_file", '{"path": "b.py"}'))
    assert events[-1] == Finish("tool_calls", Usage(11, len(chunks), 11 + len(chunks)))
    sent = upstream.requests[0].json
    assert "tools" not in sent and "tool_choice" not in sent
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert "<tools>" in sent["messages"][0]["content"]
    assert all("tool_call_id" not in m and "tool_calls" not in m for m in sent["messages"])


async def test_the_prompt_format_text_only_hides_the_markup(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(list(PROMPT_ANSWER), finish_reason="stop"))
    stream = client.stream(request(tools=(TOOL,), tool_format="prompt"), endpoint(upstream))
    async with stream:
        texts = [text async for text in stream]
    assert "".join(texts) == "Reading it.\n"
    assert len(stream.tool_calls) == 2


async def test_the_prompt_format_on_a_whole_answer(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream([PROMPT_ANSWER], finish_reason="stop"))
    text, _ = await client.complete(request(tools=(TOOL,), tool_format="prompt"),
                                    endpoint(upstream))
    assert text == "Reading it.\n"


async def test_whole_asks_for_one_piece_and_gives_the_calls(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.deltas(tool_call_deltas("f", '{"a": 1}', id="k", pieces=3),
                                  finish_reason="tool_calls"))
    stream = client.whole(request(tools=(TOOL,)), endpoint(upstream))
    events = await events_of(stream)
    assert upstream.requests[0].json["stream"] is False
    assert "stream_options" not in upstream.requests[0].json
    assert events == [ToolCallDelta(0, "k", "f", '{"a": 1}'),
                      Finish("tool_calls", Usage(11, 4, 15))]
