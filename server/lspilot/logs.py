"""Logging: stderr always (stdout is the LSP channel), the editor's log for warnings.

A filter scrubs the API key from every record, whatever a library puts in a message.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = scrub(record.getMessage())
            record.args = None
        return True


class EditorLogHandler(logging.Handler):
    """Forwards records to ``window/logMessage`` once a client is connected."""

    def __init__(self, send: Callable[[int, str], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send
        self._sending = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._sending:  # a failure to send must not log its way into a loop
            return
        self._sending = True
        try:
            self._send(record.levelno, self.format(record))
        except Exception:
            pass
        finally:
            self._sending = False


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    logging.getLogger("lspilot").setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ScrubFilter())
    root.addHandler(handler)


def attach_editor(handler: EditorLogHandler) -> None:
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("lspilot").addHandler(handler)


def detach_editor() -> None:
    """The editor is going away: log to stderr only from now on."""
    logger = logging.getLogger("lspilot")
    for handler in list(logger.handlers):
        if isinstance(handler, EditorLogHandler):
            logger.removeHandler(handler)
