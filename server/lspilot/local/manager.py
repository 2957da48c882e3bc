"""The local model as the server sees it: started once, on first need, with progress.

:meth:`LocalModel.endpoint_settings` turns settings whose ``baseUrl`` is ``local`` into
settings for the running llama.cpp server: its URL, a dummy key (llama.cpp needs none)
and, for the tiny bundled model, a cap on the answer's length.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import attrs

from lspilot.actions.run import RunResult
from lspilot.editor import Editor
from lspilot.local import TINY_MODEL_NOTE, LocalModelError, model
from lspilot.local.process import LlamaServer, check_installed
from lspilot.settings import ApiKey, Settings

log = logging.getLogger(__name__)

# The bundled model is not instruction-tuned and rambles until the cap: keep its answers
# short (about 10 s at 25 tokens/s) unless the user set maxTokens. A user's own model gets
# no cap.
BUNDLED_MAX_TOKENS = 256
# The bundled GGUF carries no chat template, and llama.cpp's fallback (llama-2's [INST])
# is not Gemma's: name Gemma's turn format. A user's model uses its file's template.
BUNDLED_CHAT_FORMAT = "gemma"
DUMMY_KEY = "local-no-key"


class LocalModel:
    """One llama.cpp server per lspilot, for the model the settings name."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.server: LlamaServer | None = None
        self.bundled = False
        self._wanted: str | None = None  # localModel of the running (or starting) server
        self._pending: LlamaServer | None = None  # the one starting, for aclose to stop
        self._closed = False
        self._lock = asyncio.Lock()

    async def endpoint_settings(self, settings: Settings, editor: Editor | None) -> Settings:
        """Settings that reach the local server, started first if need be."""
        server = await self.ensure(settings.local_model, editor)
        max_tokens = settings.max_tokens
        if self.bundled and max_tokens is None:
            max_tokens = BUNDLED_MAX_TOKENS
        return attrs.evolve(settings, base_url=server.base_url, api_key=ApiKey(DUMMY_KEY),
                            max_tokens=max_tokens)

    def warm_up(self, settings: Settings, editor: Editor | None) -> None:
        """Start the server in the background, so the first action need not wait."""

        async def warm() -> None:
            try:
                await self.ensure(settings.local_model, editor)
            except LocalModelError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("Starting the local model failed")

        task = asyncio.get_running_loop().create_task(warm())
        task.add_done_callback(lambda _: None)

    async def ensure(self, local_model: str | None, editor: Editor | None) -> LlamaServer:
        async with self._lock:
            if self._closed:
                raise LocalModelError("lspilot is shutting down")
            if self.server is not None and self._wanted == local_model:
                if self.server.process is not None and self.server.process.poll() is None:
                    return self.server
                log.warning("llama.cpp's server had stopped; starting it again.")
            if self.server is not None:
                await self.server.aclose()
                self.server = None
            self._wanted = local_model
            self.server = await self._start(local_model, editor)
            return self.server

    async def _start(self, local_model: str | None, editor: Editor | None) -> LlamaServer:
        progress = _Progress(editor)
        await progress.begin("lspilot: local model", "Preparing the model…")
        started = time.monotonic()
        try:
            check_installed()
            if local_model:
                path = model.user_model(local_model)
                self.bundled = False
            else:
                progress.report("Assembling the bundled model (first use only)…")
                path = await asyncio.to_thread(model.bundled_model, self.cache_dir / "models")
                self.bundled = True
                log.warning("Using the bundled local model. %s", TINY_MODEL_NOTE)
            progress.report(f"Starting llama.cpp with {path.name}…")
            server = LlamaServer(path, self.cache_dir / "local" / "llama-server.log",
                                 chat_format=BUNDLED_CHAT_FORMAT if self.bundled else None)
            self._pending = server
            try:
                await server.start()
            finally:
                self._pending = None
            if self._closed:  # shut down while it started
                await server.aclose()
                raise LocalModelError("lspilot is shutting down")
        except LocalModelError as exc:
            progress.end(f"Failed: {exc}")
            raise
        except BaseException as exc:
            progress.end(f"Failed: {exc!r}")
            raise
        note = f" {TINY_MODEL_NOTE}" if self.bundled else ""
        progress.end(f"Ready: {path.name} on {server.base_url} in "
                     f"{time.monotonic() - started:.1f} s.{note}")
        return server

    async def aclose(self) -> None:
        """Stop the server, also one still starting (without waiting for it to be ready)."""
        self._closed = True
        for server in (self._pending, self.server):
            if server is not None:
                await server.aclose()
        self.server = None


class _Progress:
    """Work-done progress for the start-up, when the editor supports it."""

    def __init__(self, editor: Editor | None) -> None:
        self.editor = editor
        self.token = f"lspilot-local-{uuid.uuid4()}"
        self.open = False

    async def begin(self, title: str, message: str) -> None:
        editor = self.editor
        if editor is None or not editor.supports_progress:
            return
        if await editor.create_progress(self.token):
            editor.progress_begin(self.token, title, message)
            self.open = True

    def report(self, message: str) -> None:
        log.info("%s", message)
        if self.open and self.editor is not None:
            self.editor.progress_report(self.token, message)

    def end(self, message: str) -> None:
        log.info("%s", message)
        if self.open and self.editor is not None:
            self.editor.progress_end(self.token, message)
            self.open = False


def failure_result(exc: LocalModelError) -> dict[str, object]:
    """The ``executeCommand`` answer of an action that could not reach the local model."""
    return RunResult(status="failed", text="", error_type="local_model",
                     error_message=str(exc)).to_json()
