"""A scripted, OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks real HTTP/1.1 (keep-alive, chunked streaming) on its own thread and event
loop, so sync tests, pytest-lsp tests and editor tests can all use it. Each request
takes the next queued :class:`Reply` (or ``default``) and is recorded, so tests can
assert what lspilot sent. Faults are scripted too: status codes and headers, delays,
cutting the connection mid-stream, going silent, raw bytes.

Tool calls: :meth:`Reply.deltas` streams any deltas (``tool_call_deltas`` makes a call's,
its arguments split into pieces); :meth:`Reply.tool_answer` answers one whole message.
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted answer. Build with the class methods, not by hand."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # Body pieces, each written (and flushed) separately, ``delay`` seconds apart.
    pieces: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    streaming: bool = False
    # After this many pieces: "cut" closes the socket, "hang" stops writing but keeps
    # the connection open until the client goes away.
    stop_after: int | None = None
    stop_how: str = "cut"
    # After the first piece (a stream's role chunk), wait this long, or until ``gate`` is
    # set, before the rest: a model that has not produced its first token yet.
    stall: float = 0.0
    gate: threading.Event | None = None
    # The answer as plain text, used when a non-streaming request gets a stream reply.
    text: str = ""
    usage: dict[str, int] | None = None
    finish_reason: str | None = "stop"
    # Raw bytes replace the whole HTTP response (status line included).
    raw: bytes | None = None
    # The calls of the answer, used when a non-streaming request gets a stream reply.
    tool_calls: list[dict[str, Any]] | None = None
    # Seconds to hold the request before answering anything, as a gateway queueing
    # requests over its rate limit does.
    hold: float = 0.0
    # Write the status line and headers one byte at a time, this many seconds apart.
    trickle_head: float | None = None

    @classmethod
    def stream(
        cls,
        chunks: Iterable[str],
        *,
        delay: float = 0.0,
        finish_reason: str | None = "stop",
        usage: dict[str, int] | bool | None = True,
        role_chunk: bool = True,
        done: bool = True,
        cut_after: int | None = None,
        hang_after: int | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        line_end: str = "\n",
        split_bytes: int | None = None,
        stall: float = 0.0,
        gate: threading.Event | None = None,
    ) -> Reply:
        """An SSE chat-completion stream whose deltas are ``chunks``.

        ``cut_after``/``hang_after`` count SSE events (the role chunk included).
        ``split_bytes`` re-splits the whole body into pieces of that many bytes.
        ``stall`` seconds (or until ``gate`` is set) pass between the role chunk and the
        first content: the time to first token.
        """
        return cls.deltas(
            [{"content": chunk} for chunk in chunks], delay=delay,
            finish_reason=finish_reason, usage=usage, role_chunk=role_chunk, done=done,
            cut_after=cut_after, hang_after=hang_after, status=status, headers=headers,
            line_end=line_end, split_bytes=split_bytes, stall=stall, gate=gate,
        )

    @classmethod
    def deltas(
        cls,
        deltas: Iterable[dict[str, Any]],
        *,
        delay: float = 0.0,
        finish_reason: str | None = "stop",
        usage: dict[str, int] | bool | None = True,
        role_chunk: bool = True,
        done: bool = True,
        cut_after: int | None = None,
        hang_after: int | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        line_end: str = "\n",
        split_bytes: int | None = None,
        stall: float = 0.0,
        gate: threading.Event | None = None,
    ) -> Reply:
        """An SSE chat-completion stream, one chunk per delta as given (``{"content"}``,
        ``{"tool_calls": [...]}``, both); otherwise as :meth:`stream`."""
        deltas = list(deltas)
        chunks = [d["content"] for d in deltas if d.get("content")]
        text = "".join(chunks)
        calls = _whole_calls(deltas)
        if usage is True:
            usage = {
                "prompt_tokens": 11,
                "completion_tokens": max(1, len(deltas)),
                "total_tokens": 11 + max(1, len(deltas)),
            }
        elif usage is False:
            usage = None
        events: list[dict[str, Any]] = []
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake"}
        if role_chunk:
            events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for delta in deltas:
            events.append(
                {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            )
        if finish_reason is not None:
            events.append(
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]}
            )
        if usage is not None:
            events.append({**base, "choices": [], "usage": usage})
        nl = line_end
        pieces = [f"data: {json.dumps(e)}{nl}{nl}".encode() for e in events]
        if done:
            pieces.append(f"data: [DONE]{nl}{nl}".encode())
        if split_bytes:
            body = b"".join(pieces)
            pieces = [body[i : i + split_bytes] for i in range(0, len(body), split_bytes)]
        stop_after, stop_how = None, "cut"
        if cut_after is not None:
            stop_after = cut_after
        elif hang_after is not None:
            stop_after, stop_how = hang_after, "hang"
        return cls(
            status=status,
            headers={"content-type": "text/event-stream", **(headers or {})},
            pieces=pieces,
            delay=delay,
            streaming=True,
            stop_after=stop_after,
            stop_how=stop_how,
            text=text,
            usage=usage,
            finish_reason=finish_reason,
            stall=stall,
            gate=gate,
            tool_calls=calls or None,
        )

    @classmethod
    def tool_answer(
        cls, calls: Iterable[tuple[str, str, str]], *, content: str | None = None,
        finish_reason: str | None = "tool_calls", usage: dict[str, int] | None = None,
    ) -> Reply:
        """A whole (not streamed) answer whose message calls tools: ``(id, name,
        arguments)`` each."""
        return _as_completion(cls(
            text=content or "", usage=usage, finish_reason=finish_reason,
            tool_calls=[{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                        for i, n, a in calls]))

    @classmethod
    def completion_stream(
        cls,
        chunks: Iterable[str],
        *,
        delay: float = 0.0,
        finish_reason: str | None = "stop",
        usage: dict[str, int] | bool | None = True,
        done: bool = True,
        cut_after: int | None = None,
        hang_after: int | None = None,
    ) -> Reply:
        """An SSE stream of the legacy Completions API (``/completions``), as llama.cpp's
        and vLLM's servers send it: ``{"choices": [{"text": ...}]}`` per chunk, then a
        finish chunk and a usage chunk. ``cut_after``/``hang_after`` count SSE events."""
        chunks = list(chunks)
        if usage is True:
            usage = {"prompt_tokens": 7, "completion_tokens": max(1, len(chunks)),
                     "total_tokens": 7 + max(1, len(chunks))}
        elif usage is False:
            usage = None
        base = {"id": "cmpl-fake", "object": "text_completion", "model": "fake"}
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "text": chunk, "logprobs": None,
                                  "finish_reason": None}]}
            for chunk in chunks
        ]
        if finish_reason is not None:
            events.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None,
                                                "finish_reason": finish_reason}]})
        if usage is not None:
            events.append({**base, "choices": [], "usage": usage})
        pieces = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
        if done:
            pieces.append(b"data: [DONE]\n\n")
        stop_after, stop_how = None, "cut"
        if cut_after is not None:
            stop_after = cut_after
        elif hang_after is not None:
            stop_after, stop_how = hang_after, "hang"
        return cls(
            headers={"content-type": "text/event-stream"},
            pieces=pieces,
            delay=delay,
            streaming=True,
            stop_after=stop_after,
            stop_how=stop_how,
        )

    @classmethod
    def text_completion(
        cls, text: str, *, finish_reason: str | None = "stop",
        usage: dict[str, int] | None = None,
    ) -> Reply:
        """A whole (not streamed) legacy Completions answer: ``{"choices": [{"text"}]}``."""
        body: dict[str, Any] = {
            "id": "cmpl-fake", "object": "text_completion", "model": "fake",
            "choices": [{"index": 0, "text": text, "logprobs": None,
                         "finish_reason": finish_reason}],
        }
        if usage is not None:
            body["usage"] = usage
        return cls.json(body)

    @classmethod
    def sse(
        cls, pieces: Iterable[str | bytes], *, delay: float = 0.0, status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """A streamed body written exactly as given, piece by piece."""
        return cls(
            status=status,
            headers={"content-type": "text/event-stream", **(headers or {})},
            pieces=[p.encode() if isinstance(p, str) else p for p in pieces],
            delay=delay,
            streaming=True,
        )

    @classmethod
    def compressed(
        cls, body: bytes, *, encoding: str = "gzip", content_type: str = "text/event-stream",
        status: int = 200,
    ) -> Reply:
        """``body`` (already compressed by the caller) sent with ``content-encoding``, as
        a server that compresses whatever the client asked for would send it."""
        return cls(status=status, headers={"content-type": content_type,
                                           "content-encoding": encoding},
                   pieces=[body], streaming=True)

    @classmethod
    def json(
        cls, body: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> Reply:
        return cls(
            status=status,
            headers={"content-type": "application/json", **(headers or {})},
            pieces=[json.dumps(body).encode()],
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""
        return cls.json(
            {"error": {"message": message, "type": type, "code": None}},
            status=status,
            headers=headers,
        )

    @classmethod
    def body(
        cls, content: str | bytes, *, status: int = 200, content_type: str = "text/html"
    ) -> Reply:
        data = content.encode() if isinstance(content, str) else content
        return cls(status=status, headers={"content-type": content_type}, pieces=[data])

    @classmethod
    def raw_bytes(cls, data: bytes) -> Reply:
        """Write these bytes as the whole response, then close."""
        return cls(raw=data)

    @classmethod
    def close(cls) -> Reply:
        """Close the connection without answering."""
        return cls(raw=b"")


@dataclass
class Recorded:
    """A request as the fake upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    # Set when the client closed the connection while this request's answer was open.
    client_closed: threading.Event = field(default_factory=threading.Event)
    client_closed_at: float | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeUpstream:
    """Context manager: ``with FakeUpstream() as upstream: upstream.base_url ...``."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        # With an SSL context it serves HTTPS (for certificate-verification tests).
        self._ssl = ssl_context
        self.default: Reply = Reply.stream(["Hello from the fake upstream."])
        self.requests: list[Recorded] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    # -- scripting -----------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
                self._changed.wait(left)
            return list(self.requests)

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=2) if tasks else None

    # -- HTTP ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                recorded = await self._read_request(reader)
                if recorded is None:
                    return
                with self._changed:
                    self.requests.append(recorded)
                    reply = self._queue.popleft() if self._queue else self.default
                    self._changed.notify_all()
                keep_open = await self._answer(recorded, reply, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # CancelledError: the fake is shutting down; end this connection quietly.
            return
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Recorded | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return Recorded(method, path, headers, body, time.monotonic())

    async def _answer(
        self,
        recorded: Recorded,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if reply.hold:
            await asyncio.sleep(reply.hold)
        if reply.raw is not None:
            writer.write(reply.raw)
            await writer.drain()
            return False
        wants_stream = bool((recorded.json or {}).get("stream")) if recorded.body else False
        if (reply.streaming and not wants_stream and reply.status == 200
                and (reply.text or reply.tool_calls)):
            reply = _as_completion(reply)
        status_line = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
        headers = dict(reply.headers)
        if reply.streaming:
            headers["transfer-encoding"] = "chunked"
        else:
            headers["content-length"] = str(sum(len(p) for p in reply.pieces))
        head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        if reply.trickle_head is not None:
            for byte in head.encode("latin-1"):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(reply.trickle_head)
        else:
            writer.write(head.encode("latin-1"))
        if not reply.streaming:
            writer.write(b"".join(reply.pieces))
            await writer.drain()
            return True
        watcher = asyncio.ensure_future(self._watch_close(recorded, reader))
        try:
            for index, piece in enumerate(reply.pieces):
                if reply.stop_after is not None and index >= reply.stop_after:
                    if reply.stop_how == "hang":
                        await watcher
                    return False
                if reply.delay and index:
                    await asyncio.sleep(reply.delay)
                if index == 1 and (reply.stall or reply.gate is not None):
                    await _stall(reply, watcher)
                if watcher.done():
                    return False
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            # The client closed while a piece was on its way: the write noticed before the
            # watcher read the end of the connection (on a loaded machine either comes first).
            if not recorded.client_closed.is_set():
                recorded.client_closed_at = time.monotonic()
                recorded.client_closed.set()
            return False
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch_close(self, recorded: Recorded, reader: asyncio.StreamReader) -> None:
        # A client that sends nothing more while a stream is open and then hits EOF has
        # closed the connection: that is how a cancelled request looks from here.
        try:
            while await reader.read(1024):
                pass
        except ConnectionError:
            pass
        recorded.client_closed_at = time.monotonic()
        recorded.client_closed.set()


async def _stall(reply: Reply, watcher: asyncio.Future[None]) -> None:
    """Hold the stream for ``reply.stall`` seconds or until its gate opens; a client that
    closes the connection meanwhile ends the wait."""
    deadline = time.monotonic() + reply.stall if reply.stall else None
    while not watcher.done():
        if reply.gate is not None and reply.gate.is_set():
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        if reply.gate is not None:  # a threading.Event: looked at every 10 ms
            left = 0.01 if left is None else min(0.01, left)
        await asyncio.wait([watcher], timeout=left)


def _as_completion(reply: Reply) -> Reply:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text or None},
                "finish_reason": reply.finish_reason,
            }
        ],
    }
    if reply.tool_calls:
        body["choices"][0]["message"]["tool_calls"] = reply.tool_calls
    else:
        body["choices"][0]["message"]["content"] = reply.text
    if reply.usage is not None:
        body["usage"] = reply.usage
    return Reply.json(body)


def tool_call_deltas(
    name: str,
    arguments: str,
    *,
    index: int | None = 0,
    id: str | None = "call_fake0",
    pieces: int = 1,
    later_index: bool = True,
    later_id: bool = False,
) -> list[dict[str, Any]]:
    """The deltas of one streamed call, as OpenAI sends them: the first with ``id``,
    ``type`` and ``name`` (and no arguments), then ``arguments`` in ``pieces`` pieces.
    ``later_index``/``later_id``: whether the later deltas repeat them (servers differ);
    ``index``/``id`` None leaves them out of every delta."""
    size = max(1, -(-len(arguments) // max(1, pieces)))
    parts = [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
    first: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": ""}}
    if index is not None:
        first["index"] = index
    if id is not None:
        first["id"] = id
    out = [{"tool_calls": [first]}]
    for part in parts:
        call: dict[str, Any] = {"function": {"arguments": part}}
        if later_index and index is not None:
            call["index"] = index
        if later_id and id is not None:
            call["id"] = id
        out.append({"tool_calls": [call]})
    return out


def _whole_calls(deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls a list of deltas makes, by the book (index, else the last call)."""
    calls: dict[int, dict[str, Any]] = {}
    last = -1
    for delta in deltas:
        for piece in delta.get("tool_calls") or ():
            last = piece.get("index", last if last >= 0 else 0)
            call = calls.setdefault(last, {"id": piece.get("id"), "type": "function",
                                           "function": {"name": "", "arguments": ""}})
            call["id"] = call["id"] or piece.get("id")
            function = piece.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
