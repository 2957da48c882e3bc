"""``ChatClient.stream_completion``: ``POST {baseUrl}/completions`` for fill-in-the-middle
models, with the chat stream's errors, retries, limits and time-outs. Real HTTP to the
fake upstream on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lspilot.llm import errors
from lspilot.llm.client import ChatClient, TextStream
from lspilot.llm.wire import CompletionRequest, Usage
from tests.fake_upstream import FakeUpstream, Reply
from tests.unit.test_client import endpoint


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    chat = ChatClient()
    yield chat
    await chat.aclose()


def fim(**params: Any) -> CompletionRequest:
    return CompletionRequest(model="fake-coder", prompt="def add(a, b):\n    return ",
                             suffix="\n\nprint(add(1, 2))\n", **params)


async def collect(stream: TextStream) -> list[str]:
    return [delta async for delta in stream]


async def failure(stream: TextStream) -> tuple[errors.UpstreamError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(errors.UpstreamError) as info:
        async for delta in stream:
            deltas.append(delta)
    return info.value, deltas


def text_event(text: str, finish: str | None = None) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "text": text,
                                               "finish_reason": finish}]}) + "\n\n"


async def test_streams_text_from_the_completions_path(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.completion_stream(["a", " + ", "b"]))
    stream = client.stream_completion(fim(), endpoint(upstream))
    assert await collect(stream) == ["a", " + ", "b"]
    assert stream.text == "a + b"
    assert stream.finish_reason == "stop"
    assert stream.usage == Usage(7, 3, 10)
    sent = upstream.requests[0]
    assert sent.method == "POST"
    assert sent.path == "/v1/completions"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json == {
        "model": "fake-coder",
        "prompt": "def add(a, b):\n    return ",
        "suffix": "\n\nprint(add(1, 2))\n",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_set_parameters_are_sent_and_unset_ones_omitted(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.completion_stream(["x"]))
    request = CompletionRequest(model="m", prompt="p", max_tokens=16, temperature=0.0,
                                top_p=1.0, stop=("\n\n",))
    await collect(client.stream_completion(request, endpoint(upstream)))
    body = upstream.requests[0].json
    assert body["max_tokens"] == 16
    assert body["temperature"] == 0.0
    assert body["top_p"] == 1.0
    assert body["stop"] == ["\n\n"]
    assert "suffix" not in body


async def test_a_whole_answer_to_a_stream_request_still_yields_its_text(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.text_completion(
        "a + b", finish_reason="length",
        usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}))
    stream = client.stream_completion(fim(), endpoint(upstream))
    assert await collect(stream) == ["a + b"]
    assert stream.finish_reason == "length"
    assert stream.usage == Usage(5, 3, 8)
    assert upstream.requests[0].json["suffix"] == "\n\nprint(add(1, 2))\n"


async def test_a_chunk_in_an_odd_shape_goes_the_typed_way(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([
        text_event("a"),
        # Two choices (only the first counts), and usage alongside text.
        'data: {"choices": [{"text": "b"}, {"text": "ignored"}]}\n\n',
        'data: {"choices": [{"text": "c", "finish_reason": "stop"}], '
        '"usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}\n\n',
        "data: [DONE]\n\n",
    ]))
    stream = client.stream_completion(fim(), endpoint(upstream))
    assert "".join(await collect(stream)) == "abc"
    assert stream.finish_reason == "stop"
    assert stream.usage == Usage(1, 3, 4)


async def test_429_is_retried(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.error(429, "slow down"), Reply.completion_stream(["ok"]))
    retries: list[tuple[str, int]] = []
    stream = client.stream_completion(fim(), endpoint(upstream),
                                      on_retry=lambda e, delay, n: retries.append((e.kind, n)))
    assert await collect(stream) == ["ok"]
    assert retries == [("rate_limit", 1)]
    assert len(upstream.requests) == 2
    assert all(r.path == "/v1/completions" for r in upstream.requests)
    assert upstream.requests[0].json == upstream.requests[1].json


async def test_passing_failures_give_up_after_max_retries(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(*(Reply.error(503, f"busy {i}") for i in range(3)))
    error, _ = await failure(client.stream_completion(fim(), endpoint(upstream, max_retries=2)))
    assert isinstance(error, errors.ServerFailed)
    assert "busy 2" in str(error) and "gave up after 3 attempts" in str(error)
    assert len(upstream.requests) == 3


async def test_refused_stream_options_is_sent_again_without_it(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(400, "Unrecognized request argument supplied: stream_options"),
                     Reply.completion_stream(["ok"], usage=False))
    ep = endpoint(upstream)
    stream = client.stream_completion(fim(), ep)
    assert await collect(stream) == ["ok"]
    assert stream.usage is None
    assert "stream_options" not in upstream.requests[1].json
    await collect(client.stream_completion(fim(), ep))  # remembered for the next request
    assert "stream_options" not in upstream.requests[2].json


async def test_statuses_are_typed_as_for_chat(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(404, "no such model"))
    error, _ = await failure(client.stream_completion(fim(), endpoint(upstream, max_retries=3)))
    assert isinstance(error, errors.NotFound)
    assert "no such model" in str(error)
    assert len(upstream.requests) == 1


async def test_cut_after_text_is_stream_broken_with_partial_text(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.completion_stream(["one ", "two ", "three"], cut_after=2))
    error, deltas = await failure(client.stream_completion(fim(), endpoint(upstream)))
    assert isinstance(error, errors.StreamBroken)
    assert deltas == ["one ", "two "]
    assert error.partial_text == "one two "
    assert len(upstream.requests) == 1


async def test_error_event_mid_stream(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.sse([text_event("a"), 'data: {"error": {"message": "overloaded"}}\n\n']))
    error, deltas = await failure(client.stream_completion(fim(), endpoint(upstream)))
    assert isinstance(error, errors.StreamBroken)
    assert "overloaded" in str(error)
    assert deltas == ["a"]


async def test_max_response_chars(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.completion_stream(["12345", "67890", "abcde"]))
    error, deltas = await failure(
        client.stream_completion(fim(), endpoint(upstream, max_response_chars=8)))
    assert isinstance(error, errors.ResponseTooLarge)
    assert deltas == ["12345"]


async def test_idle_timeout_after_text(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.completion_stream(["before", "never"], hang_after=1))
    started = time.monotonic()
    error, deltas = await failure(
        client.stream_completion(fim(), endpoint(upstream, idle_timeout=0.3)))
    assert isinstance(error, errors.TimedOut)
    assert deltas == ["before"]
    assert time.monotonic() - started < 1.5


async def test_a_web_page_names_the_completions_api(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.body("<html><body>login</body></html>"))
    error, _ = await failure(client.stream_completion(fim(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert "not the Completions API" in str(error)
    assert "baseUrl" in str(error)


async def test_a_chat_answer_is_not_a_completion_without_choices_text(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # A server that routed the request to chat: no text field, no text.
    upstream.enqueue(Reply.json({"choices": []}))
    error, _ = await failure(client.stream_completion(fim(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert "without any choices" in str(error)
