"""Tool calling in the prompt, for models and servers without native tool calling.

The format is Qwen2.5's (Hermes-style, which many open models were trained on): the
tools go into the system prompt as ``<tools>…</tools>``, one JSON object each, and the
model answers a call as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in
its text. Earlier calls and their results go back as plain messages (an assistant
message with the tags, a user message with ``<tool_response>`` blocks), because such
servers may refuse ``role: "tool"``.

:func:`prepare` turns a request with tools into that plain request; a
:class:`ToolCallParser` reads a streamed answer back into text and calls, holding back
text that may be the start of a tag so the user never sees the markup. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence

import attrs

from lspilot.llm.wire import (
    ChatMessage,
    ChatRequest,
    ToolCall,
    ToolCallChunk,
    ToolSpec,
)

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_OBJECT_START = re.compile(r'\{\s*("|\}|$)')


# -- the request -------------------------------------------------------------------------
def tools_section(tools: Sequence[ToolSpec], tool_choice: str | None = None) -> str:
    """The system prompt's tool section, worded as Qwen2.5's chat template words it."""
    specs = "\n".join(
        json.dumps({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}},
            ensure_ascii=False)
        for t in tools
    )
    must = ""
    if tool_choice == "required":
        must = "\nYou must call at least one function."
    elif tool_choice not in (None, "auto", "none"):
        must = f"\nYou must call the function {tool_choice}."
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{specs}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
        f"</tool_call>{must}"
    )


def call_text(call: ToolCall) -> str:
    """An earlier call as the model would have written it."""
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments  # not JSON: shown as the text it was
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def render_messages(
    messages: Iterable[ChatMessage], section: str | None
) -> tuple[ChatMessage, ...]:
    """Plain messages: the tool section in the system prompt, calls in the assistant's
    text, consecutive tool results in one user message."""
    out: list[ChatMessage] = []
    results: list[str] = []

    def flush_results() -> None:
        if results:
            out.append(ChatMessage("user", "\n".join(results)))
            results.clear()

    for message in messages:
        if message.role == "tool":
            results.append(f"<tool_response>\n{message.content or ''}\n</tool_response>")
            continue
        flush_results()
        if message.role == "assistant" and message.tool_calls:
            parts = [message.content] if message.content else []
            parts.extend(call_text(call) for call in message.tool_calls)
            out.append(ChatMessage("assistant", "\n".join(parts)))
        else:
            out.append(ChatMessage(message.role, message.content))
    flush_results()
    if section is not None:
        if out and out[0].role == "system":
            out[0] = ChatMessage("system", f"{out[0].content or ''}\n\n{section}".lstrip())
        else:
            out.insert(0, ChatMessage("system", section))
    return tuple(out)


def prepare(request: ChatRequest) -> ChatRequest:
    """``request`` without native tool fields: the tools in the system prompt (unless
    ``tool_choice`` is ``"none"``), the conversation's calls and results as text."""
    section = None
    if request.tools and request.tool_choice != "none":
        section = tools_section(request.tools, request.tool_choice)
    return attrs.evolve(
        request,
        messages=render_messages(request.messages, section),
        tools=None, tool_choice=None, parallel_tool_calls=None,
    )


# -- the answer --------------------------------------------------------------------------
def read_call(text: str, index: int) -> ToolCallChunk:
    """One call from the text between the tags. Arguments that are not a JSON object
    stay as the raw text, so the caller can tell the model they were not JSON."""
    raw = _FENCE.sub("", text.strip())
    name = ""
    arguments = raw
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        name = data["name"]
        value = data.get("arguments", data.get("parameters", {}))
        arguments = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    else:
        found = _NAME.search(raw)
        if found is not None:
            try:
                name = json.loads(f'"{found.group(1)}"')
            except ValueError:
                name = found.group(1)
    return ToolCallChunk(index, f"call_{index}", name, arguments)


# How much of an answer's start is held back while it may still be a bare call.
_HEAD_LIMIT = 16_000


def bare_call(text: str, tool_names: Collection[str]) -> tuple[str, str] | bool:
    """Whether ``text`` starts with a call written without the tags: a JSON object (bare
    or in a ```json fence) naming an offered tool, with its arguments, as small models
    (the bundled Qwen2.5-Coder 0.5B) answer. ``(call text, the rest)`` when it does,
    True while it still may (the object or fence is not complete), False when not."""
    body = text.lstrip()
    if not body:
        return True
    if len(text) > _HEAD_LIMIT:
        return False
    if body.startswith("{"):
        if not _OBJECT_START.match(body):
            return False  # a brace, but not a JSON object's start
        try:
            _, end = json.JSONDecoder().raw_decode(body)
        except ValueError:
            return True  # incomplete, or never JSON: close() decides
        inner, rest = body[:end], body[end:]
    elif body.startswith("```"):
        line_end = body.find("\n")
        if line_end < 0:
            return len(body) < 12
        if body[3:line_end].strip().lower() not in ("", "json"):
            return False
        content = body[line_end + 1:]
        if content.lstrip() and not content.lstrip().startswith("{"):
            return False
        close = content.find("```")
        if close < 0:
            return True
        inner, rest = content[:close], content[close + 3:]
    else:
        return "```".startswith(body)
    try:
        data = json.loads(inner)
    except ValueError:
        return False
    if (not isinstance(data, dict) or data.get("name") not in tool_names
            or not ("arguments" in data or "parameters" in data)):
        return False
    return inner, rest


class ToolCallParser:
    """Reads ``<tool_call>`` blocks out of text arriving in pieces, split anywhere.

    ``feed`` and ``close`` return, in order, the text to show and each call once its
    closing tag came (or the answer ended inside it). Given the offered tools' names, it
    also takes an answer that starts with a call without the tags (see
    :func:`bare_call`), holding that start back until it is sure.
    """

    __slots__ = ("_after_call", "_calls", "_head", "_inside", "_pending", "_searched",
                 "_tool_names")

    def __init__(self, tool_names: Collection[str] = ()) -> None:
        self._pending = ""  # text held back (a possible tag start), or a call's text
        self._inside = False
        self._searched = 0  # where the closing tag may start, inside a call
        self._after_call = False  # whitespace right after a call is not shown
        self._calls = 0
        self._tool_names = frozenset(tool_names)
        # The answer's start while it may be a bare call; None once decided.
        self._head: str | None = "" if tool_names else None

    def feed(self, text: str) -> list[str | ToolCallChunk]:
        if self._head is not None:
            return self._feed_head(text)
        return self._feed(text)

    def _feed_head(self, text: str) -> list[str | ToolCallChunk]:
        before = self._head or ""
        head = self._head = before + text
        if before.strip() and "}" not in text and "`" not in text:
            return []  # nothing that could end the object or the fence: still undecided
        found = bare_call(head, self._tool_names)
        if found is True:
            return []
        self._head = None
        if found is False:
            return self._feed(head)
        return [self._call(found[0]), *self._feed(found[1])]

    def _feed(self, text: str) -> list[str | ToolCallChunk]:
        if not self._inside and not self._pending and "<" not in text:
            shown = self._shown(text)  # the usual piece: plain text
            return [shown] if shown else []
        out: list[str | ToolCallChunk] = []
        buffer = self._pending + text
        self._pending = ""
        while buffer:
            if self._inside:
                end = buffer.find(CLOSE, max(0, self._searched - len(CLOSE) + 1))
                if end < 0:
                    self._pending, self._searched = buffer, len(buffer)
                    break
                out.append(self._call(buffer[:end]))
                buffer = buffer[end + len(CLOSE):]
                continue
            start = buffer.find(OPEN)
            if start >= 0:
                self._show(buffer[:start], out)
                self._inside, self._searched = True, 0
                buffer = buffer[start + len(OPEN):]
                continue
            cut = buffer.rfind("<")
            if cut >= 0 and OPEN.startswith(buffer[cut:]):
                buffer, self._pending = buffer[:cut], buffer[cut:]
            self._show(buffer, out)
            break
        return out

    def close(self) -> list[str | ToolCallChunk]:
        """The answer is over: a held-back tag start was text after all; a call without
        its closing tag (the model stopped) still counts."""
        if self._head is not None:
            head, self._head = self._head, None
            # A fence the model never closed may still hold a whole call.
            found = bare_call(head + "\n```", self._tool_names)
            if isinstance(found, tuple) and head.lstrip().startswith("```"):
                return [self._call(found[0])]
            return [*self._feed(head), *self.close()]
        out: list[str | ToolCallChunk] = []
        pending, self._pending = self._pending, ""
        if self._inside:
            self._inside = False
            if pending.strip():
                out.append(self._call(pending))
        else:
            self._show(pending, out)
        return out

    def _call(self, text: str) -> ToolCallChunk:
        self._inside = False
        self._after_call = True
        call = read_call(text, self._calls)
        self._calls += 1
        return call

    def _show(self, text: str, out: list[str | ToolCallChunk]) -> None:
        text = self._shown(text)
        if text:
            out.append(text)

    def _shown(self, text: str) -> str:
        if self._after_call:
            text = text.lstrip()
            if text:
                self._after_call = False
        return text
