"""A chat turn's messages: the system prompt, the code in context, history within budget."""

from __future__ import annotations

import re

from attrs import define

from lspilot.chat.conversations import Turn
from lspilot.llm.wire import ChatMessage

SYSTEM = (
    "You are lspilot, a code assistant inside the user's editor, in a conversation about "
    "their code. Answer in concise Markdown. Put code in fenced blocks with their language; "
    "the user can apply a block to their file, so make each block complete for what it "
    "replaces."
)
# `#file:path/to/x.py` in a message: that file's text goes into the turn's context.
FILE_REFERENCE = re.compile(r"#file:(\S+)")


@define(frozen=True)
class Context:
    """Code the turn is about: the selection or document, and files the message names."""

    label: str  # "app.py lines 3-9", "utils.py"
    language: str
    text: str


@define(frozen=True)
class Built:
    messages: tuple[ChatMessage, ...]
    dropped_turns: int  # earlier turns left out to fit the budget
    current: str  # the user's message with its code: what the history keeps of this turn


def file_references(message: str) -> list[str]:
    return [match.rstrip(".,;:)?!") for match in FILE_REFERENCE.findall(message)]


def build(message: str, history: list[Turn], contexts: list[Context],
          budget_chars: int) -> Built:
    """The messages of a turn; the oldest turns go first when the budget is short, never
    the current message (nor the code it is about)."""
    parts = [message]
    for context in contexts:
        fence = context.language if context.language.isidentifier() else ""
        parts.append(f"{context.label}:\n```{fence}\n{context.text.rstrip()}\n```")
    current = "\n\n".join(parts)
    room = budget_chars - len(SYSTEM) - len(current)
    kept: list[Turn] = []
    # An agent turn's tool calls and results mean nothing without tools: ask mode keeps the
    # words of the exchange.
    history = [t for t in history if t.role in ("user", "assistant") and t.content]
    for turn in reversed(history):
        if len(turn.content) > room:
            break
        kept.insert(0, turn)
        room -= len(turn.content)
    if kept and kept[0].role == "assistant":
        kept.pop(0)  # a conversation shown to the model starts with the user
    messages = (ChatMessage("system", SYSTEM),
                *(ChatMessage(t.role, t.content) for t in kept),
                ChatMessage("user", current))
    return Built(messages, len(history) - len(kept), current)


def code_blocks(answer: str) -> list[str]:
    """The fenced code blocks of an answer, in order."""
    blocks = []
    for match in re.finditer(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", answer,
                             re.M | re.S):
        blocks.append(match.group(2))
    return blocks
