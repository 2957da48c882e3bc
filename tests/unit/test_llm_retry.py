"""The retry loop never changes an error it caught, and reads failures by their type.

Real HTTP to the fake upstream on 127.0.0.1, and the retry policy as a pure function.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from lspilot.llm import errors, failures, retry
from lspilot.llm.client import ChatClient
from lspilot.llm.endpoint import Endpoint
from lspilot.settings import ApiKey, Settings
from tests.fake_upstream import FakeUpstream, Reply
from tests.unit.test_client import collect, endpoint, failure, request


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    chat = ChatClient()
    yield chat
    await chat.aclose()


async def test_no_error_is_changed_across_retries(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(*(Reply.error(503, f"busy {i}") for i in range(3)))
    seen: list[tuple[errors.UpstreamError, str, str]] = []
    stream = client.stream(request(), endpoint(upstream, max_retries=2),
                           on_retry=lambda e, d, n: seen.append((e, e.message, e.hint)))
    error, _ = await failure(stream)
    # What the retry callback was handed is as it was handed.
    assert [(e.message, e.hint) for e, _m, _h in seen] == [(m, h) for _e, m, h in seen]
    assert all("gave up" not in e.message for e, _m, _h in seen)
    # The last error, as caught, is unchanged; what is raised is a copy of its class.
    original = error.__cause__
    assert isinstance(original, errors.ServerFailed)
    assert type(error) is errors.ServerFailed
    assert original.message.endswith("busy 2")
    assert "gave up" not in str(original)
    assert original.attempts == 1
    assert error.message == f"{original.message} (gave up after 3 attempts)"
    assert error.attempts == 3
    assert error.status == original.status == 503


async def test_a_retry_after_too_long_gives_its_hint_on_a_copy(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(429, "quota", headers={"retry-after": "3600"}))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.RateLimited)
    assert "3600" in error.hint
    original = error.__cause__
    assert isinstance(original, errors.RateLimited)
    assert original.hint == "Wait a little, or lower maxConcurrentRequests."


async def test_one_attempt_raises_the_error_itself(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    upstream.enqueue(Reply.error(401, "bad key"))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.AuthenticationFailed)
    assert error.attempts == 1
    assert error.__cause__ is None


async def test_a_body_that_cannot_be_decoded_is_an_invalid_response(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # Said to be gzip, but is not: httpx fails while decoding, mid-body.
    upstream.enqueue(Reply.sse([b"not gzip at all"], headers={"content-encoding": "gzip"}))
    error, _ = await failure(client.stream(request(), endpoint(upstream)))
    assert isinstance(error, errors.InvalidResponse)
    assert "decoded" in str(error)


async def test_a_gzip_stream_is_read(upstream: FakeUpstream, client: ChatClient) -> None:
    body = b'data: {"choices": [{"delta": {"content": "zipped"}, "finish_reason": "stop"}]}\n\n'
    upstream.enqueue(Reply.sse([gzip.compress(body)], headers={"content-encoding": "gzip"}))
    assert await collect(client.stream(request(), endpoint(upstream))) == ["zipped"]


async def test_a_whole_answer_cut_mid_body_is_retried(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    # Promises 1,000 bytes, sends a few, closes: a network failure while reading the body,
    # which must be a typed (and, before any text, retried) error like any other.
    upstream.enqueue(
        Reply.raw_bytes(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: 1000\r\n\r\n{\"choices\": ["),
        Reply.stream(["second"]),
    )
    kinds: list[str] = []
    stream = client.stream(request(), endpoint(upstream),
                           on_retry=lambda e, d, n: kinds.append(e.kind))
    assert await collect(stream) == ["second"]
    assert kinds == ["connection"]
    with pytest.raises(errors.ConnectFailed):
        upstream.enqueue(Reply.raw_bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"))
        await client.complete(request(), endpoint(upstream, max_retries=0))


def test_the_policy_gives_up_on_what_cannot_pass() -> None:
    ep = Endpoint(base_url="http://h/v1", api_key="k", max_retries=3, retry_base_seconds=1.0)
    refused = errors.BadRequest("no", status=400)
    assert retry.decide(refused, 0, ep) == retry.GiveUp(refused)
    busy = errors.ServerFailed("busy", status=503)
    decision = retry.decide(busy, 1, ep)
    assert isinstance(decision, retry.RetryIn) and 1.6 <= decision.seconds <= 2.4
    last = retry.decide(busy, 3, ep)
    assert isinstance(last, retry.GiveUp)
    assert last.error is not busy and last.error.attempts == 4
    assert busy.message == "busy" and busy.attempts == 1
    broken = errors.ConnectFailed("dropped", partial_text="some")
    assert retry.decide(broken, 0, ep) == retry.GiveUp(broken)


def test_evolve_copies_everything_else() -> None:
    error = errors.RateLimited("slow", status=429, retry_after=2.0, hint="wait",
                               partial_text="p", detail="d")
    copy = error.evolve(message="slower", attempts=2)
    assert type(copy) is errors.RateLimited and copy is not error
    assert (copy.message, copy.hint, copy.status, copy.retry_after, copy.partial_text,
            copy.detail, copy.attempts, copy.kind) == (
        "slower", "wait", 429, 2.0, "p", "d", 2, "rate_limit")
    assert str(copy) == "slower wait"
    assert (error.message, error.attempts) == ("slow", 1)


def test_endpoint_from_settings() -> None:
    settings = Settings(base_url="http://127.0.0.1:9/v1/", api_key=ApiKey("sk-x"), max_retries=5,
                        retry_base_seconds=0.5, connect_timeout=3.0, idle_timeout=7.0,
                        max_response_chars=1234)
    ep = Endpoint.from_settings(settings)
    assert ep == Endpoint(base_url="http://127.0.0.1:9/v1/", api_key="sk-x", max_retries=5,
                          retry_base_seconds=0.5, connect_timeout=3.0, idle_timeout=7.0,
                          max_response_chars=1234)
    assert ep.url == ep.chat_url == "http://127.0.0.1:9/v1/chat/completions"
    assert ep.completions_url == "http://127.0.0.1:9/v1/completions"
    assert ep.url_for("models") == "http://127.0.0.1:9/v1/models"
    assert ep.host == "127.0.0.1:9"
    assert Endpoint.from_settings(Settings()).api_key is None


def test_endpoint_defaults_are_the_settings_defaults() -> None:
    made = Endpoint(base_url="http://h/v1", api_key=None)
    from_defaults = Endpoint.from_settings(Settings(base_url="http://h/v1"))
    assert made == from_defaults


def test_a_time_out_of_a_request_the_upstream_took_is_retried_once() -> None:
    ep = Endpoint(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=5)
    taken = errors.TimedOut("held", accepted=True)
    assert isinstance(retry.decide(taken, 0, ep, 0), retry.RetryIn)
    second = retry.decide(taken, 1, ep, 1)
    assert isinstance(second, retry.GiveUp)
    assert second.error.attempts == 2 and "gave up after 2 attempts" in second.error.message
    # After other failures first, still one retry of a taken time-out.
    assert isinstance(retry.decide(taken, 2, ep, 0), retry.RetryIn)
    # A time-out before the upstream had the request (a connect time-out) follows maxRetries.
    unsent = errors.TimedOut("no connection")
    assert all(isinstance(retry.decide(unsent, n, ep, n), retry.RetryIn) for n in range(5))


def test_a_retry_report_is_one_short_line_countdown_first() -> None:
    error = errors.RateLimited("gw:4000 is rate limiting (429): litellm.RateLimitError: "
                               + "word " * 80 + "\nReceived Model Group=x\nmore")
    text = retry.report(error, 2.4, 1)
    assert text.startswith("Retrying in 2 s (attempt 2): gw:4000 is rate limiting (429)")
    assert "\n" not in text and len(text) <= retry.REPORT_CHARS and text.endswith("…")
    assert retry.report(errors.ServerFailed("oops"), 0.05, 1) == (
        "Retrying in 0.1 s (attempt 2): oops")


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"llm_provider-retry-after": "3"}, 3.0),
    ({"llm_provider-retry-after-ms": "250"}, 0.25),
    ({"retry-after": "1", "llm_provider-retry-after": "30"}, 1.0),  # the gateway's own first
    ({"retry-after-ms": "nan", "retry-after": "4"}, 4.0),
    ({"retry-after": "inf"}, None),
    ({"x-ratelimit-reset-requests": "6m0s"}, None),  # a quota's reset, not a wait
])
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert failures.retry_after(httpx.Headers(headers)) == seconds


async def test_a_deflate_bomb_stops_at_the_ratio(
    upstream: FakeUpstream, client: ChatClient
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    bomb = packer.compress(b"\n" * (64 << 20)) + packer.flush()
    upstream.enqueue(Reply.compressed(bomb, encoding="deflate"))
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=0)))
    assert isinstance(error, errors.ResponseTooLarge)
    assert "decompression bomb" in error.message


async def test_an_encoding_not_decoded_is_named(upstream: FakeUpstream, client: ChatClient) -> None:
    upstream.enqueue(Reply.compressed(b"\x00\x01", encoding="br"))
    error, _ = await failure(client.stream(request(), endpoint(upstream, max_retries=0)))
    assert isinstance(error, errors.InvalidResponse)
    assert "'br'" in error.message
