"""The local model as the server sees it: started once, on first need, with progress.

:meth:`LocalModel.endpoint_settings` turns settings whose ``baseUrl`` is ``local`` into
settings for the running llama.cpp server: its URL, a dummy key (llama.cpp needs none)
and, for a bundled model that rambles, a cap on the answer's length.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import attrs
from lsprotocol import types

from lspilot.editor import Editor
from lspilot.llm.errors import UpstreamError
from lspilot.local import LocalModelError, model
from lspilot.local.process import LlamaServer, check_installed, describe_exit, exit_hint
from lspilot.settings import ApiKey, Price, Settings

log = logging.getLogger(__name__)

DUMMY_KEY = "local-no-key"


def local_model_name(local_model: str | None) -> str:
    """``local/<bundled name>`` or ``local/<GGUF file name>``: what usage is counted under."""
    bundled = model.bundled(local_model)
    return f"local/{bundled.name if bundled is not None else Path(local_model or '').name}"


class LocalModel:
    """One llama.cpp server per lspilot, for the model the settings name."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.server: LlamaServer | None = None
        self.bundled: model.BundledModel | None = None  # the running server's, if bundled
        self._noted: set[str] = set()  # bundled models whose note was logged
        self._wanted: str | None = None  # localModel of the running (or starting) server
        self._pending: LlamaServer | None = None  # the one starting, for aclose to stop
        self._closed = False
        self._lock = asyncio.Lock()
        # Crashes since the last answer: after two in a row, no third start.
        self.crashes = 0
        self.last_crash: LocalModelError | None = None
        # Resolves with the crash of the running server, for the requests it serves.
        self._lost: asyncio.Future[UpstreamError] | None = None

    async def endpoint_settings(self, settings: Settings, editor: Editor | None) -> Settings:
        """Settings that reach the local server, started first if need be."""
        server = await self.ensure(settings.local_model, editor)
        max_tokens = settings.max_tokens
        if self.bundled is not None and max_tokens is None:
            max_tokens = self.bundled.max_tokens
        # Named as what it is, and free: its usage counts, its cost is $0.
        name = local_model_name(settings.local_model)
        return attrs.evolve(settings, base_url=server.base_url, api_key=ApiKey(DUMMY_KEY),
                            max_tokens=max_tokens, model=name, completion_model=name,
                            prices={**settings.prices, name: Price(input=0, output=0)})

    def lost(self) -> asyncio.Future[UpstreamError] | None:
        """The running server's crash, as a future a request can race (lspilot.lost)."""
        return self._lost

    def answered(self) -> None:
        """A request through the server was answered: its crashes are history."""
        self.crashes = 0

    def warm_up(self, settings: Settings, editor: Editor | None) -> None:
        """Start the server in the background, so the first action need not wait."""

        async def warm() -> None:
            try:
                await self.ensure(settings.local_model, editor)
            except LocalModelError as exc:
                log.warning("%s", exc)
                if editor is not None and exc.exit_code is not None:
                    editor.show_message(types.MessageType.Error, str(exc))
            except Exception:
                log.exception("Starting the local model failed")

        task = asyncio.get_running_loop().create_task(warm())
        task.add_done_callback(lambda _: None)

    async def ensure(self, local_model: str | None, editor: Editor | None) -> LlamaServer:
        async with self._lock:
            if self._closed:
                raise LocalModelError("lspilot is shutting down")
            server = self.server
            if server is not None and server.running and self._wanted == local_model:
                return server
            if self._wanted != local_model:
                self.crashes, self.last_crash = 0, None  # another model: a fresh start
            elif self.crashes >= 2 and self.last_crash is not None:
                raise LocalModelError(
                    f"{self.last_crash.message} It crashed {self.crashes} times in a row, so "
                    "lspilot does not start it again; restart lspilot (or change localModel) "
                    "once it is fixed.", hint=self.last_crash.hint)
            restart = "again after it stopped" if self.crashes else ""
            if self.server is not None:
                await self.server.aclose()
                self.server = None
            self._wanted = local_model
            self.server = await self._start(local_model, editor, restart)
            return self.server

    async def _start(self, local_model: str | None, editor: Editor | None,
                     restart: str) -> LlamaServer:
        progress = _Progress(editor)
        await progress.begin("lspilot: local model", "Preparing the model…")
        started = time.monotonic()
        try:
            check_installed()
            which = model.bundled(local_model)
            if which is None:
                path = model.user_model(local_model or "")
            else:
                models_dir = self.cache_dir / "models"
                ready = await asyncio.to_thread(model.bundled_model_if_ready, models_dir, which)
                if ready is None:
                    progress.report(f"Assembling {which.title} (first use only)…")
                    ready = await asyncio.to_thread(model.bundled_model, models_dir, which)
                path = ready
                if which.name not in self._noted:
                    self._noted.add(which.name)
                    log.warning("Using the bundled local model. %s", which.note)
            self.bundled = which
            progress.report(f"Starting llama.cpp {restart + ' ' if restart else ''}"
                            f"with {path.name}…")
            server = LlamaServer(path, self.cache_dir / "local" / "llama-server.log",
                                 chat_format=which.chat_format if which else None)
            self._pending = server
            try:
                await server.start()
            finally:
                self._pending = None
            if self._closed:  # shut down while it started
                await server.aclose()
                raise LocalModelError("lspilot is shutting down")
        except LocalModelError as exc:
            if exc.exit_code is not None:  # it crashed while starting
                self.crashes += 1
                self.last_crash = exc
            progress.end(f"Failed: {exc}")
            raise
        except BaseException as exc:
            progress.end(f"Failed: {exc!r}")
            raise
        self._watch(server)
        note = f" {self.bundled.note}" if self.bundled else ""
        progress.end(f"Ready: {path.name} on {server.base_url} in "
                     f"{time.monotonic() - started:.1f} s.{note}")
        return server

    def _watch(self, server: LlamaServer) -> None:
        """Turn the server's exit, unless lspilot asked for it, into the crash error."""
        lost: asyncio.Future[UpstreamError] = asyncio.get_running_loop().create_future()
        self._lost = lost
        assert server.exited is not None

        def exited(future: asyncio.Future[int]) -> None:
            if server.stopping or future.cancelled():
                return
            code = future.result()
            tail = server.log_tail()
            error = LocalModelError(
                f"The local model's server (llama.cpp) {describe_exit(code)}"
                f"{'; its log ends: ' + tail if tail else ''} (log: {server.log_path}).",
                hint=exit_hint(code),
            )
            error.exit_code = code
            self.crashes += 1
            self.last_crash = error
            log.error("%s", error)
            if not lost.done():
                lost.set_result(error)

        server.exited.add_done_callback(exited)

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

