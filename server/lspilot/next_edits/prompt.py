"""The request for a next edit: recent edits, and the code around the cursor with an
editable region the model rewrites; and the model's answer turned back into edits. Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from attrs import define

from lspilot.llm.wire import ChatMessage

REGION_START, REGION_END = "<|editable_region_start|>", "<|editable_region_end|>"
CURSOR = "<|user_cursor_is_here|>"
EDITABLE_BEFORE, EDITABLE_AFTER = 4, 8  # lines of the editable region around the cursor
CONTEXT_LINES = 30  # lines shown (not editable) before and after it

SYSTEM = (
    "You predict the next edit a programmer makes, from the edits they just made. The "
    "user's recent edits are unified diffs, oldest first. Rewrite the code between "
    f"{REGION_START} and {REGION_END} applying the edit they are most likely to make next, "
    "in the same spirit as their recent edits (a rename carried to the other uses, a new "
    "parameter passed at the call sites, the same fix in the twin branch). Change nothing "
    "else. Answer with only the rewritten region in one fenced code block, without the "
    "markers. If no edit follows from the recent ones, repeat the region unchanged."
)


@define(frozen=True)
class Region:
    """The editable lines ``[first, last)`` of the document and their text."""

    first: int
    last: int
    lines: tuple[str, ...]


def region_around(lines: Sequence[str], cursor_line: int) -> Region:
    first = max(0, cursor_line - EDITABLE_BEFORE)
    last = min(len(lines), cursor_line + EDITABLE_AFTER + 1)
    return Region(first, last, tuple(lines[first:last]))


def messages(path: str, language: str, diffs: Sequence[str], lines: Sequence[str],
             region: Region, cursor_line: int, cursor_char: int) -> tuple[ChatMessage, ...]:
    before = lines[max(0, region.first - CONTEXT_LINES):region.first]
    after = lines[region.last:region.last + CONTEXT_LINES]
    editable = list(region.lines)
    row = cursor_line - region.first
    if 0 <= row < len(editable):
        text = editable[row]
        editable[row] = text[:cursor_char] + CURSOR + text[cursor_char:]
    code = "\n".join([*before, REGION_START, *editable, REGION_END, *after])
    history = "\n".join(f"```diff\n{d.rstrip()}\n```" for d in diffs) or "(none)"
    fence = language if language.isidentifier() else ""
    user = (f"File: {path} ({language})\n\nRecent edits:\n{history}\n\nCode:\n```{fence}\n"
            f"{code}\n```")
    return (ChatMessage("system", SYSTEM), ChatMessage("user", user))


_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)


def rewritten(answer: str) -> list[str] | None:
    """The region as the model rewrote it, markers removed; None when there is no code."""
    match = _FENCE.search(answer)
    if match is None:
        return None
    code = match.group(2)
    for marker in (REGION_START, REGION_END, CURSOR):
        code = code.replace(marker, "")
    return code.rstrip("\n").split("\n") if code.strip() else []


@define(frozen=True)
class LineEdit:
    """Replace ``(start_line, start_char)``-``(end_line, end_char)`` with ``text``; the
    characters are string indices of the lines (the caller converts to the editor's)."""

    start_line: int
    start_char: int
    end_line: int
    end_char: int
    old: str
    text: str


def edits(region: Region, new_lines: Sequence[str]) -> list[LineEdit]:
    """The smallest edits that turn the region into ``new_lines``: one per changed run of
    lines, trimmed to the words that change; none that only restates the text."""
    old_lines = list(region.lines)
    new_lines = list(new_lines)
    # The region may end with empty lines (the one after a final newline, the blank lines
    # between two definitions), which a fenced answer cannot show (`rewritten` strips
    # them): they are not deletions.
    new_lines += [""] * (_blank_tail(old_lines) - _blank_tail(new_lines))
    old_text = "\n".join(old_lines)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line) + 1)
    spans: list[tuple[int, int, str]] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        added = "\n".join(new_lines[j1:j2])
        if i1 == i2:  # lines inserted before line i1, or after the last
            if i1 < len(old_lines):
                begin = end = starts[i1]
                added += "\n"
            else:
                begin = end = len(old_text)
                added = "\n" + added
        elif j1 == j2:  # lines deleted, with one of the newlines around them
            if i2 < len(old_lines):
                begin, end = starts[i1], starts[i2]
            else:
                begin, end = max(0, starts[i1] - 1), len(old_text)
        else:
            begin, end = starts[i1], starts[i2 - 1] + len(old_lines[i2 - 1])
            begin, end, added = _trimmed(old_text, begin, end, added)
        if spans and spans[-1][1] >= begin:  # touching the previous one: one edit
            first, previous_end, text = spans.pop()
            begin, added = first, text + old_text[previous_end:begin] + added
        spans.append((begin, end, added))
    out: list[LineEdit] = []
    for begin, end, added in spans:
        removed = old_text[begin:end]
        if removed == added:
            continue
        start_line, start_char = _position(old_text, begin, region.first)
        end_line, end_char = _position(old_text, end, region.first)
        out.append(LineEdit(start_line, start_char, end_line, end_char, removed, added))
    return out


def _blank_tail(lines: Sequence[str]) -> int:
    n = 0
    while n < len(lines) and lines[-1 - n] == "":
        n += 1
    return n


def _trimmed(text: str, begin: int, end: int, new: str) -> tuple[int, int, str]:
    """The span and its replacement without what they share at either end, to whole
    words: `width` -> `w` is shown as that, not as deleting `idth`."""
    old = text[begin:end]
    prefix = _common_prefix(old, new)
    suffix = _common_suffix(old[prefix:], new[prefix:])
    while prefix and _word(old[prefix - 1]) and (
            _word(old[prefix:prefix + 1]) or _word(new[prefix:prefix + 1])):
        prefix -= 1
    while suffix and _word(old[len(old) - suffix]) and (
            _word(old[len(old) - suffix - 1:len(old) - suffix])
            or _word(new[len(new) - suffix - 1:len(new) - suffix])):
        suffix -= 1
    return begin + prefix, end - suffix, new[prefix:len(new) - suffix]


def _word(char: str) -> bool:
    return len(char) == 1 and (char.isalnum() or char == "_")


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _position(text: str, offset: int, first_line: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return first_line + line, offset - (text.rfind("\n", 0, offset) + 1)
