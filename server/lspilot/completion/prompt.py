"""The requests for a suggestion: a Chat Completions prompt, or a fill-in-the-middle one."""

from __future__ import annotations

from lspilot.completion.context import CursorContext, Shape
from lspilot.completion.neighbors import Snippet
from lspilot.llm.wire import ChatMessage

CURSOR = "<CURSOR>"
# A chat model that fences its answer despite the contract stops at the closing fence.
CHAT_STOP = ("\n```",)
LINE_MAX_TOKENS = 48

SYSTEM = (
    "You are a code completion engine inside an editor. You get a file with the marker "
    f"{CURSOR} where the cursor is. Reply with exactly the text to insert at {CURSOR} and "
    "nothing else: no explanation, no code fences, no repetition of the code before or "
    f"after {CURSOR}, and no {CURSOR} marker. Continue in the file's style and indentation. "
    "If nothing useful fits, reply with nothing."
)

_LINE_RULE = "Complete the current line only: a single line, no line break."
_BLOCK_RULE = ("Write the block that starts here: its lines with their full indentation, "
               "and stop at the end of the block.")

_COMMENT = {"python": "#", "ruby": "#", "shellscript": "#", "sh": "#", "perl": "#", "r": "#",
            "yaml": "#", "toml": "#", "elixir": "#", "lua": "--", "sql": "--", "haskell": "--"}


def chat_messages(context: CursorContext, snippets: list[Snippet]) -> tuple[ChatMessage, ...]:
    parts = []
    if snippets:
        parts.append("Related code from other open files:")
        parts.extend(f"--- {s.path}\n{s.text.rstrip()}\n---" for s in snippets)
        parts.append("")
    parts.append(f"File: {context.path} ({context.language})")
    parts.append(_BLOCK_RULE if context.shape is Shape.BLOCK else _LINE_RULE)
    parts.append("")
    parts.append(f"{context.prefix}{CURSOR}{context.suffix}")
    return (ChatMessage("system", SYSTEM), ChatMessage("user", "\n".join(parts)))


def fim_prompt(context: CursorContext, snippets: list[Snippet],
               tokens: tuple[str, str, str] | None = None) -> tuple[str, str | None]:
    """(prompt, suffix) for ``POST /completions``; neighbours go first, as comments.

    With the model's own fill-in-the-middle ``tokens`` (prefix, suffix, middle), the whole
    prompt is written in its format and no ``suffix`` field is sent.
    """
    comment = _COMMENT.get(context.language, "//")
    header = "".join(
        f"{comment} {s.path}\n" + "".join(f"{comment} {line}\n" for line in s.text.splitlines())
        for s in snippets
    )
    if tokens is not None:
        before, after, middle = tokens
        return f"{before}{header}{context.prefix}{after}{context.suffix}{middle}", None
    return header + context.prefix, context.suffix


def fim_stop(context: CursorContext) -> tuple[str, ...]:
    # A fill-in-the-middle model writes raw code: a line ends at the line break, a block
    # at a blank line (the indentation rule in lspilot.completion.clean cuts the rest).
    return ("\n",) if context.shape is Shape.LINE else ("\n\n\n",)
