"""What a stream hands on, typed: text, pieces of tool calls, and how the answer ended.

``TextStream.events()`` yields these in the order the answer brought them;
``async for text in stream`` yields only the text. Either way, once the stream is over,
``stream.tool_calls`` holds the calls assembled whole.
"""

from __future__ import annotations

from attrs import define

from lspilot.llm.wire import Usage


@define(frozen=True, slots=True)
class TextDelta:
    """Text of the answer, as it arrived (one network read's worth, or less)."""

    text: str


@define(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call number ``index`` (0, 1, … in the order the calls began).

    The first piece of a call has its ``name`` (and the ``id``, when the server sent one
    with it); later pieces add to ``arguments``. The assembled ``stream.tool_calls`` is
    what to act on: it has every call whole, with an ``id`` always.
    """

    index: int
    id: str | None
    name: str | None
    arguments: str


@define(frozen=True, slots=True)
class Finish:
    """The last event: why the answer ended (``"tool_calls"`` whenever it has calls, even
    from servers that say ``"stop"``) and the usage the server reported, if any."""

    reason: str | None
    usage: Usage | None


StreamEvent = TextDelta | ToolCallDelta | Finish
