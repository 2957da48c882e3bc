"""The wire types of Chat Completions and (legacy, fill-in-the-middle) Completions, and
the cattrs converter that maps them to JSON.

Requests omit every parameter the user did not set (no ``"temperature": null``);
responses ignore fields we do not know, so a server that adds fields never breaks us.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import cattrs
from attrs import define, field
from cattrs.gen import make_dict_unstructure_fn, override


@define(frozen=True)
class ChatMessage:
    role: str
    content: str


@define(frozen=True)
class StreamOptions:
    include_usage: bool = True


@define(frozen=True, kw_only=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    stream: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    stream_options: StreamOptions | None = None


@define(frozen=True, kw_only=True)
class CompletionRequest:
    """``POST {baseUrl}/completions``: text to continue, and for fill-in-the-middle models
    the text after the gap (``suffix``), as llama.cpp's and vLLM's servers take it."""

    model: str
    prompt: str
    suffix: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    stream: bool = True
    stream_options: StreamOptions | None = None


@define(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@define(frozen=True)
class Delta:
    role: str | None = None
    content: str | None = None


@define(frozen=True)
class ChunkChoice:
    index: int = 0
    delta: Delta = field(factory=Delta)
    finish_reason: str | None = None


@define(frozen=True)
class ErrorBody:
    message: str = ""
    type: str | None = None
    code: str | None = None


@define(frozen=True)
class ChatChunk:
    choices: tuple[ChunkChoice, ...] = ()
    usage: Usage | None = None
    error: ErrorBody | None = None


@define(frozen=True)
class CompletionMessage:
    role: str | None = None
    content: str | None = None


@define(frozen=True)
class CompletionChoice:
    index: int = 0
    message: CompletionMessage = field(factory=CompletionMessage)
    finish_reason: str | None = None


@define(frozen=True)
class ChatCompletion:
    choices: tuple[CompletionChoice, ...] = ()
    usage: Usage | None = None


@define(frozen=True)
class TextChoice:
    index: int = 0
    text: str | None = None
    finish_reason: str | None = None


@define(frozen=True)
class TextCompletion:
    """A Completions answer; streamed chunks have the same shape, a piece of text each."""

    choices: tuple[TextChoice, ...] = ()
    usage: Usage | None = None
    error: ErrorBody | None = None


def _structure_error(value: Any, _: Any) -> ErrorBody:
    # Servers disagree on the shape: {"message": ..}, a bare string, codes as ints.
    if isinstance(value, str):
        return ErrorBody(message=value)
    if not isinstance(value, dict):
        return ErrorBody(message=str(value))
    code = value.get("code")
    kind = value.get("type")
    return ErrorBody(
        message=str(value.get("message") or value.get("detail") or ""),
        type=None if kind is None else str(kind),
        code=None if code is None else str(code),
    )


def _structure_optional_int(value: Any, _: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(ErrorBody, _structure_error)
    conv.register_structure_hook(
        Usage,
        lambda v, _: Usage(
            **{
                f.name: _structure_optional_int(v.get(f.name), None)
                for f in attrs.fields(Usage)
            }
        )
        if isinstance(v, dict)
        else Usage(),
    )
    # Omit what is unset: a null parameter is not "the model's default" to every server.
    for request_type in (ChatRequest, CompletionRequest):
        conv.register_unstructure_hook(
            request_type,
            make_dict_unstructure_fn(
                request_type, conv, _cattrs_omit_if_default=True,
                stream=override(omit_if_default=False),
            ),
        )
    return conv


# Built on first use: generating the (un)structuring code is start-up time otherwise.
converter = functools.cache(_make_converter)


def request_json(request: ChatRequest | CompletionRequest) -> dict[str, Any]:
    data: dict[str, Any] = converter().unstructure(request)
    return data


def parse_chunk(data: Any) -> ChatChunk:
    return converter().structure(data, ChatChunk)


def parse_completion(data: Any) -> ChatCompletion:
    return converter().structure(data, ChatCompletion)


def parse_text_completion(data: Any) -> TextCompletion:
    return converter().structure(data, TextCompletion)


def parse_error(data: Any) -> ErrorBody:
    return _structure_error(data, None)
