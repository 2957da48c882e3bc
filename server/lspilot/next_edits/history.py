"""A document's recent edits, coalesced into meaningful ones, as unified diffs; pure.

Keystrokes arrive one ``didChange`` at a time; the model should see "renamed ``count`` to
``total`` on line 3", not twenty one-character edits. Changes that follow each other on
nearby lines without a long pause form one burst; a burst ends when the user edits
elsewhere or pauses, and is kept as the diff between the text before it and after it.
"""

from __future__ import annotations

import difflib

from attrs import define, field

MAX_EDITS = 5  # diffs kept per document
MAX_DIFF_CHARS = 1500  # one diff, at most
NEARBY_LINES = 2  # a change this close to the burst's lines continues it
PAUSE_SECONDS = 4.0  # a pause this long ends a burst


@define
class EditHistory:
    text: str  # the document as last seen
    _burst_base: str | None = None  # the text before the current burst
    _burst_lines: tuple[int, int] = (0, 0)
    _last_change: float = 0.0
    _done: list[str] = field(factory=list)  # finished bursts' diffs, oldest first
    changes: int = 0  # changes seen, for "is there anything to predict from"

    def record(self, after: str, now: float, path: str = "file") -> None:
        """The document changed from :attr:`text` to ``after`` at ``now`` (seconds)."""
        if after == self.text:
            return
        lines = _changed_lines(self.text, after)
        continues = (self._burst_base is not None
                     and now - self._last_change < PAUSE_SECONDS
                     and lines[0] <= self._burst_lines[1] + NEARBY_LINES
                     and lines[1] >= self._burst_lines[0] - NEARBY_LINES)
        if not continues:
            self._finish(path)
            self._burst_base = self.text
            self._burst_lines = lines
        else:
            self._burst_lines = (min(lines[0], self._burst_lines[0]),
                                 max(lines[1], self._burst_lines[1]))
        self.text = after
        self._last_change = now
        self.changes += 1

    def adopt(self, after: str, path: str = "file") -> None:
        """The document changed to ``after``, but not by the user (lspilot's own edit, or
        a suggestion the user accepted): the user's burst ends, the change is not one of
        theirs, and there is nothing new to predict from until they edit again."""
        self._finish(path)
        self.text = after
        self.changes = 0

    def diffs(self, path: str) -> list[str]:
        """The recent edits as unified diffs, oldest first, the current burst last."""
        current = _diff(self._burst_base, self.text, path) if self._burst_base else None
        return [*self._done, *([current] if current else [])][-MAX_EDITS:]

    @property
    def last_change(self) -> float:
        return self._last_change

    def _finish(self, path: str) -> None:
        if self._burst_base is None:
            return
        diff = _diff(self._burst_base, self.text, path)
        if diff:
            self._done = [*self._done, diff][-MAX_EDITS:]
        self._burst_base = None


def _changed_lines(before: str, after: str) -> tuple[int, int]:
    """The first and last line (of ``after``) that differ."""
    a, b = before.splitlines(), after.splitlines()
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    return start, max(start, end_b - 1)


def _diff(before: str, after: str, path: str) -> str | None:
    if before == after:
        return None
    diff = "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{path}", tofile=f"b/{path}", n=1))
    if not diff:
        return None
    return diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n… (cut)\n"
