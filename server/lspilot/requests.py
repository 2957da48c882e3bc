"""The one way a chat request is built from the settings: the model, the sampling
parameters an action may override, tools, and how tools reach the backend.

Before this, five places built requests from settings each their own way, and the test
repair dropped ``topP`` and ``stop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from lspilot.llm.wire import ChatMessage, ChatRequest, ToolFormat, ToolSpec
from lspilot.settings import Settings

T = TypeVar("T")


class Overrides(Protocol):
    """What an action may set for itself (an ``actions`` entry, a built-in action)."""

    @property
    def model(self) -> str | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def stop(self) -> tuple[str, ...] | None: ...


class _NoOverrides:
    model = temperature = top_p = max_tokens = stop = None


def chat_request(settings: Settings, messages: Sequence[ChatMessage], *,
                 action: Overrides | None = None, model: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 tools: Sequence[ToolSpec] = (), tool_format: ToolFormat = "native",
                 ) -> ChatRequest:
    """A streamed request: the action's own values first, then the settings'.

    ``model``, ``max_tokens`` and ``temperature`` are the caller's defaults where the
    settings leave one unset (ghost text's cap, next edits' temperature 0); ``tools`` are
    offered with ``tool_choice: auto``.
    """
    chosen: Overrides = action or _NoOverrides()
    return ChatRequest(
        model=chosen.model or model or settings.model,
        messages=tuple(messages),
        temperature=_first(chosen.temperature, settings.temperature, temperature),
        top_p=_first(chosen.top_p, settings.top_p),
        max_tokens=_first(chosen.max_tokens, settings.max_tokens, max_tokens),
        stop=_first(chosen.stop, settings.stop),
        tools=tuple(tools) or None, tool_choice="auto" if tools else None,
        tool_format=tool_format,
    )


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)
