"""Positions in text the LSP way: lines, position units, offsets and edits.

LSP ends a line only at ``\\n``, ``\\r\\n`` or ``\\r``. Python's ``str.splitlines`` (and
pygls's documents, which use it) also ends one at form feed, vertical tab, ``\\x1c``-
``\\x1e``, ``\\x85``, U+2028 and U+2029: in a Python file with a form-feed page break, or
JavaScript with U+2028 in a string, every line after it is then off by one from the
editor's, and the model is sent, and the edit replaces, lines the user did not select.
Everything in lspilot that turns positions into text uses these helpers.

``encoding`` is the negotiated position encoding: ``utf-8``, ``utf-16`` or ``utf-32``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lsprotocol import types

# The line breaks of str.splitlines that LSP does not count.
_OTHER_BREAKS = re.compile("[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
LINE_ENDS = ("\r\n", "\n", "\r")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its line end, split at LSP line ends only."""
    if _OTHER_BREAKS.search(text) is None:
        return text.splitlines(keepends=True)  # the same lines, and much faster
    return _LSP_LINE.findall(text)


def strip_line_end(line: str) -> str:
    for end in LINE_ENDS:
        if line.endswith(end):
            return line[: -len(end)]
    return line


def units(text: str, encoding: str = "utf-16") -> int:
    """The length of ``text`` in ``encoding``'s position units."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _column(line: str, character: int, encoding: str) -> int:
    """The index in ``line`` of a position ``character`` units in (clamped to the line)."""
    body = strip_line_end(line)
    if encoding == "utf-32":
        return min(character, len(body))
    seen = 0
    for index, char in enumerate(body):
        if seen >= character:
            return index
        seen += units(char, encoding)
    return len(body)


def offset_at(text: str | Sequence[str], position: types.Position,
              encoding: str = "utf-16") -> int:
    """The string index of ``position`` in ``text`` (or its :func:`split_lines`)."""
    lines = split_lines(text) if isinstance(text, str) else text
    if position.line >= len(lines):
        return sum(len(line) for line in lines)
    start = sum(len(line) for line in lines[: position.line])
    return start + _column(lines[position.line], position.character, encoding)


def position_of(text: str, offset: int, encoding: str = "utf-16") -> types.Position:
    """The position of string index ``offset`` in ``text``."""
    lines = split_lines(text[:offset])
    if not lines:
        return types.Position(0, 0)
    last = lines[-1]
    if last.endswith(("\n", "\r")) and not (last.endswith("\r") and text[offset:offset + 1]
                                           == "\n"):
        return types.Position(len(lines), 0)
    return types.Position(len(lines) - 1, units(strip_line_end(last), encoding))


def range_of(text: str, snippet: str, encoding: str = "utf-16") -> types.Range:
    """The range of the first ``snippet`` in ``text``."""
    start = text.index(snippet)
    return types.Range(position_of(text, start, encoding),
                       position_of(text, start + len(snippet), encoding))


def end_after(start: types.Position, inserted: str, encoding: str = "utf-16") -> types.Position:
    """Where ``inserted`` ends when it is inserted at ``start``."""
    lines = split_lines(inserted)
    if not lines:
        return start
    if lines[-1].endswith(("\n", "\r")):
        return types.Position(start.line + len(lines), 0)
    if len(lines) == 1:
        return types.Position(start.line, start.character + units(lines[0], encoding))
    return types.Position(start.line + len(lines) - 1, units(lines[-1], encoding))


def end_of(text: str, encoding: str = "utf-16") -> types.Position:
    """The position just past the end of ``text``."""
    return end_after(types.Position(0, 0), text, encoding)


def apply_edits(text: str, edits: Iterable[types.TextEdit], encoding: str = "utf-16") -> str:
    """``text`` with ``edits`` applied, as an editor applies them (all against the original)."""
    lines = split_lines(text)
    # Applied from the end back, so earlier offsets stay valid; inserts at one position keep
    # the order they were given in (the spec), hence the index in the key.
    spans = sorted(
        ((offset_at(lines, e.range.start, encoding), offset_at(lines, e.range.end, encoding),
          index, e.new_text) for index, e in enumerate(edits)),
        key=lambda span: (span[0], span[1], span[2]), reverse=True,
    )
    for start, end, _, new in spans:
        text = text[:start] + new + text[end:]
    return text
