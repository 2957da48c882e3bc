"""Tool-call streaming: lspilot's client against a bare httpx reader (issue 22).

One streamed answer is one tool call whose 2 KB of arguments arrive in 200 deltas, each
SSE event its own HTTP chunk, OpenAI-shaped. lspilot reads it through
``TextStream.events()`` (SSE decoding, the fast path's fallback, cattrs, assembly, typed
events) and the assembled ``stream.tool_calls``; the bare reader is httpx's
``aiter_lines`` with ``json.loads`` per event and the arguments appended to a dict per
call index, the least a Python client can do. Also measured the same way: a plain-text
answer of 200 deltas through ``async for text in stream`` against the same bare reader,
so the text path's cost is seen beside it.

CPU is this thread's (``time.thread_time``): the upstream writes from a thread of its
own, so its work is not counted. Readers alternate, one answer at a time, after a
warm-up; figures are medians per answer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks.scenarios import Config, Figure, summary
from benchmarks.upstream import _END, _HEAD, LoopbackUpstream, chunked

DELTAS = 200
ARGUMENT_BYTES = 2048


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-bench0123456789", "object": "chat.completion.chunk",
        "created": 1_700_000_000, "model": "bench-model", "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return chunked(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


def arguments() -> str:
    """2 KB of JSON arguments, as an edit_file call's would look."""
    text = "    value = compute(value, 'abc')  # line\n" * 100
    data = json.dumps({"path": "src/app/module.py", "old": text[:1000], "new": text[:1000]})
    return data[:ARGUMENT_BYTES]


def tool_call_body() -> bytes:
    args = arguments()
    size = -(-len(args) // DELTAS)
    parts = [args[i:i + size] for i in range(0, len(args), size)]
    events = [_chunk({"role": "assistant", "content": None})]
    events.append(_chunk({"tool_calls": [{"index": 0, "id": "call_bench", "type": "function",
                                          "function": {"name": "edit_file",
                                                       "arguments": ""}}]}))
    events += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
               for part in parts]
    events.append(_chunk({}, finish="tool_calls"))
    events.append(chunked(b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":100,'
                          b'"completion_tokens":200,"total_tokens":300}}\n\n'))
    return _HEAD + b"".join(events) + chunked(b"data: [DONE]\n\n") + _END


def text_body() -> bytes:
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": " tok"}) for _ in range(DELTAS)]
    events.append(_chunk({}, finish="stop"))
    return _HEAD + b"".join(events) + chunked(b"data: [DONE]\n\n") + _END


class ThreadedUpstream(LoopbackUpstream):
    """Answers every request with ``body`` (written at once), from a thread of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.body = b""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        writer.write(self.body)
        await writer.drain()
        return True


async def _bare(http: httpx.AsyncClient, url: str) -> dict[int, list[str]]:
    """The bare reader: lines, json.loads per event, arguments appended per index."""
    calls: dict[int, list[str]] = {}
    text: list[str] = []
    payload = {"model": "bench-model", "stream": True,
               "messages": [{"role": "user", "content": "edit"}]}
    async with http.stream("POST", url, json=payload,
                           headers={"authorization": "Bearer bench"}) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                delta = choice["delta"]
                if delta.get("content"):
                    text.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    calls.setdefault(call["index"], []).append(
                        call["function"].get("arguments") or "")
    return calls


async def _measure(read: Callable[[], Awaitable[Any]]) -> float:
    start = time.thread_time()
    await read()
    return time.thread_time() - start


async def toolcalls(config: Config) -> list[Figure]:
    """CPU per streamed tool call (2 KB in 200 deltas) and per 200-delta text answer."""
    from lspilot.llm.client import ChatClient
    from lspilot.llm.endpoint import Endpoint
    from lspilot.llm.wire import ChatMessage, ChatRequest, ToolSpec

    runs, warmup = config.n(400, 6), config.n(40, 2)
    expected = arguments()
    tool = ToolSpec("edit_file", "Edit a file.", {"type": "object", "properties": {}})
    request = ChatRequest(model="bench-model", messages=(ChatMessage("user", "edit"),),
                          tools=(tool,))
    figures: list[Figure] = []
    with ThreadedUpstream() as upstream:
        endpoint = Endpoint(base_url=upstream.base_url, api_key="bench", max_retries=0)
        url = endpoint.chat_url
        client = ChatClient()
        http = httpx.AsyncClient()

        async def lspilot_tool() -> None:
            stream = client.stream(request, endpoint)
            async with stream:
                async for _ in stream.events():
                    pass
            if stream.tool_calls[0].arguments != expected:
                raise RuntimeError("lspilot assembled another call")

        async def bare_tool() -> None:
            calls = await _bare(http, url)
            if "".join(calls[0]) != expected:
                raise RuntimeError("the bare reader assembled another call")

        async def lspilot_text() -> None:
            stream = client.stream(request, endpoint)
            async with stream:
                async for _ in stream:
                    pass

        async def bare_text() -> None:
            await _bare(http, url)

        try:
            for name, body, ours, theirs, what in (
                ("toolcalls", tool_call_body(), lspilot_tool, bare_tool,
                 "streamed tool call (2 KB arguments in 200 deltas), TextStream.events()"),
                ("toolcalls_text", text_body(), lspilot_text, bare_text,
                 "plain-text answer (200 deltas), async for text in TextStream"),
            ):
                upstream.body = body
                mine: list[float] = []
                bare: list[float] = []
                for i in range(warmup + runs):
                    first, second = (ours, theirs) if i % 2 else (theirs, ours)
                    a = await _measure(first)
                    b = await _measure(second)
                    if i >= warmup:
                        mine.append(a if i % 2 else b)
                        bare.append(b if i % 2 else a)
                us_mine = statistics.median(mine) * 1e6
                us_bare = statistics.median(bare) * 1e6
                ratio = us_mine / max(us_bare, 1e-9)
                figures.append(Figure(
                    name, f"CPU per {what}",
                    f"{us_mine:,.0f} µs; bare httpx reader {us_bare:,.0f} µs: {ratio:.2f}x",
                    "informational", None,
                    {"runs": runs, "deltas": DELTAS, "lspilot_us": summary(
                        [m * 1e6 for m in mine]), "bare_httpx_us": summary(
                        [b * 1e6 for b in bare]), "ratio_of_medians": ratio}))
        finally:
            await client.aclose()
            await http.aclose()
    return figures


TOOLCALL_BENCHMARKS = {"toolcalls": toolcalls}
