"""Drive the real lspilot server over stdio like an editor would (pytest-lsp).

The :class:`Editor` is lspilot's scripted editor (``lspilot.scripted_editor``, the one
``lspilot demo`` plays) on pytest-lsp's client: it keeps its own copy of each open
document, applies the server's ``workspace/applyEdit`` to it (sending ``didChange`` as a
real editor does), creates files on ``CreateFile``, and records progress,
``lspilot/stream`` notifications, messages and shown documents. On top of it: ways to
answer ``applyEdit`` badly (``apply_mode``) and helpers to run actions and completions.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient
from pytest_lsp.checks import LspSpecificationWarning
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from lspilot.scripted_editor import METHODS, ScriptedEditor, capabilities, plain

# Re-exported: the tests build ranges with the server's own LSP position helpers.
from lspilot.text import apply_edits, end_after, offset_at, position_of, range_of  # noqa: F401
from tests.fake_upstream import FakeUpstream

SERVER_COMMAND = [sys.executable, "-m", "lspilot", "--log-level", "DEBUG"]
API_KEY = "sk-test-0123456789abcdef"
logger = logging.getLogger(__name__)


class Editor(ScriptedEditor):
    def __init__(self, client: LanguageClient, upstream: FakeUpstream, root: Path) -> None:
        super().__init__(client, save="closed")  # files not open are edited on disk
        self.upstream = upstream
        self.root = root
        # How to answer applyEdit: "apply", "reject", "error" (a JSON-RPC error, as eglot
        # says no), "decline" (the user turned down the preview, as lspilot's VS Code
        # extension answers it), or "hold" (answer only once `release_edits` is set, as a
        # slow or stuck editor would).
        self.apply_mode = "apply"
        self.release_edits = asyncio.Event()
        # Each applyEdit's moment: the newest progress of every token when it arrived.
        self.progress_at_edits: list[dict[Any, Any]] = []
        self.stream_event = asyncio.Event()
        # workspace/configuration: answered from `client.set_configuration`; with
        # `hold_configuration` set, only once that event is set (an editor slow to answer).
        self.hold_configuration: asyncio.Event | None = None
        self.configuration_asked = asyncio.Event()

        @client.feature(types.WORKSPACE_CONFIGURATION)
        async def configuration(params: types.ConfigurationParams) -> list[Any]:
            self.configuration_asked.set()
            if self.hold_configuration is not None:
                await self.hold_configuration.wait()
            return [client.get_configuration(section=item.section, scope_uri=item.scope_uri)
                    for item in params.items]
        # The tests read pytest-lsp's records on the client: they are this editor's.
        client.progress_reports = self.progress_reports
        client.messages = self.messages
        client.log_messages = self.log_messages
        client.shown_documents = self.shown_documents

    # -- documents ---------------------------------------------------------------------
    def open(self, relative: str, text: str, language: str = "python") -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        uri = from_fs_path(str(path))
        assert uri is not None
        self.open_document(uri, text, language)
        return uri

    # -- the server's requests and notifications -------------------------------------------
    async def on_apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        self.progress_at_edits.append(
            {token: reports[-1] for token, reports in self.progress_reports.items() if reports})
        if self.apply_mode == "reject":
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="user said no")
        if self.apply_mode == "decline":
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="declined")
        if self.apply_mode == "error":  # as eglot answers a "no" (its code is positive)
            raise JsonRpcException("User cancelled server edit", code=32603)
        if self.apply_mode == "hold":
            await self.release_edits.wait()
        return await super().on_apply_edit(params)

    def on_stream(self, notification: dict[str, Any]) -> None:
        self.stream_event.set()

    def on_log_message(self, params: types.LogMessageParams) -> None:
        levels = [logger.error, logger.warning, logger.info, logger.debug]
        levels[min(params.type.value, 4) - 1](params.message)

    def on_protocol_problem(self, message: str) -> None:
        warnings.warn(message, LspSpecificationWarning, stacklevel=2)

    # -- running actions -------------------------------------------------------------------
    async def run(
        self,
        command: str,
        uri: str,
        range_: types.Range,
        *,
        instruction: str | None = None,
        token: str | None = None,
        extra: dict[str, Any] | None = None,
        msg_id: str | None = None,
    ) -> dict[str, Any]:
        argument: dict[str, Any] = {
            "uri": uri,
            "range": self.client.protocol._converter.unstructure(range_),
        }
        if instruction is not None:
            argument["instruction"] = instruction
        argument.update(extra or {})
        params = types.ExecuteCommandParams(
            command=command, arguments=[argument], work_done_token=token
        )
        if token is not None:
            self.expect_progress(token)  # a client-made token
        if msg_id is not None:
            result = await self.client.protocol.send_request_async(
                types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id
            )
        else:
            result = await self.client.workspace_execute_command_async(params)
        return plain(result)

    async def complete(self, uri: str, position: types.Position, *, automatic: bool = True,
                       msg_id: str | None = None) -> list[str]:
        """Ask for inline completions at ``position``; the items' insert texts."""
        kind = (types.InlineCompletionTriggerKind.Automatic if automatic
                else types.InlineCompletionTriggerKind.Invoked)
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=kind),
            text_document=types.TextDocumentIdentifier(uri=uri), position=position)
        if msg_id is not None:
            result = await self.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        else:
            result = await self.client.text_document_inline_completion_async(params)
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        return [str(item.insert_text) for item in items]

    def type_at(self, uri: str, position: types.Position, text: str) -> types.Position:
        """Type ``text`` at ``position`` (one didChange); the cursor after it."""
        self.change(uri, types.Range(position, position), text)
        return end_after(position, text, self.encoding)

    async def command(self, command: str, *arguments: Any) -> Any:
        params = types.ExecuteCommandParams(command=command, arguments=list(arguments))
        return plain(await self.client.workspace_execute_command_async(params))

    async def wait_for_stream(self, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not self.streams:
                self.stream_event.clear()
                await self.stream_event.wait()

        await asyncio.wait_for(wait(), timeout)


def _client_factory() -> LanguageClient:
    """pytest-lsp's client, without its handlers for what the scripted editor answers."""
    client = LanguageClient(converter_factory=default_converter)
    register_lsp_features(
        client, {m: f for m, f in DEFAULT_CLIENT_FEATURES.items()
                 if m not in METHODS and m != types.WORKSPACE_CONFIGURATION}  # Editor answers
    )
    return client


@asynccontextmanager
async def session(
    upstream: FakeUpstream,
    root: Path,
    *,
    caps: types.ClientCapabilities | None = None,
    init_options: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    folders: bool = True,
    server_args: tuple[str, ...] = (),
) -> AsyncIterator[Editor]:
    """A started, initialized lspilot with an editor around it; shut down afterwards.

    ``folders``: ``root`` is the workspace folder (else the editor opens no folder, as an
    editor started on a lone file may). ``server_args``: more of lspilot's command line
    (``--log-file``; a later ``--log-level`` wins over the harness's DEBUG).
    """
    client = _client_factory()
    editor = Editor(client, upstream, root)

    if configuration is not None:
        client.set_configuration(configuration, section="lspilot")
    server_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root.parent / f"home-{uuid.uuid4().hex[:6]}"),
        "XDG_CACHE_HOME": str(root.parent / "cache"),
        **(env or {}),
    }
    await client.start_io(*SERVER_COMMAND, *server_args, env=server_env)
    options = {"baseUrl": upstream.base_url, "apiKey": API_KEY, "retryBaseSeconds": 0.05}
    options.update(init_options or {})
    capabilities_ = caps or capabilities()
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities_,
            initialization_options=options,
            workspace_folders=[
                types.WorkspaceFolder(uri=from_fs_path(str(root)) or "", name="workspace")
            ] if folders else None,
            root_uri=from_fs_path(str(root)) if folders else None,
        )
    )
    editor.connected(result)
    try:
        yield editor
        # Editors put their own "lspilot:" before what the server shows: never twice.
        prefixed = [m.message for m in editor.messages if m.message.startswith("lspilot:")]
        assert not prefixed, f"messages that start with 'lspilot:': {prefixed}"
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 10)
        finally:
            await client.stop()
