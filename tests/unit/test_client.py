"""The chat client through real HTTP to the fake upstream on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lspilot.keys import resolve_key_command
from lspilot.llm import errors
from lspilot.llm.client import ChatClient, Endpoint, TextStream
from lspilot.llm.wire import ChatMessage, ChatRequest, Usage
from tests.fake_upstream import FakeUpstream, Reply

KEY = "sk-test-SECRET-a1b2c3d4e5f6"


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    chat = ChatClient()
    yield chat
    await chat.aclose()


def endpoint(upstream: FakeUpstream | str, **changes: Any) -> Endpoint:
    base_url = upstream if isinstance(upstream, str) else upstream.base_url
    options: dict[str, Any] = {
        "api_key": KEY,
        "retry_base_seconds": 0.01,
        "connect_timeout": 2.0,
        "idle_timeout": 5.0,
        **changes,
    }
    return Endpoint(base_url=base_url, **options)


def request(**params: Any) -> ChatRequest:
    return ChatRequest(model="fake-model", messages=(ChatMessage("user", "hi"),), **params)


async def collect(stream: TextStream) -> list[str]:
    return [delta async for delta in stream]


async def failure(stream: TextStream) -> tuple[errors.UpstreamError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(errors.UpstreamError) as info:
        async for delta in stream:
            deltas.append(delta)
    return info.value, deltas


def event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def content(text: str | None, finish: str | None = None, **delta: Any) -> str:
    return event({"choices": [{"index": 0, "delta": {"content": text, **delta},
                               "finish_reason": finish}]})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gaps(upstream: FakeUpstream) -> list[float]:
    times = [r.received_at for r in upstream.requests]
    return [b - a for a, b in itertools.pairwise(times)]


# -- streaming -----------------------------------------------------------------------------


async def test_streams_text_finish_reason_and_usage(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["Hel", "lo", " world"]))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["Hel", "lo", " world"]
    assert stream.text == "Hello world"
    assert stream.finish_reason == "stop"
    assert stream.usage == Usage(prompt_tokens=11, completion_tokens=3, total_tokens=14)
    assert len(upstream.requests) == 1


async def test_request_line_headers_and_body(upstream: FakeUpstream, client: ChatClient) -> None:
    await collect(client.stream(request(), endpoint(upstream)))
    sent = upstream.requests[0]
    assert sent.method == "POST"
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["content-type"] == "application/json"
    # Unset parameters are not sent at all: no "temperature": null.
    assert sent.json == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_set_parameters_are_sent_even_when_falsy(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    params = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 5, "stop": ("\n\n", "END")}
    await collect(client.stream(request(**params), endpoint(upstream)))
    body = upstream.requests[0].json
    assert body["temperature"] == 0.0
    assert body["top_p"] == 1.0
    assert body["max_tokens"] == 5
    assert body["stop"] == ["\n\n", "END"]
    assert "max_completion_tokens" not in body


async def test_trailing_slash_in_base_url(upstream: FakeUpstream, client: ChatClient) -> None:
    await collect(client.stream(request(), endpoint(upstream.base_url + "/")))
    assert upstream.requests[0].path == "/v1/chat/completions"


async def test_role_only_first_chunk_yields_nothing(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([
        content("", role="assistant"),
        event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        content("Hi"),
        content(None, "stop"),
        "data: [DONE]\n\n",
    ]))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["Hi"]
    assert stream.finish_reason == "stop"


async def test_empty_deltas_are_skipped(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.sse([
        content("a"),
        event({"choices": [{"index": 0, "delta": {}}]}),
        content(""),
        content(None),
        event({"choices": [{"index": 0}]}),
        content("b"),
        content(None, "stop"),
        "data: [DONE]\n\n",
    ]))
    assert await collect(client.stream(request(), endpoint(upstream))) == ["a", "b"]


async def test_usage_only_final_chunk_with_empty_choices_and_null_usage_before(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([
        event({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": None}),
        event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
        event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1,
                                        "total_tokens": 8,
                                        "prompt_tokens_details": {"cached_tokens": 0}}}),
        "data: [DONE]\n\n",
    ]))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["x"]
    assert stream.usage == Usage(7, 1, 8)


async def test_unknown_response_fields_are_ignored(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([
        event({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "system_fingerprint": "fp", "service_tier": "default", "obfuscation": "xx",
               "choices": [{"index": 0, "logprobs": None, "finish_reason": None,
                            "delta": {"content": "ok", "refusal": None, "reasoning": "hm",
                                      "tool_calls": None}}]}),
        content(None, "stop"),
        "data: [DONE]\n\n",
    ]))
    assert await collect(client.stream(request(), endpoint(upstream))) == ["ok"]


async def test_events_split_at_every_few_bytes_with_crlf(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    chunks = ["naïve ", "日本語 ", "🎉", " done"]
    upstream.enqueue(Reply.stream(chunks, line_end="\r\n", split_bytes=3))
    stream = client.stream(request(), endpoint(upstream))
    assert "".join(await collect(stream)) == "".join(chunks)
    assert stream.finish_reason == "stop"
    assert stream.usage is not None


async def test_keep_alive_comments_and_event_id_fields(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([
        ": keep-alive\n\n",
        "id: 1\nevent: message\n" + content("a"),
        ": PROCESSING\r\n\r\n",
        "id: 2\r\n" + content("b").replace("\n", "\r\n"),
        content(None, "stop"),
        "data: [DONE]\n\n",
    ]))
    assert await collect(client.stream(request(), endpoint(upstream))) == ["a", "b"]


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter", "tool_calls"])
async def test_finish_reasons(upstream: FakeUpstream, client: ChatClient, reason: str) -> None:
    upstream.enqueue(Reply.stream(["some text"], finish_reason=reason))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["some text"]
    assert stream.finish_reason == reason


# -- stream_options ------------------------------------------------------------------------


async def test_server_refusing_stream_options_gets_one_more_request_without_it(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(
        Reply.error(400, "Unrecognized request argument supplied: stream_options"),
        Reply.stream(["fine"], usage=False),
    )
    ep = endpoint(upstream)
    stream = client.stream(request(), ep)
    assert await collect(stream) == ["fine"]
    assert stream.usage is None
    assert len(upstream.requests) == 2
    assert upstream.requests[0].json["stream_options"] == {"include_usage": True}
    assert "stream_options" not in upstream.requests[1].json
    # Later requests to that server skip it from the start.
    assert await collect(client.stream(request(), ep)) == ["Hello from the fake upstream."]
    assert len(upstream.requests) == 3
    assert "stream_options" not in upstream.requests[2].json


async def test_server_refusing_stream_options_twice_is_a_bad_request(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(
        Reply.error(400, "stream_options: unknown field"),
        Reply.error(400, "stream_options: unknown field"),
    )
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.BadRequest)
    assert len(upstream.requests) == 2


async def test_retry_after_refused_stream_options_does_not_send_it_again(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(
        Reply.error(400, "Unrecognized request argument supplied: stream_options"),
        Reply.error(503, "busy"),
        Reply.stream(["ok"], usage=False),
    )
    assert await collect(client.stream(request(), endpoint(upstream))) == ["ok"]
    assert len(upstream.requests) == 3
    assert all("stream_options" not in r.json for r in upstream.requests[1:])


async def test_server_ignoring_stream_options_works_without_usage(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["a", "b"], usage=False))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["a", "b"]
    assert stream.usage is None
    assert stream.finish_reason == "stop"


async def test_max_tokens_refused_is_resent_as_max_completion_tokens(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(
        400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    ))
    assert await collect(client.stream(request(max_tokens=50), endpoint(upstream)))
    assert len(upstream.requests) == 2
    second = upstream.requests[1].json
    assert second["max_completion_tokens"] == 50
    assert "max_tokens" not in second


# -- how streams end -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["data", "event"])
async def test_error_event_mid_stream_is_stream_broken_with_partial_text(
    upstream: FakeUpstream, client: ChatClient, shape: str
) -> None:
    if shape == "data":
        error_event = event({"error": {"message": "The server had an error (overloaded)",
                                       "type": "server_error", "code": 500}})
    else:
        error_event = 'event: error\ndata: {"message": "The server had an error (overloaded)"}\n\n'
    upstream.enqueue(Reply.sse([content("partial "), content("text"), error_event,
                                content("never")]))
    error, deltas = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
    assert isinstance(error, errors.StreamBroken)
    assert error.kind == "stream"
    assert "overloaded" in str(error)
    assert error.partial_text == "partial text"
    assert deltas == ["partial ", "text"]
    assert len(upstream.requests) == 1  # never retried once text was handed on


async def test_end_without_done_after_finish_reason_is_fine(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["a", "b"], done=False))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["a", "b"]
    assert stream.finish_reason == "stop"
    assert stream.usage is not None


async def test_last_event_without_blank_line_still_counts(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([content("a"), content("b", "stop").rstrip("\n")]))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["a", "b"]
    assert stream.finish_reason == "stop"


async def test_done_without_finish_reason_is_fine(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["a"], finish_reason=None, usage=False))
    assert await collect(client.stream(request(), endpoint(upstream))) == ["a"]


async def test_end_without_done_or_finish_reason_is_ended_early(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["half ", "an answer"], finish_reason=None, usage=False,
                                  done=False))
    error, deltas = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.StreamBroken)
    assert "ended early" in str(error)
    assert error.partial_text == "half an answer"
    assert deltas == ["half ", "an answer"]
    assert len(upstream.requests) == 1


async def test_connection_cut_after_text_is_stream_broken_with_partial(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # Events: role, "one ", "two ", ... cut after "two ".
    upstream.enqueue(Reply.stream(["one ", "two ", "three"], cut_after=3))
    error, deltas = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
    assert isinstance(error, errors.StreamBroken)
    assert error.partial_text == "one two "
    assert deltas == ["one ", "two "]
    assert len(upstream.requests) == 1  # no retry: the text was already handed on


async def test_connection_cut_after_finish_reason_is_fine(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["a"], cut_after=3, usage=False))  # role, "a", finish
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["a"]
    assert stream.finish_reason == "stop"


async def test_connection_cut_before_any_text_is_retried(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["lost"], cut_after=1), Reply.stream(["kept"]))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["kept"]
    assert stream.text == "kept"
    assert len(upstream.requests) == 2


async def test_connection_closed_without_an_answer_is_retried(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.close(), Reply.stream(["second try"]))
    retries: list[tuple[str, int]] = []
    stream = client.stream(request(), endpoint(upstream),
                           on_retry=lambda e, delay, n: retries.append((e.kind, n)))
    assert await collect(stream) == ["second try"]
    assert len(upstream.requests) == 2
    assert retries == [("connection", 1)]


# -- statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, errors.BadRequest),
        (422, errors.BadRequest),
        (401, errors.AuthenticationFailed),
        (403, errors.AuthenticationFailed),
        (404, errors.NotFound),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    upstream: FakeUpstream, client: ChatClient, status: int, error_type: type
) -> None:
    upstream.enqueue(Reply.error(status, f"upstream says no ({status})"))
    error, deltas = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
    assert type(error) is error_type
    assert error.status == status
    assert f"upstream says no ({status})" in str(error)
    assert deltas == []
    await asyncio.sleep(0.05)  # a retry would have arrived by now
    assert len(upstream.requests) == 1


async def test_401_hint_names_the_setting_and_variable(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(401, "Incorrect API key provided."))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.AuthenticationFailed)
    assert error.kind == "authentication"
    assert "apiKey" in error.hint
    assert "LSPILOT_API_KEY" in error.hint
    assert "Incorrect API key provided." in str(error)


async def test_404_hint_mentions_model_and_base_url(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(404, "The model `nope` does not exist"))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.NotFound)
    assert "The model `nope` does not exist" in str(error)
    assert "model" in error.hint and "baseUrl" in error.hint


async def test_html_error_page_is_cut_to_its_text(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    page = ("<html><head><style>body{color:red}</style><title>404</title></head>"
            "<body><h1>Page   not found</h1></body></html>")
    upstream.enqueue(Reply.body(page, status=404))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.NotFound)
    assert "Page not found" in error.message
    assert "<" not in error.message and "color:red" not in error.message


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (408, errors.ServerFailed),
        (409, errors.ServerFailed),
        (429, errors.RateLimited),
        (500, errors.ServerFailed),
        (502, errors.ServerFailed),
        (503, errors.ServerFailed),
    ],
)
async def test_passing_failures_are_retried_up_to_max_retries(
    upstream: FakeUpstream, client: ChatClient, status: int, error_type: type
) -> None:
    # One more retry than allowed would reach the default reply and succeed.
    upstream.enqueue(*(Reply.error(status, f"try later {i}") for i in range(3)))
    error, deltas = await failure(client.stream(request(), endpoint(upstream, max_retries=2)))
    assert type(error) is error_type
    assert error.status == status
    assert "try later 2" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert deltas == []
    assert len(upstream.requests) == 3


async def test_retry_then_success(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.error(429, "slow down"), Reply.error(500, "oops"))
    retries: list[tuple[str, float, int]] = []
    stream = client.stream(request(), endpoint(upstream, max_retries=3),
                           on_retry=lambda e, delay, n: retries.append((e.kind, delay, n)))
    assert await collect(stream) == ["Hello from the fake upstream."]
    assert len(upstream.requests) == 3
    assert [(kind, n) for kind, _delay, n in retries] == [("rate_limit", 1), ("server_error", 2)]
    # Every attempt sends the same body.
    assert upstream.requests[0].json == upstream.requests[2].json


async def test_max_retries_zero_means_one_attempt(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(503, "down"))
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=0)))
    assert isinstance(error, errors.ServerFailed)
    assert len(upstream.requests) == 1


async def test_backoff_roughly_doubles(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(*(Reply.error(503, "busy") for _ in range(4)))
    error, _ = await failure(
        client.stream(request(), endpoint(upstream, max_retries=3, retry_base_seconds=0.1))
    )
    assert isinstance(error, errors.ServerFailed)
    assert len(upstream.requests) == 4
    observed = gaps(upstream)
    # base * 2**attempt with jitter 0.8-1.2; the upper bound leaves room for a slow machine.
    for gap, expected in zip(observed, [0.1, 0.2, 0.4], strict=True):
        assert 0.8 * expected - 0.005 <= gap <= 1.2 * expected + 0.1, observed


async def test_retry_after_seconds_is_honoured(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(429, "rate limited", headers={"retry-after": "1"}))
    delays: list[float] = []
    stream = client.stream(request(), endpoint(upstream),
                           on_retry=lambda e, delay, n: delays.append(delay))
    assert await collect(stream)
    assert len(upstream.requests) == 2
    assert gaps(upstream)[0] >= 1.0
    assert 1.0 <= delays[0] < 1.1


async def test_retry_after_http_date_is_honoured(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # Whole seconds: 2-3 s away, well clear of the 1 s (±20 %) backoff it replaces, even
    # when a loaded machine takes a while to get the answer to the client.
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    upstream.enqueue(Reply.error(503, "maintenance", headers={"retry-after": when}))
    assert await collect(client.stream(request(), endpoint(upstream)))
    assert len(upstream.requests) == 2
    assert 1.5 <= gaps(upstream)[0] <= 3.5


async def test_retry_after_ms_is_honoured(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.error(429, "rate limited", headers={"retry-after-ms": "300"}))
    assert await collect(client.stream(request(), endpoint(upstream)))
    assert 0.3 <= gaps(upstream)[0] < 0.8


async def test_retry_after_too_long_gives_up_at_once_and_says_when(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(429, "quota", headers={"retry-after": "3600"}))
    started = time.monotonic()
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
    assert time.monotonic() - started < 1
    assert isinstance(error, errors.RateLimited)
    assert error.retry_after == 3600
    assert "3600" in str(error)
    assert len(upstream.requests) == 1


# -- connections and time-outs -------------------------------------------------------------


async def test_connect_refused_is_connect_failed_after_retries(client: ChatClient) -> None:
    ep = endpoint(f"http://127.0.0.1:{closed_port()}/v1", max_retries=2)
    attempts: list[int] = []
    error, _ = await failure(client.stream(request(), ep,
                                           on_retry=lambda e, d, n: attempts.append(n)))
    assert isinstance(error, errors.ConnectFailed)
    assert error.kind == "connection"
    assert "refused" in str(error)
    assert "baseUrl" in error.hint
    assert attempts == [1, 2]
    assert "gave up after 3 attempts" in str(error)


async def test_unresolvable_host_is_connect_failed(client: ChatClient) -> None:
    ep = endpoint("http://nonexistent.invalid/v1", max_retries=1)
    error, _ = await failure(client.stream(request(), ep))
    assert isinstance(error, errors.ConnectFailed)
    assert "does not resolve" in str(error)
    assert "nonexistent.invalid" in str(error)


async def test_idle_timeout_after_text_is_timed_out(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["before the silence", "never"], hang_after=2))
    started = time.monotonic()
    error, deltas = await failure(
        client.stream(request(), endpoint(upstream, idle_timeout=0.3, max_retries=3))
    )
    elapsed = time.monotonic() - started
    assert isinstance(error, errors.TimedOut)
    assert error.kind == "timeout"
    assert error.partial_text == "before the silence"
    assert deltas == ["before the silence"]
    assert 0.25 <= elapsed < 1.5
    assert len(upstream.requests) == 1


async def test_idle_timeout_before_text_is_retried(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["x"], hang_after=1), Reply.stream(["after the retry"]))
    stream = client.stream(request(), endpoint(upstream, idle_timeout=0.3))
    assert await collect(stream) == ["after the retry"]
    assert len(upstream.requests) == 2


async def test_trickle_that_never_completes_an_event_times_out(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    pieces = [content("start"), 'data: {"choices": [', *([b" "] * 40)]
    upstream.enqueue(Reply.sse(pieces, delay=0.1))
    started = time.monotonic()
    error, deltas = await failure(
        client.stream(request(), endpoint(upstream, idle_timeout=0.3, max_retries=0))
    )
    elapsed = time.monotonic() - started
    assert isinstance(error, errors.TimedOut)
    assert deltas == ["start"]
    assert error.partial_text == "start"
    assert elapsed < 1.5  # the whole trickle would take 4 s


async def test_keep_alive_comments_show_a_slow_upstream_is_alive(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # A reasoning model may think for longer than the idle time-out before its first
    # token; the keep-alive comments it sends meanwhile must keep the stream open.
    pieces = [*([": keep-alive\n"] * 8), content("thought"), "data: [DONE]\n\n"]
    upstream.enqueue(Reply.sse(pieces, delay=0.1))
    stream = client.stream(request(), endpoint(upstream, idle_timeout=0.3, max_retries=0))
    assert await collect(stream) == ["thought"]


async def test_long_answer_that_keeps_streaming_is_not_cut(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    chunks = [f"{i} " for i in range(10)]
    upstream.enqueue(Reply.stream(chunks, delay=0.1))
    started = time.monotonic()
    stream = client.stream(request(), endpoint(upstream, idle_timeout=0.5, max_retries=0))
    assert await collect(stream) == chunks
    assert time.monotonic() - started > 1.0  # twice the idle time-out, and never cut


async def test_cancelling_the_consumer_closes_the_connection(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream([f"word{i} " for i in range(200)], delay=0.05))
    first = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for delta in client.stream(request(), endpoint(upstream)):
            received.append(delta)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded = upstream.requests[-1]
    assert await asyncio.to_thread(recorded.client_closed.wait, 1)
    assert recorded.client_closed_at is not None
    assert recorded.client_closed_at - cancelled_at < 0.15
    assert len(received) < 200
    assert len(upstream.requests) == 1


async def test_breaking_out_of_the_loop_closes_the_connection(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream([f"w{i}" for i in range(200)], delay=0.05))
    deltas = client.stream(request(), endpoint(upstream)).__aiter__()
    assert await deltas.__anext__() == "w0"
    await deltas.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(upstream.requests[-1].client_closed.wait, 1)


# -- not an OpenAI-compatible answer -------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_is_not_followed(
    upstream: FakeUpstream, client: ChatClient, status: int
) -> None:
    with FakeUpstream() as target:
        upstream.enqueue(Reply(status=status,
                               headers={"location": target.base_url + "/chat/completions"}))
        error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
        await asyncio.sleep(0.05)
        assert target.requests == []  # the key never went to the other host
    assert isinstance(error, errors.InvalidResponse)
    assert error.status == status
    assert "redirect" in str(error)
    assert "baseUrl" in error.hint
    assert len(upstream.requests) == 1


async def test_html_page_with_200_is_invalid_response(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.body("<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"))
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=3)))
    assert isinstance(error, errors.InvalidResponse)
    assert "web page" in str(error)
    assert "baseUrl" in str(error)
    assert len(upstream.requests) == 1


async def test_json_that_is_not_a_completion_is_invalid_response(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.body("not json at all", content_type="application/json"))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert "baseUrl" in str(error)


async def test_event_that_is_not_json_is_invalid_response(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([content("a"), "data: <html>oops</html>\n\n"]))
    error, deltas = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert deltas == ["a"]
    assert error.partial_text == "a"


async def test_json_completion_answering_a_stream_request_still_yields_text(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.json({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }))
    stream = client.stream(request(), endpoint(upstream))
    assert await collect(stream) == ["whole answer"]
    assert stream.finish_reason == "length"
    assert stream.usage == Usage(3, 2, 5)


async def test_max_response_chars_exceeded_while_streaming(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.stream(["12345", "67890", "abcde", "fghij"]))
    error, deltas = await failure(
        client.stream(request(), endpoint(upstream, max_response_chars=10, max_retries=3))
    )
    assert isinstance(error, errors.ResponseTooLarge)
    assert "maxResponseChars" in error.hint
    assert deltas == ["12345", "67890"]
    assert error.partial_text == "1234567890"
    assert len(upstream.requests) == 1


async def test_max_response_chars_exceeded_by_a_json_answer(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.json({"choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"content": "x" * 1000}}]}))
    error, _ = await failure(client.stream(request(),
                                           endpoint(upstream, max_response_chars=100)))
    assert isinstance(error, errors.ResponseTooLarge)


# -- the API key ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_fails_without_any_request(
    upstream: FakeUpstream, client: ChatClient, key: str | None
) -> None:
    error, _ = await failure(client.stream(request(), endpoint(upstream, api_key=key)))
    assert isinstance(error, errors.MissingApiKey)
    assert error.kind == "no_api_key"
    assert "apiKey" in str(error) and "LSPILOT_API_KEY" in str(error)
    with pytest.raises(errors.MissingApiKey):
        await client.complete(request(), endpoint(upstream, api_key=key))
    await asyncio.sleep(0.05)
    assert upstream.requests == []


def assert_no_key(error: BaseException, log_text: str) -> None:
    texts = [str(error), repr(error), log_text, *map(str, error.args)]
    if isinstance(error, errors.UpstreamError):
        texts += [error.message, error.hint, error.partial_text]
    for text in texts:
        assert KEY not in text


async def test_key_echoed_by_upstream_never_reaches_errors_or_logs(
    upstream: FakeUpstream, client: ChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.enqueue(
        Reply.error(500, f"backend rejected {KEY}"),
        Reply.error(401, f"Incorrect API key provided: {KEY}. Find your key at ..."),
    )
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=1)))
    assert isinstance(error, errors.AuthenticationFailed)
    assert "Incorrect API key provided" in str(error)  # the message itself is kept
    assert "Retrying" in caplog.text  # the retry was logged, without the key
    assert_no_key(error, caplog.text)
    assert len(upstream.requests) == 2


async def test_key_echoed_in_an_error_event_is_scrubbed(
    upstream: FakeUpstream, client: ChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.enqueue(Reply.sse([content("a"), event({"error": {"message": f"bad key {KEY}"}})]))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.StreamBroken)
    assert "bad key" in str(error)
    assert_no_key(error, caplog.text)


async def test_key_echoed_in_a_non_json_body_is_scrubbed(
    upstream: FakeUpstream, client: ChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.enqueue(Reply.body(f"403 forbidden for key {KEY}", status=403,
                                content_type="text/plain"))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.AuthenticationFailed)
    assert_no_key(error, caplog.text)


@pytest.mark.parametrize("shape", ["plain-200", "sse-not-json"])
async def test_key_echoed_in_an_unexpected_answer_is_scrubbed(
    upstream: FakeUpstream, client: ChatClient, caplog: pytest.LogCaptureFixture, shape: str
) -> None:
    caplog.set_level(logging.DEBUG)
    if shape == "plain-200":
        upstream.enqueue(Reply.body(f"invalid key {KEY}", content_type="text/plain"))
    else:
        upstream.enqueue(Reply.sse([f"data: invalid key {KEY}\n\n"]))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert_no_key(error, caplog.text)


def test_endpoint_repr_hides_the_key() -> None:
    assert KEY not in repr(endpoint("http://127.0.0.1:1/v1"))


# -- complete() ----------------------------------------------------------------------------


async def test_complete_without_streaming(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.stream(["Hi", " there"]))  # the fake answers as one completion
    text, usage = await client.complete(request(), endpoint(upstream))
    assert text == "Hi there"
    assert usage == Usage(11, 2, 13)
    sent = upstream.requests[0]
    assert sent.json["stream"] is False
    assert "stream_options" not in sent.json
    assert sent.headers["accept"] == "application/json"


async def test_complete_retries_and_types_errors(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(503, "busy"), Reply.stream(["ok"]))
    assert (await client.complete(request(), endpoint(upstream)))[0] == "ok"
    assert len(upstream.requests) == 2
    upstream.enqueue(Reply.error(401, "bad key"))
    with pytest.raises(errors.AuthenticationFailed, match="bad key"):
        await client.complete(request(), endpoint(upstream, max_retries=3))
    assert len(upstream.requests) == 3


async def test_complete_with_html_is_invalid_response(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.body("<html><body>login</body></html>"))
    with pytest.raises(errors.InvalidResponse, match="baseUrl"):
        await client.complete(request(), endpoint(upstream))


# -- apiKeyCommand -------------------------------------------------------------------------


async def test_key_command_prints_the_key() -> None:
    assert await resolve_key_command(["printf", "sk-from-cmd"]) == ("sk-from-cmd", None)


async def test_key_command_output_is_stripped() -> None:
    assert await resolve_key_command(["printf", "  sk-x\n\n"]) == ("sk-x", None)


async def test_key_command_failing() -> None:
    key, problem = await resolve_key_command(["sh", "-c", "echo first >&2; echo no vault >&2; "
                                              "exit 3"])
    assert key is None
    assert problem is not None
    assert "apiKeyCommand" in problem and "'sh'" in problem
    assert "status 3" in problem
    assert "no vault" in problem


async def test_key_command_missing_program() -> None:
    key, problem = await resolve_key_command(["/nonexistent/lspilot-key-tool", "get"])
    assert key is None
    assert problem is not None
    assert "could not start" in problem and "lspilot-key-tool" in problem


async def test_key_command_empty_output() -> None:
    key, problem = await resolve_key_command(["true"])
    assert key is None
    assert problem is not None and "printed no key" in problem


async def test_max_response_chars_applies_to_a_last_event_without_blank_line(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.sse([content("12345"), content("6789012345", "stop").rstrip("\n")]))
    error, deltas = await failure(
        client.stream(request(), endpoint(upstream, max_response_chars=10))
    )
    assert isinstance(error, errors.ResponseTooLarge)
    assert deltas == ["12345"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_proxy_that_refuses_is_named_not_base_url(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = ChatClient()  # reads the environment as it makes its connections
    try:
        error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=0)))
    finally:
        await client.aclose()
    assert isinstance(error, errors.ConnectFailed)
    assert f"the proxy http://127.0.0.1:{port} did not let the request through" in str(error)
    assert "secret" not in str(error)  # the proxy's credentials stay out of messages
    assert "HTTPS_PROXY" in error.hint and "NO_PROXY" in error.hint
    assert "baseUrl" not in error.hint
    assert not upstream.requests


async def test_no_proxy_sends_the_request_straight_to_the_host(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    upstream.enqueue(Reply.stream(["direct"]))
    client = ChatClient()
    try:
        assert await collect(client.stream(request(), endpoint(upstream))) == ["direct"]
    finally:
        await client.aclose()
