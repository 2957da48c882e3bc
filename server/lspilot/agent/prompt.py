"""The agent's system prompt and its history within the context budget; pure."""

from __future__ import annotations

from collections.abc import Sequence

from lspilot.llm.wire import ChatMessage

SYSTEM = """You are lspilot's agent, working in the user's workspace through tools.
Rules:
- Read before you edit: read_file the part you change, and copy 'old' for edit_file exactly.
- Make the smallest change that does the job; never touch files the task does not need.
- After you change code, run the tests (run_tests) when the project has them, and fix what \
you broke.
- Paths are relative to the workspace folder; files outside it, and excluded ones, are \
refused.
- A refused call is the user's decision: do not repeat it; continue another way or stop.
- When done, say briefly what you changed (files and why) and what the tests said."""

SHORTENED = 200  # characters an old tool result keeps when the budget is short


def system_prompt(tree: Sequence[str], more_files: int, context: str | None) -> str:
    parts = [SYSTEM, "Workspace files:\n" + ("\n".join(tree) or "(none)") +
             (f"\n… and {more_files} more" if more_files else "")]
    if context:
        parts.append(context)
    return "\n\n".join(parts)


def fit(history: Sequence[ChatMessage], budget_chars: int) -> tuple[list[ChatMessage], int]:
    """The history within ``budget_chars``: old tool results are shortened first, then the
    oldest exchanges (a user message up to the next one) go whole, so a tool call is never
    without its result. Returns the messages and how many exchanges were left out."""
    messages = list(history)
    size = sum(_size(m) for m in messages)
    # Newest last: shorten from the oldest tool result, keeping the current exchange's.
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=0)
    for index, message in enumerate(messages[:last_user]):
        if size <= budget_chars:
            break
        if message.role == "tool" and message.content and len(message.content) > SHORTENED:
            shortened = message.content[:SHORTENED] + "… (shortened)"
            size -= len(message.content) - len(shortened)
            messages[index] = ChatMessage("tool", shortened, tool_call_id=message.tool_call_id)
    dropped = 0
    while size > budget_chars:
        starts = [i for i, m in enumerate(messages) if m.role == "user"]
        if len(starts) < 2:
            break  # the current exchange always stays
        cut = starts[1]
        size -= sum(_size(m) for m in messages[:cut])
        messages = messages[cut:]
        dropped += 1
    return messages, dropped


def _size(message: ChatMessage) -> int:
    return len(message.content or "") + sum(len(c.arguments) + len(c.name)
                                            for c in message.tool_calls)
