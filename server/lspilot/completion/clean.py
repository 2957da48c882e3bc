"""From the model's answer to a suggestion worth showing, or None.

Chat models wrap code in fences and add prose; every model may repeat the text before the
cursor or the text after it. What is left is cut to the suggestion's shape: one line, or a
block that ends where the indentation falls back.
"""

from __future__ import annotations

import re

from lspilot.completion.context import CursorContext, Shape, indent_of

MAX_BLOCK_LINES = 20
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n?", re.M)


def clean(answer: str, context: CursorContext) -> str | None:
    text = _unfence(answer.replace("\r\n", "\n"))
    text = _without_repeated_prefix(text, context)
    text = _shaped(text, context)
    text = _without_duplicated_suffix(text, context)
    if not text.strip():
        return None
    following = context.suffix.lstrip()
    if following and following.startswith(text.strip()):
        return None  # it only says what is already there
    return text


def _unfence(text: str) -> str:
    """The fenced block's content when the answer is one (after at most a line of prose
    such as "Here is the code:"); the text otherwise. A fence further down is part of
    the code (a docstring's example, a Markdown file) and stays."""
    opening = _FENCE.search(text)
    if opening is None:
        return text
    before = text[: opening.start()].strip()
    if before and (len(before.splitlines()) > 2 or not before.endswith(":")):
        return text
    rest = text[opening.end():]
    closing = _FENCE.search(rest)
    return rest if closing is None else rest[: closing.start()].rstrip("\n")


def _without_repeated_prefix(text: str, context: CursorContext) -> str:
    """Drop the cursor's line when the model wrote it again, with or without its indent
    (and the indent alone, which chat models tend to repeat on an indented empty line)."""
    line = context.line_prefix
    for repeated in (line, line.lstrip()):
        if repeated and text.startswith(repeated):
            return text[len(repeated):]
    return text


def _shaped(text: str, context: CursorContext) -> str:
    if context.shape is Shape.LINE:
        return text.split("\n", 1)[0].rstrip()
    lines = text.split("\n")
    if context.line_prefix.strip() and lines[0].strip():
        # At the end of the line that opens the block, the answer began the block's body
        # without the line break: supply it, and the indentation if that is missing too.
        if indent_of(lines[0]) <= context.base_indent:
            pad = context.indent + "    "
            lines = [pad + line if line.strip() else line for line in lines]
        lines = ["", *lines]
    kept = [lines[0]]
    for line in lines[1:MAX_BLOCK_LINES]:
        if line.strip() and indent_of(line) <= context.base_indent:
            break  # the block is over
        kept.append(line)
    return "\n".join(kept).rstrip()


def _without_duplicated_suffix(text: str, context: CursorContext) -> str:
    """Drop the end of the suggestion that the text after the cursor already has."""
    rest = context.line_suffix.strip()
    if rest and text.rstrip().endswith(rest):
        return text.rstrip()[: -len(rest)]
    following = [line.strip() for line in context.suffix.split("\n")[1:] if line.strip()]
    lines = text.split("\n")
    for count in range(min(len(lines) - 1, len(following)), 0, -1):
        if [line.strip() for line in lines[-count:]] == following[:count]:
            return "\n".join(lines[:-count]).rstrip()
    return text
