"""The client of the upstream's OpenAI-compatible APIs: Chat Completions and Completions.

``ChatClient.stream(request, endpoint)`` (chat) and ``stream_completion(request,
endpoint)`` (fill-in-the-middle) give a :class:`TextStream`: iterate it once for the text
as it arrives (or ``stream.events()`` for typed events); afterwards it holds the tool
calls, the finish reason and usage. ``complete`` is the same stream, not streamed, read
to its end.

Tools: a :class:`ChatRequest` with ``tools`` (and ``tool_choice``,
``parallel_tool_calls``); its ``tool_format`` says how they reach the model: natively,
or in the prompt for servers without tool calling (``prompt_tools``). Either way the
same events come out and ``stream.tool_calls`` holds the calls::

    async with client.stream(request, endpoint) as stream:
        async for event in stream.events():
            ...  # TextDelta, ToolCallDelta, Finish
    calls = stream.tool_calls  # then: ChatMessage("assistant", stream.text or None,
                               # tool_calls=calls), and one ChatMessage("tool", result,
                               # tool_call_id=call.id) per call

The pieces, one job each: ``endpoint`` (where), ``wire`` (the JSON), ``api`` (reading
each API's answers), ``transport`` (httpx, sending one request), ``failures`` (typed
errors), ``retry`` (the policy), ``stream`` (the single-use stream, the one retry loop),
``events`` and ``toolcalls`` (what a stream hands on; assembling calls),
``prompt_tools`` (the prompt tool format).
"""

from __future__ import annotations

import attrs

from lspilot.llm import api, prompt_tools
from lspilot.llm.endpoint import Endpoint
from lspilot.llm.retry import MAX_RETRY_AFTER, RetryCallback
from lspilot.llm.stream import TextStream
from lspilot.llm.transport import Transport
from lspilot.llm.wire import ChatRequest, CompletionRequest, Usage

__all__ = [
    "MAX_RETRY_AFTER",
    "ChatClient",
    "Endpoint",
    "RetryCallback",
    "TextStream",
]


class ChatClient:
    """Owns the connection pool; safe to share between concurrent actions."""

    def __init__(self, *, verify_tls: bool = True) -> None:
        self._transport = Transport(verify_tls=verify_tls)

    @property
    def verify_tls(self) -> bool:
        return self._transport.verify_tls

    async def set_verify_tls(self, verify_tls: bool) -> None:
        await self._transport.set_verify_tls(verify_tls)

    async def aclose(self) -> None:
        await self._transport.aclose()

    def forget_stream_options(self, base_url: str) -> None:
        self._transport.forget_stream_options(base_url)

    def stream(
        self,
        request: ChatRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None = None,
    ) -> TextStream:
        """``POST {baseUrl}/chat/completions``, streamed."""
        request = self._transport.with_usage(request, endpoint.base_url)
        return self._chat(attrs.evolve(request, stream=True), endpoint, on_retry)

    def stream_completion(
        self,
        request: CompletionRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None = None,
    ) -> TextStream:
        """``POST {baseUrl}/completions`` (``prompt``, ``suffix``), streamed."""
        request = self._transport.with_usage(request, endpoint.base_url)
        return TextStream(self._transport, api.COMPLETIONS, attrs.evolve(request, stream=True),
                          endpoint, on_retry)

    def whole(
        self,
        request: ChatRequest,
        endpoint: Endpoint,
        on_retry: RetryCallback | None = None,
    ) -> TextStream:
        """The same stream, asking for the answer in one piece (``stream: false``): for
        servers whose tool calls work only so (llama-cpp-python's function calling)."""
        request = attrs.evolve(request, stream=False, stream_options=None)
        return self._chat(request, endpoint, on_retry)

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> tuple[str, Usage | None]:
        """One answer without streaming (used by `lspilot check`)."""
        async with self.whole(request, endpoint) as answer:
            async for _ in answer:
                pass
        return answer.text, answer.usage

    def _chat(
        self, request: ChatRequest, endpoint: Endpoint, on_retry: RetryCallback | None
    ) -> TextStream:
        if request.tool_format == "prompt":
            names = [tool.name for tool in request.tools or ()]
            return TextStream(self._transport, api.CHAT, prompt_tools.prepare(request),
                              endpoint, on_retry, prompt_tools.ToolCallParser(names))
        return TextStream(self._transport, api.CHAT, request, endpoint, on_retry)
