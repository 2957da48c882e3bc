"""The text stream as an object: used once, closable early, closed by ``async with``.

Real HTTP to the fake upstream on 127.0.0.1 (no mocks); waits are on events the fake
upstream sets, never on sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from lspilot.llm import errors
from lspilot.llm.client import ChatClient, TextStream
from tests.fake_upstream import FakeUpstream, Reply
from tests.unit.test_client import endpoint, request


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    chat = ChatClient()
    yield chat
    await chat.aclose()


def slow(count: int = 200) -> Reply:
    return Reply.stream([f"w{i} " for i in range(count)], delay=0.05)


async def closed_seen(upstream: FakeUpstream, index: int = -1) -> bool:
    return await asyncio.to_thread(upstream.requests[index].client_closed.wait, 2)


def test_chat_stream_is_the_text_stream() -> None:
    assert TextStream is TextStream


async def test_a_second_iteration_raises_and_sends_nothing(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    stream = client.stream(request(), endpoint(upstream))
    assert [d async for d in stream] == ["Hello from the fake upstream."]
    with pytest.raises(RuntimeError, match="once"):
        async for _ in stream:
            pass
    await asyncio.sleep(0.05)  # a second request would have arrived by now
    assert len(upstream.requests) == 1
    assert stream.text == "Hello from the fake upstream."  # the first answer is kept


async def test_a_second_iteration_while_the_first_runs_raises(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(slow())
    stream = client.stream(request(), endpoint(upstream))
    deltas = aiter(stream)
    assert await anext(deltas) == "w0 "
    with pytest.raises(RuntimeError):
        aiter(stream)
    await stream.aclose()
    assert len(upstream.requests) == 1


async def test_aclose_mid_stream_drops_the_connection(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(slow())
    stream = client.stream(request(), endpoint(upstream))
    received = []
    async for delta in stream:
        received.append(delta)
        if len(received) == 2:
            await stream.aclose()
            break
    assert await closed_seen(upstream)
    assert stream.closed
    assert stream.text == "w0 w1 "
    assert stream.finish_reason is None


async def test_aclose_from_another_task_ends_the_reader_quietly(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(slow())
    stream = client.stream(request(), endpoint(upstream))
    first = asyncio.Event()
    received: list[str] = []

    async def read() -> None:
        async for delta in stream:  # ends without an error once closed
            received.append(delta)
            first.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 5)
    closed_at = time.monotonic()
    await stream.aclose()
    await asyncio.wait_for(reader, 2)
    assert await closed_seen(upstream)
    recorded = upstream.requests[-1]
    assert recorded.client_closed_at is not None
    assert recorded.client_closed_at - closed_at < 0.5
    assert len(received) < 200
    assert len(upstream.requests) == 1


async def test_async_with_closes_on_exit(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(slow())
    async with client.stream(request(), endpoint(upstream)) as stream:
        async for _ in stream:
            break
    assert stream.closed
    assert await closed_seen(upstream)


async def test_async_with_closes_when_the_body_raises(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(slow())
    with pytest.raises(ZeroDivisionError):
        async with client.stream(request(), endpoint(upstream)) as stream:
            async for _ in stream:
                raise ZeroDivisionError
    assert await closed_seen(upstream)


async def test_closed_before_iterating_sends_nothing(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    stream = client.stream(request(), endpoint(upstream))
    await stream.aclose()
    await stream.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        async for _ in stream:
            pass
    await asyncio.sleep(0.05)
    assert upstream.requests == []


async def test_aclose_during_a_retry_wait_ends_it_at_once(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(503, "busy", headers={"retry-after": "30"}))
    waiting = asyncio.Event()
    stream = client.stream(request(), endpoint(upstream),
                           on_retry=lambda e, delay, n: waiting.set())

    async def read() -> list[str]:
        return [d async for d in stream]

    reader = asyncio.create_task(read())
    await asyncio.wait_for(waiting.wait(), 5)
    started = time.monotonic()
    await stream.aclose()
    assert await asyncio.wait_for(reader, 2) == []
    assert time.monotonic() - started < 1
    assert len(upstream.requests) == 1


async def test_a_finished_stream_closes_without_fuss(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    async with client.stream(request(), endpoint(upstream)) as stream:
        assert [d async for d in stream]
    assert stream.finish_reason == "stop"
    assert stream.usage is not None


async def test_breaking_out_without_aclose_still_drops_the_connection(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # The stream must not hold its own iterator (a cycle only a later collection frees):
    # the connection closes as soon as the consumer lets go, as a cancelled run's does.
    upstream.enqueue(slow())

    async def first_delta() -> str:
        async for delta in client.stream(request(), endpoint(upstream)):
            return delta
        return ""

    assert await first_delta() == "w0 "
    assert await closed_seen(upstream)


async def test_missing_key_is_raised_by_the_iteration(client: ChatClient) -> None:
    stream = client.stream(request(), endpoint("http://127.0.0.1:1/v1", api_key=None))
    with pytest.raises(errors.MissingApiKey):
        async for _ in stream:
            pass
