"""The one root of every failure a user can see: a kind, a message and a hint.

``kind`` becomes the answer's ``error.type``; ``message`` says what went wrong and
``hint`` what to do about it. Catch ``LspilotError`` and every known failure is caught;
anything else that escapes is a bug of ours (``internal``).
"""

from __future__ import annotations


class LspilotError(Exception):
    kind: str = "internal"

    def __init__(self, message: str, *, hint: str = "", kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
