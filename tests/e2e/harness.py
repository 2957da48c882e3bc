"""Drive the real lspilot server over stdio like an editor would (pytest-lsp).

The :class:`Editor` keeps its own copy of each open document, applies the server's
``workspace/applyEdit`` to it (sending ``didChange`` as a real editor does), creates
files on ``CreateFile``, and records progress, ``lspilot/stream`` notifications,
messages and shown documents.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path, to_fs_path
from pytest_lsp import LanguageClient, make_test_lsp_client

# Re-exported: the tests build ranges with the server's own LSP position helpers.
from lspilot.text import apply_edits, end_after, offset_at, position_of, range_of  # noqa: F401
from tests.fake_upstream import FakeUpstream

SERVER_COMMAND = [sys.executable, "-m", "lspilot", "--log-level", "DEBUG"]
API_KEY = "sk-test-0123456789abcdef"


def capabilities(
    *,
    progress: bool = True,
    show_document: bool = True,
    configuration: bool = False,
    encodings: list[str] | None = None,
    create_files: bool = True,
    annotations: bool = False,
) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(
            work_done_progress=progress,
            show_document=types.ShowDocumentClientCapabilities(support=show_document),
        ),
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True,
            configuration=configuration,
            workspace_edit=types.WorkspaceEditClientCapabilities(
                document_changes=True,
                resource_operations=[types.ResourceOperationKind.Create] if create_files else [],
                change_annotation_support=(
                    types.ChangeAnnotationsSupportOptions(groups_on_label=True)
                    if annotations
                    else None
                ),
            ),
        ),
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind(e) for e in encodings]
            if encodings
            else None
        ),
    )


class Editor:
    def __init__(self, client: LanguageClient, upstream: FakeUpstream, root: Path) -> None:
        self.client = client
        self.upstream = upstream
        self.root = root
        self.encoding = "utf-16"
        self.documents: dict[str, tuple[int, str]] = {}
        self.streams: list[dict[str, Any]] = []
        self.edits: list[types.ApplyWorkspaceEditParams] = []
        # How to answer applyEdit: "apply", "reject", or "hold" (answer only once
        # `release_edits` is set, as a slow or stuck editor would).
        self.apply_mode = "apply"
        self.release_edits = asyncio.Event()
        self.stream_event = asyncio.Event()
        self.server_capabilities: types.ServerCapabilities | None = None

    # -- documents ---------------------------------------------------------------------
    def open(self, relative: str, text: str, language: str = "python") -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        uri = from_fs_path(str(path))
        assert uri is not None
        self.documents[uri] = (1, text)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
            )
        )
        return uri

    def text(self, uri: str) -> str:
        return self.documents[uri][1]

    def change(self, uri: str, range_: types.Range, new_text: str) -> None:
        version, text = self.documents[uri]
        text = apply_edits(text, [types.TextEdit(range=range_, new_text=new_text)],
                           self.encoding)
        self.documents[uri] = (version + 1, text)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version + 1),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=range_, text=new_text)
                ],
            )
        )

    # -- the server's requests -------------------------------------------------------------
    async def on_apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        self.edits.append(params)
        if self.apply_mode == "reject":
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="user said no")
        if self.apply_mode == "error":  # as eglot answers a "no" (its code is positive)
            raise JsonRpcException("User cancelled server edit", code=32603)
        if self.apply_mode == "hold":
            await self.release_edits.wait()
        edit = params.edit
        for change in edit.document_changes or []:
            if isinstance(change, types.CreateFile):
                path = Path(to_fs_path(change.uri) or "")
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("", encoding="utf-8")
            elif isinstance(change, types.TextDocumentEdit):
                uri = change.text_document.uri
                wanted = change.text_document.version
                if uri in self.documents:
                    version, _ = self.documents[uri]
                    if wanted is not None and wanted != version:
                        return types.ApplyWorkspaceEditResult(
                            applied=False, failure_reason=f"version {wanted} != {version}"
                        )
                    for text_edit in change.edits:
                        self.change(uri, text_edit.range, text_edit.new_text)
                else:
                    path = Path(to_fs_path(uri) or "")
                    old = path.read_text(encoding="utf-8") if path.exists() else ""
                    path.write_text(apply_edits(old, list(change.edits), self.encoding),
                                    encoding="utf-8")
        for uri, text_edits in (edit.changes or {}).items():
            for text_edit in text_edits:
                self.change(uri, text_edit.range, text_edit.new_text)
        return types.ApplyWorkspaceEditResult(applied=True)

    def on_stream(self, params: Any) -> None:
        self.streams.append(plain(params))
        self.stream_event.set()

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
            self.client.progress_reports.setdefault(token, [])  # a client-made token
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

    def stream_text(self, token: Any = None) -> str:
        return "".join(
            s["delta"] for s in self.streams if token is None or s["token"] == token
        )

    def progress(self, token: Any) -> list[Any]:
        return self.client.progress_reports.get(token, [])

    async def wait_for_stream(self, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not self.streams:
                self.stream_event.clear()
                await self.stream_event.wait()

        await asyncio.wait_for(wait(), timeout)


def plain(value: Any) -> Any:
    """pygls hands unknown payloads over as namedtuple-like objects; make them dicts."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _client_factory() -> LanguageClient:
    client = make_test_lsp_client()
    converter = client.protocol._converter

    # pytest-lsp trap: a CodeAction with a `command` field would be structured as a
    # Command (pygls-notes, trap 7).
    def structure_action(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(types.Command | types.CodeAction, structure_action)
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
) -> AsyncIterator[Editor]:
    """A started, initialized lspilot with an editor around it; shut down afterwards."""
    client = _client_factory()
    editor = Editor(client, upstream, root)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    async def apply_edit(params: types.ApplyWorkspaceEditParams) -> Any:
        return await editor.on_apply_edit(params)

    @client.feature("lspilot/stream")
    def stream(params: Any) -> None:
        editor.on_stream(params)

    if configuration is not None:
        client.set_configuration(configuration, section="lspilot")
    server_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root.parent / f"home-{uuid.uuid4().hex[:6]}"),
        "XDG_CACHE_HOME": str(root.parent / "cache"),
        **(env or {}),
    }
    await client.start_io(*SERVER_COMMAND, env=server_env)
    options = {"baseUrl": upstream.base_url, "apiKey": API_KEY, "retryBaseSeconds": 0.05}
    options.update(init_options or {})
    capabilities_ = caps or capabilities()
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities_,
            initialization_options=options,
            workspace_folders=[
                types.WorkspaceFolder(uri=from_fs_path(str(root)) or "", name="workspace")
            ],
            root_uri=from_fs_path(str(root)),
        )
    )
    editor.server_capabilities = result.capabilities
    encoding = result.capabilities.position_encoding
    editor.encoding = str(encoding.value if hasattr(encoding, "value") else encoding or "utf-16")
    try:
        yield editor
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 10)
        finally:
            await client.stop()
