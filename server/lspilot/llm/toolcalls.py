"""Assembling tool calls from the pieces a stream sends.

The rules, for the servers that do not send every piece of every call by the book:

- a piece belongs to the call with its ``index``;
- a piece without an ``index`` belongs to the call with its ``id``, or, with neither,
  to the last call (some servers send both only on a call's first piece);
- a piece whose ``id`` differs from the one its ``index`` already has starts a new call
  (servers that number every call 0);
- ``arguments`` are concatenated as they come, split anywhere;
- a call that never got an ``id`` gets ``call_<n>`` (``n`` its position), stable for
  the same answer.

Pure and synchronous: the stream feeds it, and ``llm/prompt_tools.py`` feeds it the
calls it reads out of text.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import define, field

from lspilot.llm.events import ToolCallDelta
from lspilot.llm.wire import ToolCall, ToolCallChunk


@define(slots=True)
class _Call:
    id: str | None
    name: str
    indexed: bool  # the server gave it an index
    arguments: list[str] = field(factory=list)


class ToolCallAssembler:
    """Feed it each chunk's ``tool_calls``; ``calls()`` gives them whole."""

    __slots__ = ("_by_index", "_calls", "chars")

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        # The server's index → our position; they differ once a server reuses an index.
        self._by_index: dict[int, int] = {}
        self.chars = 0  # names and arguments so far: they count towards the answer's size

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, chunks: Iterable[ToolCallChunk]) -> list[ToolCallDelta]:
        """One chunk's pieces; returns them as events, numbered by our position."""
        out = []
        for chunk in chunks:
            position = self._position(chunk)
            call = self._calls[position]
            name = chunk.name
            if name and name != call.name:
                # Normally sent once; a server that streams the name in pieces adds to it.
                call.name = name if not call.name else call.name + name
            else:
                name = None
            arguments = chunk.arguments or ""
            if arguments:
                call.arguments.append(arguments)
            self.chars += len(arguments) + len(name or "")
            out.append(ToolCallDelta(position, chunk.id, name, arguments))
        return out

    def _position(self, chunk: ToolCallChunk) -> int:
        calls = self._calls
        if chunk.index is not None:
            position = self._by_index.get(chunk.index)
            if position is not None:
                known = calls[position].id
                if chunk.id is None or known is None or chunk.id == known:
                    if known is None and chunk.id is not None:
                        calls[position].id = chunk.id
                    return position
            elif calls and not calls[-1].indexed and chunk.id in (None, calls[-1].id):
                # The call began without an index and this piece names one: the same call.
                self._by_index[chunk.index] = position = len(calls) - 1
                calls[position].indexed = True
                return position
            # A new index, or an index reused for a call with another id.
            self._by_index[chunk.index] = len(calls)
        elif chunk.id is not None:
            for position in range(len(calls) - 1, -1, -1):
                if calls[position].id == chunk.id:
                    return position
        elif calls:
            return len(calls) - 1
        calls.append(_Call(chunk.id, "", chunk.index is not None))
        return len(calls) - 1

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call.id or f"call_{n}", call.name, "".join(call.arguments))
            for n, call in enumerate(self._calls)
        )


def finish_reason(reason: str | None, has_calls: bool) -> str | None:
    """``tool_calls`` when the answer has calls and the server said it simply stopped
    (some say ``stop``, older ones ``function_call``); ``length`` and the rest stay."""
    if has_calls and reason in ("stop", "function_call", "tool_calls", "eos", None):
        return "tool_calls"
    return reason
