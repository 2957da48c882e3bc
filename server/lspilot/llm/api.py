"""The two OpenAI-style APIs the client speaks, and how to read their answers.

An :class:`Api` says where its requests go and how to read one streamed chunk (a fast
path for the usual shape, a lenient typed path for the rest) and a whole, non-streamed
answer. The stream does everything else the same way for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from attrs import define

from lspilot.llm.endpoint import CHAT_PATH, COMPLETIONS_PATH
from lspilot.llm.wire import (
    TextCompletion,
    ToolCallChunk,
    Usage,
    parse_chunk,
    parse_completion,
    parse_text_completion,
)

# The usual chunk's text and finish reason, or None for anything else.
FastPath = Callable[[dict[str, Any]], "tuple[str, str | None] | None"]


@define(frozen=True, slots=True)
class Piece:
    """What one chunk (or a whole answer) says, read the typed way."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallChunk, ...] = ()


@define(frozen=True)
class Api:
    path: str
    # As the user's messages name it: "a web page, not {name}".
    name: str
    # "something that is not {answer}".
    answer: str
    fast: FastPath
    # Both raise (any exception) on a malformed payload; ``read_answer`` returns None for
    # an answer without choices.
    read_chunk: Callable[[Any], Piece]
    read_answer: Callable[[Any], Piece | None]


def _fast_delta(payload: dict[str, Any]) -> tuple[str, str | None] | None:
    """The usual chunk's text and finish reason, read straight from the dict.

    Almost every chunk has this one shape; structuring it with cattrs costs fifteen
    times more (see benchmarks/README.md). Anything else (usage, errors, odd types,
    pieces of tool calls) returns None and goes through the typed path.
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
    if type(delta) is dict:
        content = delta.get("content")
        if delta.get("tool_calls"):
            return None
    else:
        content = None
    finish_reason = choice.get("finish_reason")
    if (content is not None and type(content) is not str) or (
        finish_reason is not None and type(finish_reason) is not str
    ):
        return None
    return content or "", finish_reason


def _fast_text(payload: dict[str, Any]) -> tuple[str, str | None] | None:
    """The Completions twin of :func:`_fast_delta`: ``choices[0].text``."""
    if "usage" in payload or "error" in payload:
        return None
    choices = payload.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    text = choice.get("text")
    finish_reason = choice.get("finish_reason")
    if (text is not None and type(text) is not str) or (
        finish_reason is not None and type(finish_reason) is not str
    ):
        return None
    return text or "", finish_reason


def _fast_tool_chunk(payload: dict[str, Any]) -> Piece | None:
    """A chunk with pieces of tool calls in the usual shape, read straight from the dict
    (cattrs costs a third of such a chunk's time); None for anything else."""
    if "usage" in payload or "error" in payload:
        return None
    choices = payload.get("choices")
    if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
        return None
    choice = choices[0]
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    content = delta.get("content")
    finish_reason = choice.get("finish_reason")
    calls = delta.get("tool_calls")
    if (type(calls) is not list or (content is not None and type(content) is not str)
            or (finish_reason is not None and type(finish_reason) is not str)):
        return None
    pieces = []
    for call in calls:
        if type(call) is not dict:
            return None
        index, ident, function = call.get("index"), call.get("id"), call.get("function")
        if function is None:
            function = {}
        elif type(function) is not dict:
            return None
        name, arguments = function.get("name"), function.get("arguments")
        if ((index is not None and type(index) is not int)
                or (ident is not None and type(ident) is not str)
                or (name is not None and type(name) is not str)
                or (arguments is not None and type(arguments) is not str)):
            return None
        pieces.append(ToolCallChunk(index, ident or None, name, arguments))
    return Piece(content or "", finish_reason, None, tuple(pieces))


def _chat_chunk(payload: Any) -> Piece:
    if type(payload) is dict:
        fast = _fast_tool_chunk(payload)
        if fast is not None:
            return fast
    chunk = parse_chunk(payload)
    if not chunk.choices:
        return Piece("", None, chunk.usage)
    choice = chunk.choices[0]
    return Piece(choice.delta.content or "", choice.finish_reason, chunk.usage,
                 choice.delta.tool_calls or ())


def _chat_answer(data: Any) -> Piece | None:
    completion = parse_completion(data)
    if not completion.choices:
        return None
    choice = completion.choices[0]
    message = choice.message
    # A whole answer lists its calls in order; some servers leave out their index.
    calls = tuple(
        attrs.evolve(call, index=n) for n, call in enumerate(message.tool_calls or ())
    )
    return Piece(message.content or "", choice.finish_reason, completion.usage, calls)


def _text_chunk(payload: Any) -> Piece:
    completion = parse_text_completion(payload)
    return _text_piece(completion) or Piece("", None, completion.usage)


def _text_answer(data: Any) -> Piece | None:
    return _text_piece(parse_text_completion(data))


def _text_piece(completion: TextCompletion) -> Piece | None:
    if not completion.choices:
        return None
    choice = completion.choices[0]
    return Piece(choice.text or "", choice.finish_reason, completion.usage)


CHAT = Api(
    path=CHAT_PATH,
    name="the Chat Completions API",
    answer="a chat completion",
    fast=_fast_delta,
    read_chunk=_chat_chunk,
    read_answer=_chat_answer,
)

COMPLETIONS = Api(
    path=COMPLETIONS_PATH,
    name="the Completions API",
    answer="a completion",
    fast=_fast_text,
    read_chunk=_text_chunk,
    read_answer=_text_answer,
)
