"""How the upstream was when last seen: what ``lspilot.status`` reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from attrs import define

from lspilot.llm import errors

# The failures that say something about the upstream (not about the request or the editor).
_UPSTREAM_ERRORS: tuple[type[errors.UpstreamError], ...] = (
    errors.UpstreamError, *errors.UpstreamError.__subclasses__())
UPSTREAM_KINDS = frozenset(error.kind for error in _UPSTREAM_ERRORS)


@define
class UpstreamHealth:
    """The last request's outcome, as far as the upstream is concerned."""

    ok: bool | None = None  # None: not asked yet this session
    at: float | None = None
    error: dict[str, str] | None = None

    def answered(self) -> None:
        self.ok, self.at, self.error = True, time.time(), None

    def failed(self, kind: str, message: str) -> None:
        self.ok, self.at, self.error = False, time.time(), {"type": kind, "message": message}

    def to_json(self) -> dict[str, Any]:
        at = None if self.at is None else datetime.fromtimestamp(self.at, UTC).isoformat(
            timespec="seconds")
        return {"reachable": self.ok, "at": at, "error": self.error}


