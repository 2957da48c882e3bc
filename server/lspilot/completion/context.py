"""The code around the cursor, and what kind of suggestion fits there.

Mid-line, a suggestion ends at the line's end, and is only offered when the rest of the
line is closing punctuation or whitespace (anything else and the model would have to
rewrite what follows). At the end of a line that opens a block, or on an empty line after
one, a block fits: several lines, ending where the indentation falls back.
"""

from __future__ import annotations

import enum
import re

from attrs import define

# What may follow the cursor on its line for a suggestion to be offered there.
_CLOSING = re.compile(r"[\s)\]}>;,:'\"`]*")
# A line that opens a block: Python's colon, braces, brackets, parentheses, arrows, keywords.
_OPENS_BLOCK = re.compile(r"(:|\{|\(|\[|=>|->|\bdo|\bthen|\bbegin)\s*(#.*|//.*)?$")
# Of the budget, how much goes before the cursor: that is where the intent is.
PREFIX_SHARE = 0.75
# The text before the cursor starts on this grid (then at the next line start), not at a
# fixed distance from the cursor: typing leaves the start of the prompt as it was, so a
# server's prompt cache (llama.cpp's prefix match, OpenAI's cached input) reuses it
# instead of evaluating, and billing, the whole window again at every key.
WINDOW_STEP = 1024


class Shape(enum.Enum):
    LINE = "line"
    BLOCK = "block"


@define(frozen=True, kw_only=True)
class CursorContext:
    prefix: str  # the document's text before the cursor (within the budget)
    suffix: str  # after it (within the budget)
    line_prefix: str  # the cursor's line up to the cursor
    line_suffix: str  # the rest of that line, without its line end
    shape: Shape
    base_indent: int  # a block ends at a line indented this much or less
    language: str
    path: str

    @property
    def indent(self) -> str:
        return self.line_prefix[: len(self.line_prefix) - len(self.line_prefix.lstrip())]


def cursor_context(text: str, offset: int, *, language: str, path: str,
                   budget_chars: int) -> CursorContext | None:
    """The context at ``offset`` in ``text``; None where no suggestion should be offered."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = _line_end(text, offset)
    line_prefix = text[line_start:offset]
    line_suffix = text[offset:line_end]
    if _CLOSING.fullmatch(line_suffix) is None:
        return None
    # Fixed shares, not what the prefix leaves over: typing at the cursor must leave the
    # suffix as it was, or no cached suggestion would ever match again.
    before_budget = int(budget_chars * PREFIX_SHARE)
    prefix = text[_window_start(text, offset, before_budget):offset]
    suffix = text[offset:offset + budget_chars - before_budget]
    shape, base = _shape(text, line_start, line_prefix, line_suffix)
    return CursorContext(prefix=prefix, suffix=suffix, line_prefix=line_prefix,
                         line_suffix=line_suffix, shape=shape, base_indent=base,
                         language=language, path=path)


def _window_start(text: str, offset: int, before_budget: int) -> int:
    """Where the prefix starts: at most ``before_budget`` before the cursor, on the
    ``WINDOW_STEP`` grid, at a line start when one comes before the cursor."""
    start = offset - before_budget
    if start <= 0:
        return 0
    start = -(-start // WINDOW_STEP) * WINDOW_STEP
    line_start = text.find("\n", start - 1, offset) + 1
    return line_start if line_start > 0 else min(start, offset)


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    return end - 1 if end > offset and text[end - 1] == "\r" else end


def _shape(text: str, line_start: int, line_prefix: str, line_suffix: str) -> tuple[Shape, int]:
    at_end = not line_suffix.strip()
    if at_end and line_prefix.strip() and _OPENS_BLOCK.search(line_prefix.rstrip()):
        return Shape.BLOCK, indent_of(line_prefix)
    if not line_prefix.strip() and at_end:
        previous = _previous_code_line(text, line_start)
        if previous is not None and _OPENS_BLOCK.search(previous.rstrip()):
            return Shape.BLOCK, indent_of(previous)
    return Shape.LINE, indent_of(line_prefix)


def _previous_code_line(text: str, line_start: int) -> str | None:
    end = line_start - 1
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].rstrip("\r")
        if line.strip():
            return line
        end = start - 1
    return None


def indent_of(line: str) -> int:
    """Columns of leading whitespace (a tab counts as four)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))
