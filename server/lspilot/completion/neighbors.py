"""Snippets of the other open documents most like the code around the cursor.

Copilot's "neighboring tabs": the user's open files hold the names and patterns the code
at the cursor is likely to use. Each document is cut into windows of lines; a window's
score is the overlap (Jaccard) of its identifiers with those around the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from attrs import define

WINDOW_LINES = 20
STEP_LINES = 10
MIN_SCORE = 0.15
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@define(frozen=True)
class Snippet:
    path: str
    text: str
    score: float


def tokens(text: str) -> set[str]:
    return set(_IDENTIFIER.findall(text))


def best_snippets(around_cursor: str, documents: Iterable[tuple[str, str]],
                  budget_chars: int, limit: int = 2) -> list[Snippet]:
    """The best windows of ``documents`` (path, text), at most ``limit``, within the budget."""
    wanted = tokens(around_cursor)
    if not wanted or budget_chars <= 0:
        return []
    found: list[Snippet] = []
    for path, text in documents:
        lines = text.splitlines(keepends=True)
        best: Snippet | None = None
        for start in range(0, max(1, len(lines) - WINDOW_LINES + STEP_LINES), STEP_LINES):
            window = "".join(lines[start:start + WINDOW_LINES])
            have = tokens(window)
            if not have:
                continue
            score = len(wanted & have) / len(wanted | have)
            if score >= MIN_SCORE and (best is None or score > best.score):
                best = Snippet(path, window, score)
        if best is not None:
            found.append(best)
    found.sort(key=lambda s: s.score, reverse=True)
    chosen: list[Snippet] = []
    left = budget_chars
    for snippet in found[:limit]:
        if len(snippet.text) <= left:
            chosen.append(snippet)
            left -= len(snippet.text)
    return chosen
