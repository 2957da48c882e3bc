"""One streamed answer: single use, closable, retried before its first text.

``async for delta in stream`` sends the request and hands on the text as it arrives;
``async for event in stream.events()`` hands on typed events instead (text, pieces of
tool calls, then one ``Finish``: see ``llm/events.py``). Afterwards ``text``,
``tool_calls`` (assembled whole, ``llm/toolcalls.py``), ``finish_reason`` and ``usage``
hold the whole answer, whichever way it was read. A stream is used once: iterating it
again raises instead of asking the model a second time. ``await stream.aclose()`` (or
leaving ``async with``) drops the connection, so the upstream stops generating.

Retries happen only before the first text or tool call is handed on, so a caller never
sees either twice; this is the only retry loop, for every API.

With the prompt tool format (``llm/prompt_tools.py``) the answer's text is read for
``<tool_call>`` tags: the calls come out as the same events, and ``text`` is the answer
without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any, NoReturn

import httpx

from lspilot.llm import errors, failures, retry
from lspilot.llm.api import Api, Piece
from lspilot.llm.body import decoded
from lspilot.llm.endpoint import Endpoint
from lspilot.llm.events import Finish, StreamEvent, TextDelta
from lspilot.llm.prompt_tools import ToolCallParser
from lspilot.llm.retry import RetryCallback
from lspilot.llm.sse import Event, EventTooLarge, SSEDecoder
from lspilot.llm.toolcalls import ToolCallAssembler, finish_reason
from lspilot.llm.transport import Transport, read_limited
from lspilot.llm.wire import (
    ChatRequest,
    CompletionRequest,
    ToolCall,
    ToolCallChunk,
    Usage,
    parse_error,
)

log = logging.getLogger(__name__)


class TextStream:
    """One streamed answer: its text (or typed events) as it arrives; ``tool_calls``,
    ``finish_reason`` and ``usage`` once it is over."""

    def __init__(
        self,
        transport: Transport,
        api: Api,
        request: ChatRequest | CompletionRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None,
        tool_parser: ToolCallParser | None = None,
    ) -> None:
        self._transport = transport
        self._api = api
        self.request = request
        self._endpoint = endpoint
        self._on_retry = on_retry
        self.text_parts: list[str] = []
        self._size = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        # Read once per chunk: an attribute, not a lookup through the Api each time.
        self._fast = api.fast
        self._attempt = 0
        self._taken_timeouts = 0  # time-outs of requests the upstream had: each may be billed
        self._started = False
        self._closed = False
        self._closing: asyncio.Event | None = None  # made if a retry has to wait
        # The response being read. The stream never holds its own iterator: only the
        # consumer does, so an abandoned iteration is finalized (and its connection
        # closed) as soon as the consumer lets go, not by a later cycle collection.
        self._response: httpx.Response | None = None
        self._tools = ToolCallAssembler()
        # events() only: what a read brought before its last text, in order (text, tool
        # calls); None when only text is wanted, so the text path never builds events.
        self._held: list[StreamEvent] | None = None
        self._tool_piece: Piece | None = None  # a chunk with tool calls, for _take
        # The prompt tool format: reads the calls out of the text; the rest is shown.
        self._parser = tool_parser
        self._shown: list[str] = []

    @property
    def text(self) -> str:
        """The answer's text so far (without ``<tool_call>`` tags in the prompt format)."""
        return "".join(self.text_parts if self._parser is None else self._shown)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls, assembled (whole once the stream is over), each with an id."""
        return self._tools.calls()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sent(self) -> bool:
        """Whether the request went out (iteration began): the upstream may bill it."""
        return self._started

    def _closed_now(self) -> bool:
        # A call, not the attribute: aclose() may come from another task at any await,
        # and a type checker would take an attribute it just tested as still unchanged.
        return self._closed

    # -- iterating, once -----------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str]:
        """The text only (tool calls are still assembled: see ``tool_calls``)."""
        self._begin()
        return self._deltas()

    def events(self) -> AsyncIterator[StreamEvent]:
        """Typed events in the answer's order: ``TextDelta``, ``ToolCallDelta``, and
        one ``Finish`` last (not after a close or an error)."""
        self._begin()
        self._held = []
        return self._typed(self._deltas())

    def _begin(self) -> None:
        if self._started or self._closed:
            raise RuntimeError(
                "This text stream was already iterated or closed; a stream sends its "
                "request once: ask the client for a new stream to ask again."
            )
        self._started = True

    async def _typed(self, deltas: AsyncGenerator[str, None]) -> AsyncGenerator[StreamEvent, None]:
        held = self._held
        assert held is not None
        try:
            async for text in deltas:
                if held:
                    for event in held:
                        yield event
                    held.clear()
                if text:
                    yield TextDelta(text)
            if not self._closed_now():
                yield Finish(self.finish_reason, self.usage)
        finally:
            await deltas.aclose()  # an abandoned iteration drops the connection now

    async def _deltas(self) -> AsyncGenerator[str, None]:
        """The one retry loop: each attempt sends the request and reads its answer."""
        endpoint = self._endpoint
        if not endpoint.api_key:
            raise errors.MissingApiKey(
                "No API key is set.",
                hint=f"Set one with {errors.SET_KEY_WAYS}. Local servers that need no key "
                "accept any value.",
            )
        while not self._closed_now():
            try:
                response = await self._transport.open(self._api.path, self.request, endpoint)
                self._response = response
                try:
                    if self._closed_now():  # by another task, while the request was on its way
                        return
                    # Some servers ignore stream: true and answer in one piece.
                    deltas = (
                        self._events(response)
                        if "text/event-stream" in response.headers.get("content-type", "")
                        else self._whole_answer(response)
                    )
                    async for delta in deltas:
                        if self._parser is not None:
                            delta = self._parse(delta)
                            if not delta and not self._held:
                                continue
                        yield delta
                    if not self._closed_now():
                        tail = self._answer_over()
                        if tail or self._held:
                            yield tail
                finally:
                    self._response = None
                    # Closing mid-stream (a cancel) drops the connection: the upstream stops.
                    await response.aclose()
                return
            except errors.UpstreamError as error:
                if self._closed_now():  # what broke after aclose() is aclose()'s doing
                    return
                await self._wait_to_retry(error)

    async def _wait_to_retry(self, error: errors.UpstreamError) -> None:
        """Wait before the next attempt, or raise: the error, or a copy saying why."""
        if self.text_parts or self._tools:  # handed on already: retrying could send it twice
            raise error
        decision = retry.decide(error, self._attempt, self._endpoint, self._taken_timeouts)
        if isinstance(decision, retry.GiveUp):
            if decision.error is error:
                raise error
            raise decision.error from error
        self._attempt += 1
        if isinstance(error, errors.TimedOut) and error.accepted:
            self._taken_timeouts += 1
        log.warning(
            "%s Retrying in %.1f s (attempt %d of %d).",
            error.message, decision.seconds, self._attempt + 1, self._endpoint.max_retries + 1,
        )
        if self._on_retry is not None:
            self._on_retry(error, decision.seconds, self._attempt)
        self._closing = self._closing or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(decision.seconds):
                await self._closing.wait()  # aclose() ends the wait

    # -- closing ---------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Drop the connection (the upstream stops) and end the iteration; idempotent.

        Safe from another task while one is reading: its read fails, and the iteration
        ends quietly. Before the first iteration, nothing is ever sent.
        """
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> TextStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- one response ------------------------------------------------------------------------
    async def _whole_answer(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        endpoint = self._endpoint
        try:
            body = await read_limited(response, endpoint.max_response_chars * 4)
        except httpx.StreamError:
            if self._closed:
                return
            raise
        except httpx.HTTPError as exc:
            raise failures.read_error(exc, endpoint, "") from exc
        try:
            piece = self._api.read_answer(json.loads(body))
        except Exception as exc:  # cattrs raises several types; any means not the API
            raise failures.not_the_api(
                self._api.name, self._api.answer,
                response.headers.get("content-type", ""), body, endpoint,
            ) from exc
        if piece is None:
            raise errors.InvalidResponse("The upstream answered without any choices.")
        self.finish_reason = piece.finish_reason or "stop"
        self.usage = piece.usage
        calls = self._tools.feed(piece.tool_calls) if piece.tool_calls else []
        self._check_size(len(piece.text) + self._tools.chars)
        if piece.text:
            self.text_parts.append(piece.text)
            yield piece.text
        if calls and self._held is not None:
            self._held.extend(calls)  # after the text, as the message has it
            yield ""

    async def _events(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        """The text of the events, one piece per network read (not per event: a read
        often brings many events, and each hand-over costs more than the event)."""
        endpoint = self._endpoint
        decoder = SSEDecoder(max_pending=event_limit(endpoint.max_response_chars))
        last_event = time.monotonic()
        reads = decoded(response)
        try:
            async for raw in reads:
                lines_before = decoder.lines
                try:
                    events = decoder.feed(raw)
                except EventTooLarge as exc:
                    raise self._too_large(exc.limit) from None
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
                            accepted=True,
                            partial_text=self.text,
                        )
                    continue
                last_event = now
                text, done, error = self._take(events)
                if text or self._held:
                    yield text
                if error is not None:
                    raise error
                if done:
                    await _finish_body(reads)
                    return
            text, done, error = self._take(decoder.close())
            if text or self._held:
                yield text
            if error is not None:
                raise error
            if done:
                return
        except httpx.StreamError:
            # Read after aclose(): the iteration ends. Otherwise a bug of ours: let it show.
            if self._closed:
                return
            raise
        except httpx.TimeoutException as exc:
            raise failures.read_error(exc, endpoint, self.text) from exc
        except httpx.HTTPError as exc:
            if self.finish_reason is not None:  # the answer was complete: the drop is harmless
                return
            raise failures.read_error(exc, endpoint, self.text) from exc
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
                elif delta is None:
                    self._take_tool_calls(pieces)
        except errors.UpstreamError as error:
            return "".join(pieces), False, error
        return "".join(pieces), False, None

    def _take_tool_calls(self, pieces: list[str]) -> None:
        """The chunk ``_handle`` kept: its text, then its pieces of tool calls."""
        piece = self._tool_piece
        assert piece is not None
        self._tool_piece = None
        if piece.text:
            self.text_parts.append(piece.text)
            pieces.append(piece.text)
        chars = self._tools.chars
        calls = self._tools.feed(piece.tool_calls)
        self._size += len(piece.text) + self._tools.chars - chars
        self._check_size(self._size)
        if self._held is not None:
            if pieces:  # the text before the calls goes first
                self._held.append(TextDelta("".join(pieces)))
                pieces.clear()
            self._held.extend(calls)

    def _parse(self, raw: str) -> str:
        """The prompt tool format: the text to show of ``raw``; calls go to the assembler."""
        parser = self._parser
        assert parser is not None
        return self._parsed(parser.feed(raw) if raw else [])

    def _parsed(self, parts: list[str | ToolCallChunk]) -> str:
        shown: list[str] = []
        held = self._held
        for part in parts:
            if isinstance(part, str):
                shown.append(part)
                self._shown.append(part)
                continue
            calls = self._tools.feed((part,))
            if held is not None:
                if shown:
                    held.append(TextDelta("".join(shown)))
                    shown.clear()
                held.extend(calls)
        return "".join(shown)

    def _answer_over(self) -> str:
        """The answer came whole: the text the prompt format still held back, and the
        finish reason said the same way for every server."""
        tail = self._parsed(self._parser.close()) if self._parser is not None else ""
        self.finish_reason = finish_reason(self.finish_reason, bool(self._tools))
        return tail

    def _handle(self, event_name: str, data: str) -> str | None:
        """One event's text; None for a chunk with tool calls (kept for ``_take``)."""
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
            fast = self._fast(payload)
            if fast is not None:
                content, finish_reason = fast
                if finish_reason:
                    self.finish_reason = finish_reason
                return content
        if event_name == "error" or payload.get("error"):
            self._raise_error_event(payload)
        try:
            piece = self._api.read_chunk(payload)
        except Exception as exc:  # cattrs raises several types; any means a malformed chunk
            raise errors.InvalidResponse(
                f"The upstream sent a malformed chunk: {self._quote(data)}",
                partial_text=self.text,
            ) from exc
        if piece.usage is not None:
            self.usage = piece.usage
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
        if piece.tool_calls:
            self._tool_piece = piece
            return None
        return piece.text

    def _raise_error_event(self, payload: dict[str, Any]) -> NoReturn:
        body = parse_error(payload.get("error", payload))
        message = failures.scrub(body.message, self._endpoint) or "no message"
        raise errors.StreamBroken(
            f"The upstream reported an error mid-stream: {message}",
            partial_text=self.text,
        )

    def _quote(self, data: str) -> str:
        return failures.quote(data, self._endpoint)

    def _check_size(self, size: int) -> None:
        limit = self._endpoint.max_response_chars
        if size > limit:
            raise errors.ResponseTooLarge(
                f"The answer passed {limit:,} characters and was stopped.",
                hint="Select less code, or raise the setting maxResponseChars.",
                partial_text=self.text,
            )

    def _too_large(self, limit: int) -> errors.ResponseTooLarge:
        return errors.ResponseTooLarge(
            f"One event of the answer passed {limit:,} bytes without ending and was stopped.",
            hint="Select less code, or raise the setting maxResponseChars.",
            partial_text=self.text,
        )


def event_limit(max_response_chars: int) -> int:
    """The most one SSE event may hold, in bytes: room for a chunk carrying the whole
    answer allowed, each character escaped as JSON's longest (6 bytes), and its framing."""
    return max_response_chars * 6 + 64 * 1024



async def _finish_body(reads: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (the end of the chunked body), so that the connection
    goes back to the pool instead of being dropped: no new handshake per action."""
    try:
        async with asyncio.timeout(1.0):
            async for _ in reads:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass
