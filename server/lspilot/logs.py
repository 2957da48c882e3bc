"""Logging: one sink at a time for the editor, an optional full log file.

stdout is the LSP channel, so the log starts on stderr. Once the editor takes the log
(``window/logMessage``, from ``initialized`` on), stderr falls silent until the editor
goes away: editors show a server's stderr too (VS Code in the same output channel,
Neovim as ERROR lines in ``lsp.log``), and every line would appear twice. ``--log-file``
keeps everything, whoever else is listening.

A filter scrubs the API key from every record, whatever a library puts in a message or a
traceback, in every form it may take there (``lspilot.redact``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lspilot import redact

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Above every level: a handler set to it lets nothing through.
_SILENT = logging.CRITICAL + 1


def register_secret(secret: str | None) -> None:
    redact.register(secret)


def secrets() -> list[str]:
    """The secrets registered so far (keys), for what must keep them out (environments)."""
    return redact.secrets()


def scrub(text: str) -> str:
    return redact.scrub(text)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if redact.has_secrets():
            record.msg = scrub(record.getMessage())
            record.args = None
            # A traceback quotes values too (a UnicodeEncodeError holds the header it failed on).
            if record.exc_info and not record.exc_text:
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = scrub(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The start-up and wind-down sink; quiet while the editor takes the log."""


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


def setup(level: str = "INFO", log_file: str | None = None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    logging.getLogger("lspilot").setLevel(level)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_ScrubFilter())
    root.addHandler(handler)
    if log_file:
        root.addHandler(_file_handler(Path(log_file).expanduser()))


def _file_handler(path: Path) -> logging.Handler:
    """Appends to ``path``, readable by the user only: the log may quote their code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    # The mode above is for a new file only: one that existed keeps its own (often 0644).
    try:
        os.fchmod(descriptor, 0o600)
    except OSError as exc:  # someone else's file that we may write to: say so, go on
        sys.stderr.write(f"lspilot: could not make {path} private (0600): {exc}\n")
    handler = logging.StreamHandler(os.fdopen(descriptor, "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_ScrubFilter())
    return handler


def _set_stderr_level(level: int) -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _StderrHandler):
            handler.setLevel(level)


def attach_editor(handler: EditorLogHandler) -> None:
    """The editor takes the log from now on; stderr falls silent."""
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # On the root logger: pygls's and httpx's warnings need a sink too while stderr is quiet.
    logging.getLogger().addHandler(handler)
    _set_stderr_level(_SILENT)


def detach_editor() -> None:
    """The editor is going away: log to stderr again from now on."""
    logger = logging.getLogger()
    for handler in list(logger.handlers):
        if isinstance(handler, EditorLogHandler):
            logger.removeHandler(handler)
    _set_stderr_level(logging.NOTSET)
