"""One pooled httpx client, and sending one request through it.

:meth:`Transport.open` sends a request once and hands back a 2xx response still open
(its body unread), or raises a typed error. A 400 that names a parameter some servers
lack (``stream_options``, ``max_tokens``) is fixed and sent again here, once: that is
not a retry. Which servers refused ``stream_options`` is remembered here too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TypeVar

import attrs
import httpx

from lspilot.llm import errors, failures
from lspilot.llm.body import decoded
from lspilot.llm.endpoint import Endpoint
from lspilot.llm.wire import ChatRequest, CompletionRequest, StreamOptions, request_json

log = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 64 * 1024
# An error body trickling in is not waited for: the status already says what happened.
_ERROR_BODY_SECONDS = 5.0

Request = TypeVar("Request", ChatRequest, CompletionRequest)
WireRequest = ChatRequest | CompletionRequest


class Transport:
    """Owns the connection pool; safe to share between concurrent requests."""

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

    def forget_stream_options(self, base_url: str) -> None:
        self._no_stream_options.add(base_url)

    def with_usage(self, request: Request, base_url: str) -> Request:
        """``request`` asking for usage in its stream, unless this server refused that."""
        if request.stream_options is not None or base_url in self._no_stream_options:
            return request
        return attrs.evolve(request, stream_options=StreamOptions(include_usage=True))

    async def open(
        self, path: str, request: WireRequest, endpoint: Endpoint
    ) -> httpx.Response:
        """Send ``request`` to ``{baseUrl}/{path}``; a 2xx response comes back open."""
        headers = {
            "authorization": f"Bearer {endpoint.api_key}",
            "accept": "text/event-stream" if request.stream else "application/json",
            # Uncompressed: a streamed answer is flushed a few tokens at a time, where
            # compression gains little, and an uncompressed body costs what it weighs
            # (httpx would ask for gzip and inflate any bomb whole; see body.py).
            "accept-encoding": "identity",
            "content-type": "application/json",
        }
        timeout = httpx.Timeout(
            connect=endpoint.connect_timeout,
            read=endpoint.idle_timeout,
            write=endpoint.idle_timeout,
            pool=endpoint.connect_timeout,
        )
        url = endpoint.url_for(path)
        if request.stream_options is not None and endpoint.base_url in self._no_stream_options:
            request = attrs.evolve(request, stream_options=None)  # refused on an earlier attempt
        fixed_payload = False
        # httpx times each read, not the whole: headers trickled a byte at a time would
        # hold the request forever without a deadline of their own.
        headers_deadline = endpoint.connect_timeout + endpoint.idle_timeout
        while True:
            http_request = self._http.build_request(
                "POST", url, content=encode(request, endpoint), headers=headers,
                timeout=timeout,
            )
            try:
                async with asyncio.timeout(headers_deadline):
                    response = await self._http.send(http_request, stream=True)
            except httpx.HTTPError as exc:
                raise failures.connect_error(exc, endpoint) from exc
            except TimeoutError:
                raise failures.headers_too_slow(endpoint, headers_deadline) from None
            if response.status_code < 300:
                return response
            try:
                error = await self._status_error(response, endpoint)
            finally:
                await response.aclose()
            if isinstance(error, errors.BadRequest) and not fixed_payload:
                fixed = self._fix_payload(request, endpoint, error.detail)
                if fixed is not None:
                    log.info("The upstream refused a parameter; sending the request without it.")
                    request, fixed_payload = fixed, True
                    continue
            raise error

    @staticmethod
    async def _status_error(response: httpx.Response, endpoint: Endpoint) -> errors.UpstreamError:
        try:
            async with asyncio.timeout(_ERROR_BODY_SECONDS):  # the status says enough alone
                body = await read_limited(response, _ERROR_BODY_LIMIT)
        except (httpx.HTTPError, errors.ResponseTooLarge, TimeoutError):
            body = b""
        return failures.status_error(response.status_code, response.headers, body, endpoint)

    def _fix_payload(
        self, request: WireRequest, endpoint: Endpoint, detail: str
    ) -> WireRequest | None:
        """A 400 that names a parameter some servers lack: change the payload, not retry it.

        Read from the upstream's own words, never from our message (which names the host).
        """
        lowered = detail.lower()
        if request.stream_options is not None and "stream_options" in lowered:
            self.forget_stream_options(endpoint.base_url)
            return attrs.evolve(request, stream_options=None)
        if (isinstance(request, ChatRequest) and request.max_tokens is not None
                and "max_completion_tokens" in lowered):
            return attrs.evolve(
                request, max_tokens=None, max_completion_tokens=request.max_tokens
            )
        return None


def encode(request: WireRequest, endpoint: Endpoint) -> bytes:
    """The request's JSON as httpx would make it, or InvalidText naming what cannot be sent.

    Raised outside the ``except``: a UnicodeEncodeError holds the whole payload (the
    user's code), which must not ride along as the error's context.
    """
    payload = request_json(request)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    raise failures.invalid_text(payload, endpoint)


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body, or ResponseTooLarge once it passes ``limit`` bytes."""
    body = bytearray()
    async for part in decoded(response):
        body += part
        if len(body) > limit:
            raise errors.ResponseTooLarge(
                f"The answer passed {limit:,} bytes and was stopped.",
                hint="Select less code, or raise the setting maxResponseChars.",
            )
    return bytes(body)
