"""The load upstream: an OpenAI-compatible SSE server on 127.0.0.1 for the benchmarks.

It runs on the benchmark's own event loop (so its stamps and the load client's stamps
come from one clock, ``time.perf_counter``). Each request is matched to a
:class:`Script` by a ``bench-id:N`` marker that the load client puts in the action's
instruction (it reaches the prompt); requests without a known marker get ``default``.

A script streams its content deltas at a rate, or as fast as the socket takes them, or
all in one write ("instant"); the upstream stamps when it wrote the first content chunk
and ``[DONE]`` (right after handing the bytes to the kernel).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MARK = re.compile(rb"bench-id:(\d+)")
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")

_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_END = b"0\r\n\r\n"


def event(
    content: str | None = None,
    *,
    role: str | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> bytes:
    """One SSE event shaped like OpenAI's ``chat.completion.chunk`` (about 200 bytes)."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    payload: dict[str, Any] = {
        "id": "chatcmpl-bench0123456789",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "bench-model",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        payload["choices"] = []
        payload["usage"] = usage
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def chunked(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (the transfer encoding OpenAI streams with)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def stream_tail(prompt_tokens: int, completion_tokens: int) -> bytes:
    """What follows an answer's content: the finish reason and the usage (then ``DONE``)."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    return chunked(event(finish="stop")) + chunked(event(usage=usage))


DONE = chunked(b"data: [DONE]\n\n") + _END  # the stream's last event and HTTP chunk


@dataclass
class Script:
    """How to answer one request."""

    content: Sequence[str]
    rate: float | None = None  # content chunks per second; None: as fast as possible
    instant: bool = False  # the whole answer in one write, at once
    pause_before_first: float = 0.0  # after the headers and role chunk (the model "thinks")
    pause_after_first: float = 0.0  # lets the client's first-words stamp land on an idle loop
    pause_before_done: float = 0.0  # lets the server go idle before [DONE] (finish latency)


@dataclass
class Stamps:
    received: float = 0.0  # the request body was read
    first_content: float | None = None  # the first content chunk was written
    done: float | None = None  # data: [DONE] was written
    chunks: int = 0


@dataclass
class LoopbackUpstream:
    """An upstream's server on 127.0.0.1 at a free port. It reads each request of a
    keep-alive connection (httpx reuses it) and hands its body to ``respond``; the writers
    are kept in ``_writers``, so ``close`` can end them."""

    connections: int = field(default=0, kw_only=True)
    nodelay: bool | None = field(default=None, kw_only=True)  # read back from the last socket
    _server: asyncio.Server | None = field(default=None, kw_only=True)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, kw_only=True)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False ends the connection (the client closed it)."""
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        # Nagle off, as real gateways send (asyncio sets it on TCP transports already; made
        # explicit and read back so the benchmarks can show it).
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        try:
            while True:  # HTTP/1.1 keep-alive: httpx reuses the connection
                head = await reader.readuntil(b"\r\n\r\n")
                match = _LENGTH.search(head)
                body = await reader.readexactly(int(match.group(1)) if match else 0)
                if not await self.respond(body, reader, writer):
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                json.JSONDecodeError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)


@dataclass
class LoadUpstream(LoopbackUpstream):
    default: Script | None = None
    scripts: dict[int, Script] = field(default_factory=dict)
    stamps: dict[int, Stamps] = field(default_factory=dict)
    requests: int = 0
    _pieces: dict[str, bytes] = field(default_factory=dict)

    def _piece(self, content: str) -> bytes:
        piece = self._pieces.get(content)
        if piece is None:
            piece = self._pieces[content] = chunked(event(content))
        return piece

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        stamps = Stamps(received=time.perf_counter())
        self.requests += 1
        mark = MARK.search(body)
        ident = int(mark.group(1)) if mark else -1
        self.stamps[ident] = stamps
        script = self.scripts.pop(ident, None) or self.default
        if script is None:
            message = b'{"error":{"message":"no script for this request"}}'
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: "
                         b"application/json\r\ncontent-length: %d\r\n\r\n%b"
                         % (len(message), message))
            await writer.drain()
            return True
        await self._stream(writer, script, stamps)
        return True

    async def _stream(self, writer: asyncio.StreamWriter, script: Script, stamps: Stamps) -> None:
        role = chunked(event("", role="assistant"))
        n = len(script.content)
        tail = stream_tail(100, n)
        if script.instant:
            writer.write(_HEAD + role + b"".join(self._piece(c) for c in script.content)
                         + tail + DONE)
            stamps.first_content = stamps.done = time.perf_counter()
            stamps.chunks = n
            await writer.drain()
            return
        writer.write(_HEAD + role)
        if script.pause_before_first:
            await writer.drain()
            await asyncio.sleep(script.pause_before_first)
        rate = script.rate
        start = time.perf_counter()
        for i, content in enumerate(script.content):
            if rate is not None:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(self._piece(content))
            if i == 0:
                stamps.first_content = time.perf_counter()
                if script.pause_after_first:
                    await asyncio.sleep(script.pause_after_first)
                    start += script.pause_after_first
            if rate is not None or i % 64 == 0:
                await writer.drain()  # back-pressure: never buffer more than the socket takes
            stamps.chunks = i + 1
        writer.write(tail)
        await writer.drain()
        if script.pause_before_done:
            await asyncio.sleep(script.pause_before_done)
        writer.write(DONE)
        stamps.done = time.perf_counter()
        await writer.drain()
