"""The language server: pygls wired to lspilot's features, and nothing else.

Each LSP message becomes a call of the features (their hooks, their commands, the methods
they registered); what a feature answers goes back as the reply. The features and the core
they share live in ``lspilot.features``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from lspilot import __version__, logs
from lspilot.commands import CommandError
from lspilot.documents import line_workspace
from lspilot.features.actions import ActionsFeature
from lspilot.features.base import Feature
from lspilot.features.chat import ChatFeature
from lspilot.features.inline import InlineFeature
from lspilot.features.next_edits import NextEditsFeature
from lspilot.features.status import StatusFeature
from lspilot.services import Services
from lspilot.transport import MessagePump, ScrubbingWriter, serve

log = logging.getLogger(__name__)

# The young generation's threshold (Python's default is 700). With 64 streams at once the
# default collected 100 to 140 times a second, and the in-flight objects it promoted forced
# a full collection every second or so; at 2,000 it collects a few times a second and no
# full collection came during the benchmark. Cost: ~0.3 MB more RSS (garbage waits longer).
GC_YOUNG_THRESHOLD = 2_000

FEATURES: tuple[type[Feature], ...] = (ActionsFeature, InlineFeature, NextEditsFeature,
                                         ChatFeature, StatusFeature)
ALL_COMMANDS: tuple[str, ...] = tuple(c for feature in FEATURES for c in feature.commands)


class LspilotProtocol(LanguageServerProtocol):
    """Runs ``workspace/executeCommand`` as the request's own task (pygls-notes trap 1),
    and writes every message through the key's scrubber.

    pygls's built-in dispatch would leave a command running after ``$/cancelRequest``;
    as the request's task, a cancel reaches it, and we can read the client's
    ``workDoneToken``.
    """

    _server: LspilotServer

    def set_writer(self, writer: Any, include_headers: bool = True) -> None:
        """Every message to the editor goes through the key's scrubber (stdio and TCP)."""
        super().set_writer(ScrubbingWriter(writer, include_headers), include_headers)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(  # type: ignore[override]
        self, params: types.ExecuteCommandParams
    ) -> Any:
        return await self._server.execute_command(params)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        result: types.InitializeResult = yield from super().lsp_initialize(params)
        # Methods outside LSP that clients look for by name (docs/protocol.md).
        result.capabilities.experimental = {"copilotInlineEdit": True}
        return result

    @lsp_method(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def lsp_workspace__did_change_workspace_folders(
        self, params: types.DidChangeWorkspaceFoldersParams
    ) -> Generator[Any, Any, None]:
        # pygls hands our handler over a step later than it starts the next message's:
        # a command sent right after the change must already wait for the new settings.
        self._server.services.store.expect_reload()
        yield from super().lsp_workspace__did_change_workspace_folders(params)


class LspilotServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("lspilot", __version__, protocol_cls=LspilotProtocol)
        self.initialized = False
        self.exit_code = 0
        cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lspilot"
        self.services = Services(self, cache_dir)
        self.features = [feature(self.services) for feature in FEATURES]
        self._by_command = {c: f for f in self.features for c in f.commands}
        self.services.store.on_problems(self._show_problems)

    # -- transport -----------------------------------------------------------------------
    def start_tcp(self, host: str, port: int) -> None:
        tune_gc()  # the same pauses as over stdio
        super().start_tcp(host, port)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve LSP on stdin/stdout with lspilot's own forgiving frame reader."""
        tune_gc()
        channel = stdout or sys.stdout.buffer
        self.protocol.set_writer(StdoutWriter(channel))
        fd = (stdin or sys.stdin.buffer).fileno()
        pump = MessagePump(self.protocol, lambda: self.initialized)
        try:
            asyncio.run(self._serve(fd, pump))
        except BrokenPipeError:
            log.info("The client went away.")
        except SystemExit as exc:  # pygls's exit handler
            self.exit_code = int(exc.code or 0)
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    async def _serve(self, fd: int, pump: MessagePump) -> None:
        try:
            await serve(fd, pump)
        finally:
            await self.shutdown_features()

    def log_to_editor(self, level: int, message: str) -> None:
        kind = (types.MessageType.Error if level >= logging.ERROR else
                types.MessageType.Warning if level >= logging.WARNING else types.MessageType.Log)
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def _show_problems(self, problems: list[str]) -> None:
        self.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Warning, message="Settings: " + " ".join(problems)))

    # -- the editor as a settings source (lspilot.store.SettingsSource) --------------------
    def can_be_asked(self) -> bool:
        workspace = getattr(self.client_capabilities, "workspace", None)
        return bool(getattr(workspace, "configuration", False))

    def folders(self) -> list[str]:
        return [folder.uri for folder in self.workspace.folders.values()]

    async def configuration(self, scopes: list[str | None]) -> Sequence[Any]:
        items = [types.ConfigurationItem(section="lspilot", scope_uri=scope) for scope in scopes]
        # Shielded: a late reply to a cancelled request breaks pygls (pygls-notes trap 4).
        values = await asyncio.shield(
            self.workspace_configuration_async(types.ConfigurationParams(items=items)))
        return list(values or [])

    # -- commands ------------------------------------------------------------------------
    async def execute_command(self, params: types.ExecuteCommandParams) -> Any:
        feature = self._by_command.get(params.command)
        if feature is None:
            raise JsonRpcInvalidParams(
                f"Unknown command {params.command!r}; lspilot knows {', '.join(ALL_COMMANDS)}."
            )
        try:
            return await feature.execute(params)
        except CommandError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None

    async def shutdown_features(self) -> None:
        for feature in self.features:
            await feature.shutdown()
        await self.services.shutdown()


def tune_gc() -> None:
    """Keep the garbage collector's pauses short while answers stream in.

    Everything imported and built by now (pygls, lsprotocol, cattrs, httpx: ~60,000
    objects) lives as long as the process, yet every full collection walked all of it:
    50 to 70 ms with the loop stopped on a 2-core VM, about once a second under the
    concurrency benchmark's load, which set that benchmark's loop-lag p99. Frozen, those
    objects are never walked again (a full collection of the rest: 10 to 17 ms under
    that load), and the larger young threshold makes collections, and promotions to the
    old generation, rare (see GC_YOUNG_THRESHOLD). ``freeze`` is O(1); it also keeps the
    few hundred garbage objects startup left.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_server() -> LspilotServer:
    server = LspilotServer()
    store = server.services.store

    @server.feature(types.INITIALIZE)
    async def initialize(ls: LspilotServer, params: types.InitializeParams) -> None:
        """Take the initialization options as the second settings layer."""
        ls.initialized = True
        # pygls made the workspace a moment ago; ours keeps big documents fast.
        ls.protocol._workspace = line_workspace(ls.workspace)
        await store.start(params.initialization_options, ls)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LspilotServer, params: types.InitializedParams) -> None:
        """Read the editor's `lspilot` settings section, when it has one."""
        logs.attach_editor(logs.EditorLogHandler(ls.log_to_editor))
        await store.refresh(ls)
        ls.services.start_local_model()
        for feature in ls.features:
            await feature.initialized()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: LspilotServer, params: types.DidChangeConfigurationParams
    ) -> None:
        """Settings changed: pull them again (or take them from the notification)."""
        pushed = params.settings if isinstance(params.settings, Mapping) else None
        await store.refresh(ls, pushed)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def did_change_folders(
        ls: LspilotServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        """Folders came or went (pygls has updated its list): ask for their settings."""
        await store.refresh(ls, expected=True)  # expected by LspilotProtocol

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LspilotServer, params: types.DidOpenTextDocumentParams) -> None:
        """pygls keeps the document; the features hear of it."""
        for feature in ls.features:
            feature.document_opened(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LspilotServer, params: types.DidChangeTextDocumentParams) -> None:
        """pygls has applied the change; the features hear of it."""
        for feature in ls.features:
            feature.document_changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LspilotServer, params: types.DidCloseTextDocumentParams) -> None:
        """The features forget what they kept for a closed document."""
        for feature in ls.features:
            feature.document_closed(params.text_document.uri)

    @server.feature(types.EXIT)
    def exit_(ls: LspilotServer, params: None) -> None:
        """pygls closes the channel next: stop sending log messages into it."""
        logs.detach_editor()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: LspilotServer, params: None) -> None:
        """Stop running jobs and close upstream connections."""
        await ls.shutdown_features()

    for feature in server.features:
        feature.register(server)
    for command in ALL_COMMANDS:
        # Registered so that they are advertised; LspilotProtocol runs them itself.
        server.command(command)(_advertised_only)

    return server


def _advertised_only(*args: Any) -> None:  # pragma: no cover - never called
    raise AssertionError("commands are dispatched by LspilotProtocol")
