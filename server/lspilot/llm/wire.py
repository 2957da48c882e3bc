"""The wire types of Chat Completions and (legacy, fill-in-the-middle) Completions, and
the cattrs converter that maps them to JSON.

Requests omit every parameter the user did not set (no ``"temperature": null``);
responses ignore fields we do not know, so a server that adds fields never breaks us.

Tool calling: a request offers :class:`ToolSpec` s (``tools``); the answer's assistant
message carries :class:`ToolCall` s, sent back in the conversation on an assistant
:class:`ChatMessage` (``tool_calls``), each followed by a ``role: "tool"`` message with
its ``tool_call_id``. Streamed answers carry :class:`ToolCallChunk` pieces that
``llm/toolcalls.py`` assembles.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

import attrs
import cattrs
from attrs import define, field
from cattrs.gen import make_dict_unstructure_fn, override


@define(frozen=True)
class ToolSpec:
    """A tool the model may call: sent as ``{"type": "function", "function": {...}}``."""

    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema (``{"type": "object", "properties": ...}``)


@define(frozen=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the JSON text as the model wrote it:
    it may not be JSON at all, and saying so is the caller's answer to the model."""

    id: str
    name: str
    arguments: str


@define(frozen=True)
class ChatMessage:
    """One message. ``ChatMessage(role, content)`` for text; an assistant message that
    calls tools has ``tool_calls`` (its content may be None); a ``role: "tool"`` message
    answers one call by its ``tool_call_id``."""

    role: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = field(default=(), kw_only=True)
    tool_call_id: str | None = field(default=None, kw_only=True)


# How tools reach the model: the API's own ``tools`` ("native"), or a system-prompt
# section and ``<tool_call>`` tags in the text ("prompt", llm/prompt_tools.py) for
# models and servers without native tool calling.
ToolFormat = Literal["native", "prompt"]

# ``tool_choice`` values the API knows by name; any other string names the one tool the
# model must call.
TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})


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
    tools: tuple[ToolSpec, ...] | None = None
    # "auto", "none", "required", or a tool's name (that tool must be called).
    tool_choice: str | None = None
    # Some gateways reject the parameter and some models garble parallel arguments: the
    # caller decides per model; None leaves it out.
    parallel_tool_calls: bool | None = None
    # Never sent: how the client carries ``tools`` to this server (see ToolFormat).
    tool_format: ToolFormat = "native"


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


@define(frozen=True, slots=True)
class ToolCallChunk:
    """A piece of a tool call as a stream sends it (or a whole call, not streamed): the
    first piece of a call usually has ``id`` and ``name``, later ones a bit of
    ``arguments``; servers differ in what they leave out. On the wire ``name`` and
    ``arguments`` are inside ``function``."""

    index: int | None = None
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@define(frozen=True)
class Delta:
    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCallChunk, ...] | None = None


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
    tool_calls: tuple[ToolCallChunk, ...] | None = None


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


def _optional_str(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _structure_tool_call_chunk(value: Any, _: Any) -> ToolCallChunk:
    if not isinstance(value, dict):
        raise TypeError(f"a tool call is an object, not {value!r}")
    index = value.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        index = int(index) if isinstance(index, str) and index.isdigit() else None
    function = value.get("function")
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        # Some servers send the arguments as a JSON object rather than its text.
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCallChunk(index, _optional_str(value.get("id")) or None,
                         _optional_str(function.get("name")), arguments)


def _tool_json(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": tool.name, "description": tool.description, "parameters": tool.parameters}}


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


def _message_json(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [_call_json(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def _tool_choice_json(choice: str) -> Any:
    if choice in TOOL_CHOICE_WORDS:
        return choice
    return {"type": "function", "function": {"name": choice}}


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
    conv.register_structure_hook(ToolCallChunk, _structure_tool_call_chunk)
    conv.register_unstructure_hook(ChatMessage, _message_json)
    conv.register_unstructure_hook(ToolSpec, _tool_json)
    conv.register_unstructure_hook(ToolCall, _call_json)
    # Omit what is unset: a null parameter is not "the model's default" to every server.
    conv.register_unstructure_hook(
        ChatRequest,
        make_dict_unstructure_fn(
            ChatRequest, conv, _cattrs_omit_if_default=True,
            stream=override(omit_if_default=False),
            tool_choice=override(unstruct_hook=_tool_choice_json),
            tool_format=override(omit=True),
        ),
    )
    conv.register_unstructure_hook(
        CompletionRequest,
        make_dict_unstructure_fn(
            CompletionRequest, conv, _cattrs_omit_if_default=True,
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
