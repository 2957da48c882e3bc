"""The streaming Chat Completions client: one pooled httpx client, retries, time-outs.

``ChatClient.stream(request, endpoint)`` gives a :class:`ChatStream`: iterate it for the
text as it arrives; afterwards it holds the finish reason and usage. Retries happen only
before the first text is handed on, so a caller never sees text twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
from attrs import define, field

from lspilot.llm import errors
from lspilot.llm.sse import Event, SSEDecoder
from lspilot.llm.wire import (
    ChatRequest,
    StreamOptions,
    Usage,
    parse_chunk,
    parse_completion,
    parse_error,
    request_json,
)

log = logging.getLogger(__name__)

# Longest Retry-After we wait out inside one action; past it we fail and say when to retry.
MAX_RETRY_AFTER = 60.0
_ERROR_BODY_LIMIT = 64 * 1024


@define(frozen=True, kw_only=True)
class Endpoint:
    """Where and how to reach the upstream, taken from the settings at request time."""

    base_url: str
    api_key: str | None = field(repr=False)
    max_retries: int = 3
    retry_base_seconds: float = 1.0
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_response_chars: int = 200_000

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


RetryCallback = Callable[[errors.UpstreamError, float, int], None]


class ChatClient:
    """Owns the connection pool; safe to share between concurrent actions."""

    def __init__(self, *, verify_tls: bool = True) -> None:
        self.verify_tls = verify_tls
        # Made on first use: building the TLS context takes ~100 ms that startup (answering
        # `initialize`) should not wait for.
        self._http_client: httpx.AsyncClient | None = None
        # Base URLs whose servers refused stream_options: we stop sending it to them.
        self._no_stream_options: set[str] = set()

    @staticmethod
    def _make_http(verify_tls: bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=verify_tls,
            # Never follow redirects: the Authorization header must not go to another host.
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            headers={"user-agent": "lspilot"},
        )

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = self._make_http(self.verify_tls)
        return self._http_client

    async def set_verify_tls(self, verify_tls: bool) -> None:
        if verify_tls != self.verify_tls:
            old, self._http_client = self._http_client, None
            self.verify_tls = verify_tls
            if old is not None:
                await old.aclose()

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    def stream(
        self,
        request: ChatRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None = None,
    ) -> ChatStream:
        if request.stream_options is None and endpoint.base_url not in self._no_stream_options:
            request = attrs.evolve(request, stream_options=StreamOptions(include_usage=True))
        return ChatStream(self, attrs.evolve(request, stream=True), endpoint, on_retry)

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> tuple[str, Usage | None]:
        """One answer without streaming (used by `lspilot check`)."""
        request = attrs.evolve(request, stream=False, stream_options=None)
        _check_key(endpoint)
        attempt = 0
        while True:
            try:
                response = await _open(self, request, endpoint)
                try:
                    body = await _read_limited(response, endpoint.max_response_chars * 4)
                finally:
                    await response.aclose()
                try:
                    completion = parse_completion(json.loads(body))
                except (ValueError, TypeError) as exc:
                    raise _not_openai(response, body, endpoint) from exc
                text = "".join(c.message.content or "" for c in completion.choices[:1])
                return text, completion.usage
            except errors.UpstreamError as error:
                if not await _wait_before_retry(error, attempt, endpoint, None):
                    raise
                attempt += 1

    def forget_stream_options(self, base_url: str) -> None:
        self._no_stream_options.add(base_url)


class ChatStream:
    """The text of one streamed answer; ``finish_reason`` and ``usage`` once it is over."""

    def __init__(
        self,
        client: ChatClient,
        request: ChatRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None,
    ) -> None:
        self._client = client
        self.request = request
        self._endpoint = endpoint
        self._on_retry = on_retry
        self.text_parts: list[str] = []
        self._size = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        endpoint = self._endpoint
        _check_key(endpoint)
        attempt = 0
        while True:
            try:
                response = await _open(self._client, self.request, endpoint)
                try:
                    content_type = response.headers.get("content-type", "")
                    # Some servers ignore stream: true and answer in one piece.
                    deltas = (
                        self._events(response)
                        if "text/event-stream" in content_type
                        else self._whole_answer(response)
                    )
                    async for delta in deltas:
                        yield delta
                finally:
                    # Closing mid-stream (a cancel) drops the connection: the upstream stops.
                    await response.aclose()
                return
            except errors.UpstreamError as error:
                # Retried only while no text was handed on: nothing is ever sent twice.
                if self.text_parts or not await _wait_before_retry(
                    error, attempt, endpoint, self._on_retry
                ):
                    raise
                attempt += 1

    async def _whole_answer(self, response: httpx.Response) -> AsyncIterator[str]:
        body = await _read_limited(response, self._endpoint.max_response_chars * 4)
        try:
            completion = parse_completion(json.loads(body))
        except (ValueError, TypeError) as exc:
            raise _not_openai(response, body, self._endpoint) from exc
        if not completion.choices:
            raise errors.InvalidResponse("The upstream answered without any choices.")
        choice = completion.choices[0]
        text = choice.message.content or ""
        self._check_size(len(text))
        self.finish_reason = choice.finish_reason or "stop"
        self.usage = completion.usage
        if text:
            self.text_parts.append(text)
            yield text

    async def _events(self, response: httpx.Response) -> AsyncIterator[str]:
        """The text of the events, one piece per network read (not per event: a read
        often brings many events, and each hand-over costs more than the event)."""
        decoder = SSEDecoder()
        endpoint = self._endpoint
        last_event = time.monotonic()
        reads = response.aiter_bytes()
        try:
            async for raw in reads:
                lines_before = decoder.lines
                events = decoder.feed(raw)
                now = time.monotonic()
                if not events:
                    # A complete line (a keep-alive comment included) shows the upstream is
                    # alive; bytes trickling in without completing one do not.
                    if decoder.lines != lines_before:
                        last_event = now
                    elif now - last_event > endpoint.idle_timeout:
                        raise errors.TimedOut(
                            f"Nothing complete from {endpoint.host} for "
                            f"{endpoint.idle_timeout:g} s.",
                            partial_text=self.text,
                        )
                    continue
                last_event = now
                text, done, error = self._take(events)
                if text:
                    yield text
                if error is not None:
                    raise error
                if done:
                    await _finish_body(reads)
                    return
            text, done, error = self._take(decoder.close())
            if text:
                yield text
            if error is not None:
                raise error
            if done:
                return
        except httpx.ReadTimeout as exc:
            raise errors.TimedOut(
                f"{endpoint.host} sent nothing for {endpoint.idle_timeout:g} s "
                "(the idle time-out, setting idleTimeout).",
                partial_text=self.text,
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.NetworkError) as exc:
            if self.finish_reason is not None:
                return
            cls = errors.StreamBroken if self.text_parts else errors.ConnectFailed
            raise cls(
                f"The connection to {endpoint.host} dropped mid-stream.",
                partial_text=self.text,
            ) from exc
        if self.finish_reason is None:
            raise errors.StreamBroken(
                f"The stream from {endpoint.host} ended early, before the answer was finished.",
                partial_text=self.text,
            )

    def _take(self, events: list[Event]) -> tuple[str, bool, errors.UpstreamError | None]:
        """The text of a batch of events, whether [DONE] came, and an error if one did.

        The text before an error is still handed on, so the partial answer is complete.
        """
        pieces: list[str] = []
        try:
            for event in events:
                if event.data == "[DONE]":
                    return "".join(pieces), True, None
                delta = self._handle(event.event, event.data)
                if delta:
                    self._size += len(delta)
                    self._check_size(self._size)
                    self.text_parts.append(delta)
                    pieces.append(delta)
        except errors.UpstreamError as error:
            return "".join(pieces), False, error
        return "".join(pieces), False, None

    def _handle(self, event_name: str, data: str) -> str:
        try:
            payload = json.loads(data)
        except ValueError:
            raise errors.InvalidResponse(
                f"The upstream sent an event that is not JSON: {self._quote(data)}",
                partial_text=self.text,
            ) from None
        if not isinstance(payload, dict):
            raise errors.InvalidResponse(
                f"The upstream sent an event that is not a JSON object: {self._quote(data)}",
                partial_text=self.text,
            )
        if event_name != "error":
            fast = _fast_delta(payload)
            if fast is not None:
                content, finish_reason = fast
                if finish_reason:
                    self.finish_reason = finish_reason
                return content
        if event_name == "error" or payload.get("error"):
            body = parse_error(payload.get("error", payload))
            message = _scrub(body.message, self._endpoint) or "no message"
            raise errors.StreamBroken(
                f"The upstream reported an error mid-stream: {message}",
                partial_text=self.text,
            )
        try:
            chunk = parse_chunk(payload)
        except Exception as exc:  # cattrs raises several types; any means a malformed chunk
            raise errors.InvalidResponse(
                f"The upstream sent a malformed chunk: {self._quote(data)}",
                partial_text=self.text,
            ) from exc
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        return choice.delta.content or ""

    def _quote(self, data: str) -> str:
        return repr(_scrub(data, self._endpoint)[:80])

    def _check_size(self, size: int) -> None:
        limit = self._endpoint.max_response_chars
        if size > limit:
            raise errors.ResponseTooLarge(
                f"The answer passed {limit:,} characters and was stopped.",
                hint="Select less code, or raise the setting maxResponseChars.",
                partial_text=self.text,
            )


def _fast_delta(payload: dict[str, Any]) -> tuple[str, str | None] | None:
    """The usual chunk's text and finish reason, read straight from the dict.

    Almost every chunk has this one shape; structuring it with cattrs costs fifteen
    times more (see benchmarks/README.md). Anything else (usage, errors, odd types)
    returns None and goes through the typed path.
    """
    if "usage" in payload or "error" in payload:
        return None
    choices = payload.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    delta = choice.get("delta")
    content = delta.get("content") if type(delta) is dict else None
    finish_reason = choice.get("finish_reason")
    if (content is not None and type(content) is not str) or (
        finish_reason is not None and type(finish_reason) is not str
    ):
        return None
    return content or "", finish_reason


async def _finish_body(reads: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (the end of the chunked body), so that the connection
    goes back to the pool instead of being dropped: no new handshake per action."""
    try:
        async with asyncio.timeout(1.0):
            async for _ in reads:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


def _check_key(endpoint: Endpoint) -> None:
    if not endpoint.api_key:
        raise errors.MissingApiKey(
            "No API key is set.",
            hint="Set the setting lspilot.apiKey, or the environment variable LSPILOT_API_KEY "
            "(or OPENAI_API_KEY). Local servers that need no key accept any value.",
        )


async def _open(
    client: ChatClient, request: ChatRequest, endpoint: Endpoint
) -> httpx.Response:
    """Send the request once; a 2xx response comes back open, anything else raises."""
    headers = {
        "authorization": f"Bearer {endpoint.api_key}",
        "accept": "text/event-stream" if request.stream else "application/json",
    }
    timeout = httpx.Timeout(
        connect=endpoint.connect_timeout,
        read=endpoint.idle_timeout,
        write=endpoint.idle_timeout,
        pool=endpoint.connect_timeout,
    )
    if request.stream_options is not None and endpoint.base_url in client._no_stream_options:
        request = attrs.evolve(request, stream_options=None)  # refused on an earlier attempt
    fixed_payload = False
    while True:
        http_request = client._http.build_request(
            "POST", endpoint.url, json=request_json(request), headers=headers, timeout=timeout
        )
        try:
            response = await client._http.send(http_request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise errors.TimedOut(
                f"Could not connect to {endpoint.host} within {endpoint.connect_timeout:g} s.",
                hint="Check baseUrl and your network, or raise connectTimeout.",
            ) from exc
        except httpx.TimeoutException as exc:
            raise errors.TimedOut(
                f"{endpoint.host} did not answer within {endpoint.idle_timeout:g} s.",
                hint="The idle time-out is the setting idleTimeout.",
            ) from exc
        except httpx.HTTPError as exc:
            reason, hint = _describe_connect_error(exc, endpoint)
            raise errors.ConnectFailed(f"Could not reach {endpoint.host}: {reason}.",
                                       hint=hint) from exc
        if response.status_code < 300:
            return response
        try:
            error = await _status_error(response, endpoint)
        finally:
            await response.aclose()
        if isinstance(error, errors.BadRequest) and not fixed_payload:
            fixed = _fix_payload(client, request, endpoint, error.message)
            if fixed is not None:
                log.info("The upstream refused a parameter; sending the request without it.")
                request, fixed_payload = fixed, True
                continue
        raise error


async def _wait_before_retry(
    error: errors.UpstreamError,
    attempt: int,
    endpoint: Endpoint,
    on_retry: RetryCallback | None,
) -> bool:
    """Sleep before the next attempt and return True, or return False to give up."""
    if not error.retryable or error.partial_text:
        return False
    if attempt >= endpoint.max_retries:
        if attempt:
            error.message += f" (gave up after {attempt + 1} attempts)"
        return False
    delay = _retry_delay(error, attempt, endpoint.retry_base_seconds)
    if delay is None:
        return False
    log.warning(
        "%s Retrying in %.1f s (attempt %d of %d).",
        error.message, delay, attempt + 2, endpoint.max_retries + 1,
    )
    if on_retry is not None:
        on_retry(error, delay, attempt + 1)
    await asyncio.sleep(delay)
    return True


def _retry_delay(error: errors.UpstreamError, attempt: int, base: float) -> float | None:
    if error.retry_after is not None:
        if error.retry_after > MAX_RETRY_AFTER:
            error.hint = f"The upstream asks to wait {error.retry_after:.0f} s before retrying."
            return None
        return error.retry_after + random.uniform(0, 0.1 * base)
    return float(base * 2.0**attempt * random.uniform(0.8, 1.2))


def _fix_payload(
    client: ChatClient, request: ChatRequest, endpoint: Endpoint, message: str
) -> ChatRequest | None:
    """A 400 that names a parameter some servers lack: change the payload, not retry it."""
    lowered = message.lower()
    if request.stream_options is not None and "stream_options" in lowered:
        client.forget_stream_options(endpoint.base_url)
        return attrs.evolve(request, stream_options=None)
    if request.max_tokens is not None and "max_completion_tokens" in lowered:
        return attrs.evolve(
            request, max_tokens=None, max_completion_tokens=request.max_tokens
        )
    return None


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body, or ResponseTooLarge once it passes ``limit`` bytes."""
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) > limit:
            raise errors.ResponseTooLarge(
                f"The answer passed {limit:,} bytes and was stopped.",
                hint="Select less code, or raise the setting maxResponseChars.",
            )
    return bytes(body)


async def _status_error(response: httpx.Response, endpoint: Endpoint) -> errors.UpstreamError:
    status = response.status_code
    try:
        body = await _read_limited(response, _ERROR_BODY_LIMIT)
    except (httpx.HTTPError, errors.ResponseTooLarge):
        body = b""
    detail = _scrub(_error_detail(body), endpoint)
    said = f": {detail}" if detail else ""
    host = endpoint.host
    if 300 <= status < 400:
        target = response.headers.get("location", "another address")
        return errors.InvalidResponse(
            f"{host} redirected the request ({status}) to {target}.",
            status=status,
            hint="Set baseUrl to the final address; redirects are not followed so that "
            "the API key never goes to another host.",
        )
    if status in (400, 422):
        return errors.BadRequest(f"{host} refused the request ({status}){said}", status=status)
    if status in (401, 403):
        return errors.AuthenticationFailed(
            f"{host} refused the API key ({status}){said}",
            status=status,
            hint="Set lspilot.apiKey, or LSPILOT_API_KEY / OPENAI_API_KEY, to a valid key "
            f"for {host}.",
        )
    if status == 404:
        return errors.NotFound(
            f"{host} answered 404 Not Found{said}",
            status=status,
            hint="Check the model name (setting model) and that baseUrl ends in the API's "
            "version path, e.g. https://api.openai.com/v1.",
        )
    if status == 429:
        return errors.RateLimited(
            f"{host} is rate limiting (429){said}",
            status=status,
            retry_after=_retry_after(response.headers),
            hint="Wait a little, or lower maxConcurrentRequests.",
        )
    if status in (408, 409) or status >= 500:
        return errors.ServerFailed(
            f"{host} failed ({status}){said}",
            status=status,
            retry_after=_retry_after(response.headers),
        )
    return errors.InvalidResponse(f"{host} answered {status}{said}", status=status)


def _error_detail(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return _plain(text)
    if isinstance(data, dict):
        inner = data.get("error", data)
        message = parse_error(inner).message
        if message:
            return message[:500]
    return _plain(text)


def _plain(text: str) -> str:
    """An HTML error page or plain text, cut down to one readable line."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:200]


def _retry_after(headers: httpx.Headers) -> float | None:
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when: datetime
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _not_openai(response: httpx.Response, body: bytes, endpoint: Endpoint) -> errors.UpstreamError:
    content_type = response.headers.get("content-type", "unknown")
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return errors.InvalidResponse(
            f"{endpoint.host} answered with a web page, not the Chat Completions API.",
            hint="Check baseUrl: it should be the API root, e.g. https://api.openai.com/v1.",
        )
    shown = _scrub(_plain(body.decode("utf-8", errors="replace")), endpoint)[:80]
    return errors.InvalidResponse(
        f"{endpoint.host} answered with something that is not a chat completion "
        f"({content_type}): {shown!r}",
        hint="Check that baseUrl points at an OpenAI-compatible API.",
    )


def _describe_connect_error(exc: httpx.HTTPError, endpoint: Endpoint) -> tuple[str, str]:
    """Why a connection failed, and what to do: by the exceptions that caused it."""
    causes = list(_cause_chain(exc))
    proxy = _proxy_for(endpoint.base_url)
    if proxy is not None and (isinstance(exc, httpx.ProxyError) or any(
            isinstance(c, ConnectionRefusedError | socket.gaierror) for c in causes)):
        return (f"the proxy {_without_credentials(proxy)} did not let the request through "
                f"({_plain_reason(exc)})",
                "The proxy comes from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY: check it, or add "
                "the host to NO_PROXY.")
    certificate = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if certificate is not None:
        detail = certificate.verify_message or "not trusted"
        return (f"its TLS certificate could not be verified ({detail})",
                "If your network has its own certificate authority, set SSL_CERT_FILE to its "
                "bundle (PEM); verifyTls: false turns the check off for a server you trust.")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "the host name does not resolve", "Check the setting baseUrl and your network."
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return ("the connection was refused",
                "Check the setting baseUrl and that the server is running.")
    return _plain_reason(exc), "Check the setting baseUrl and that the server is running."


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _plain_reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _proxy_for(url: str) -> str | None:
    """The proxy httpx takes from the environment for ``url``, as it would choose it."""
    parts = urlsplit(url)
    # In urllib since Python 3.0, but not in its type stubs.
    bypass: Callable[[str], bool] = getattr(  # noqa: B009
        urllib.request, "proxy_bypass_environment")
    if bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _without_credentials(proxy: str) -> str:
    parts = urlsplit(proxy)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"


def _scrub(text: str, endpoint: Endpoint) -> str:
    """Never pass the key on, even where an upstream echoes it back."""
    key = endpoint.api_key
    if key and key in text:
        text = text.replace(key, "***")
    return text
