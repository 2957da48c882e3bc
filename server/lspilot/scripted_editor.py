"""A scripted editor: an LSP client that behaves like a careful editor.

``lspilot demo`` and the end-to-end tests (``tests/e2e/harness.py``) both drive the
server through it, so the demo runs the same client code the tests trust. It wraps a
pygls ``LanguageClient`` (pytest-lsp's client is a subclass, so the tests hand in theirs)
and:

- keeps its own copy (version and text) of each document it opened, and tells the server
  of every change (``didOpen``, ``didChange``, incremental unless the server asks for
  whole documents);
- answers ``workspace/applyEdit`` as a careful editor does: all of the edit or none of
  it; a versioned ``TextDocumentEdit`` only onto the version it names; ``CreateFile``
  with its ``overwrite``/``ignoreIfExists``; plain ``changes`` when there are no
  ``documentChanges``; overlapping edits refused; one ``didChange`` per open document
  after applying. Files that are not open are saved, or kept in memory (``save``);
- creates work-done progress and records ``$/progress``, ``lspilot/stream``, messages,
  log messages and shown documents;
- structures code actions correctly (pygls-notes, trap 7).

Positions are the server's own helpers (:mod:`lspilot.text`). It is a client: it never
imports the server. Subclasses change what it does through the ``on_*`` hooks.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from attrs import define, field
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import to_fs_path

from lspilot.text import apply_edits, end_of, offset_at, split_lines

logger = logging.getLogger(__name__)

STREAM = "lspilot/stream"
# The server-to-client methods the scripted editor answers; a client handed in must not
# have handlers of its own for them (pygls allows one per method).
METHODS = (
    types.WINDOW_WORK_DONE_PROGRESS_CREATE,
    types.PROGRESS,
    STREAM,
    types.WORKSPACE_APPLY_EDIT,
    types.WINDOW_SHOW_MESSAGE,
    types.WINDOW_LOG_MESSAGE,
    types.WINDOW_SHOW_DOCUMENT,
)

# After a workspace edit: "closed" saves the files that were not open (as VS Code's
# files.refactoring.autoSave) and leaves open documents unsaved; "all" saves every file
# it changed; "none" writes nothing (files that are not open are edited in ``files``).
SavePolicy = Literal["closed", "all", "none"]
WorkDoneProgress = (
    types.WorkDoneProgressBegin | types.WorkDoneProgressReport | types.WorkDoneProgressEnd
)
_PROGRESS_KINDS: dict[str, type[WorkDoneProgress]] = {
    "begin": types.WorkDoneProgressBegin,
    "report": types.WorkDoneProgressReport,
    "end": types.WorkDoneProgressEnd,
}


def capabilities(
    *,
    progress: bool = True,
    show_document: bool = True,
    configuration: bool = False,
    encodings: Sequence[str] | None = None,
    create_files: bool = True,
    annotations: bool = False,
) -> types.ClientCapabilities:
    """What the scripted editor can do (less, where asked: an editor without the feature)."""
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


@define(kw_only=True)
class OpenDocument:
    uri: str
    language_id: str
    version: int
    text: str


@define(frozen=True, kw_only=True)
class FileEdit:
    """What one applied workspace edit did to one file."""

    uri: str
    path: Path | None  # None: not a file URI (an open document only)
    before: str | None  # None: the file did not exist
    after: str
    # The text edits in the order they were applied (each onto the text the previous one
    # left), as the didChange sent for an open document lists them.
    edits: tuple[types.TextEdit, ...]


class EditRefused(Exception):
    """A workspace edit the editor will not apply; nothing of it is applied."""

    def __init__(self, reason: str, change: int | None = None) -> None:
        super().__init__(reason)
        self.change = change  # the index of the failing entry of documentChanges


@define(kw_only=True)
class _Staged:
    uri: str
    path: Path | None
    is_open: bool
    before: str | None
    text: str | None
    edits: list[types.TextEdit] = field(factory=list)


class ScriptedEditor:
    def __init__(self, client: LanguageClient, *, save: SavePolicy = "closed") -> None:
        self.client = client
        self.save: SavePolicy = save
        self.encoding = "utf-16"  # the negotiated position encoding, once initialized
        self.server_capabilities: types.ServerCapabilities | None = None
        self.documents: dict[str, OpenDocument] = {}
        self.files: dict[Path, str] = {}  # files not open, as edited (save "none")
        self.edits: list[types.ApplyWorkspaceEditParams] = []  # every applyEdit received
        self.streams: list[dict[str, Any]] = []  # lspilot/stream, as dicts
        self.progress_reports: dict[types.ProgressToken, list[WorkDoneProgress]] = {}
        self.messages: list[types.ShowMessageParams] = []
        self.log_messages: list[types.LogMessageParams] = []
        self.shown_documents: list[types.ShowDocumentParams] = []
        fix_code_action_structuring(client)
        self._register()

    # -- the session ------------------------------------------------------------------------
    async def initialize(self, params: types.InitializeParams) -> types.InitializeResult:
        """``initialize``, then ``initialized``."""
        result = await self.client.initialize_async(params)
        self.connected(result)
        self.client.initialized(types.InitializedParams())
        return result

    def connected(self, result: types.InitializeResult) -> None:
        """Take in the server's answer to ``initialize`` (when another sent it)."""
        self.server_capabilities = result.capabilities
        encoding = result.capabilities.position_encoding
        self.encoding = str(getattr(encoding, "value", encoding) or "utf-16")

    # -- documents --------------------------------------------------------------------------
    def open_document(self, uri: str, text: str, language_id: str) -> None:
        self.documents[uri] = OpenDocument(uri=uri, language_id=language_id, version=1,
                                           text=text)
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)))

    def text(self, uri: str) -> str:
        return self.documents[uri].text

    def version(self, uri: str) -> int:
        return self.documents[uri].version

    def change(self, uri: str, range_: types.Range, new_text: str) -> None:
        """The user changes an open document: one edit, one ``didChange``."""
        self._changed(self.documents[uri], [types.TextEdit(range=range_, new_text=new_text)])

    def _changed(self, document: OpenDocument, edits: Sequence[types.TextEdit]) -> None:
        """Apply ``edits`` one after the other and tell the server (one version step)."""
        for edit in edits:
            document.text = apply_edits(document.text, [edit], self.encoding)
        document.version += 1
        changes: list[types.TextDocumentContentChangeEvent]
        if self._sends_whole_documents():
            changes = [types.TextDocumentContentChangeWholeDocument(text=document.text)]
        else:
            changes = [types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                       for e in edits]
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=document.uri, version=document.version),
            content_changes=changes))

    def _sends_whole_documents(self) -> bool:
        sync = self.server_capabilities.text_document_sync if self.server_capabilities \
            else None
        if isinstance(sync, types.TextDocumentSyncOptions):
            sync = sync.change
        return sync == types.TextDocumentSyncKind.Full

    # -- workspace/applyEdit ------------------------------------------------------------------
    async def on_apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        """The answer to ``workspace/applyEdit`` (already recorded in ``edits``)."""
        return self.apply_edit(params.edit)

    def apply_edit(self, edit: types.WorkspaceEdit) -> types.ApplyWorkspaceEditResult:
        """Apply all of ``edit`` or, answering why, none of it."""
        try:
            staged = self._stage(edit)
            done = [self._commit(item) for item in staged if _changes(item)]
        except EditRefused as exc:
            return types.ApplyWorkspaceEditResult(
                applied=False, failure_reason=str(exc), failed_change=exc.change)
        for file_edit in done:
            self.on_file_edited(file_edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    def _stage(self, edit: types.WorkspaceEdit) -> list[_Staged]:
        """Every file's new text, worked out before anything changes."""
        staged: dict[str, _Staged] = {}

        def entry(uri: str) -> _Staged:
            if uri not in staged:
                staged[uri] = self._start(uri)
            return staged[uri]

        if edit.document_changes is not None:  # preferred over `changes` (the spec)
            for index, change in enumerate(edit.document_changes):
                try:
                    if isinstance(change, types.CreateFile):
                        self._stage_create(entry(change.uri), change.options)
                    elif isinstance(change, types.TextDocumentEdit):
                        item = entry(change.text_document.uri)
                        self._check_version(item, change.text_document.version)
                        self._stage_edits(item, change.edits)
                    else:
                        raise EditRefused(f"cannot do {type(change).__name__} (not announced)")
                except EditRefused as exc:
                    raise EditRefused(str(exc), index) from None
        else:
            for uri, text_edits in (edit.changes or {}).items():
                self._stage_edits(entry(uri), text_edits)
        return list(staged.values())

    def _start(self, uri: str) -> _Staged:
        document = self.documents.get(uri)
        path = _path(uri)
        if document is not None:
            return _Staged(uri=uri, path=path, is_open=True, before=document.text,
                           text=document.text)
        if path is None:
            raise EditRefused(f"{uri} is not open and not a file")
        text: str | None = None
        if path in self.files:
            text = self.files[path]
        elif path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise EditRefused(f"cannot read {path}: {exc}") from None
        return _Staged(uri=uri, path=path, is_open=False, before=text, text=text)

    def _stage_create(self, item: _Staged, options: types.CreateFileOptions | None) -> None:
        if item.text is None:
            item.text = ""
        elif options is not None and options.overwrite:
            if item.is_open:  # emptied as an edit, so the server hears of it
                self._stage_edits(item, [types.TextEdit(
                    range=types.Range(types.Position(0, 0), end_of(item.text, self.encoding)),
                    new_text="")])
            item.text = ""
        elif options is None or not options.ignore_if_exists:
            raise EditRefused(f"{item.uri} exists (neither overwrite nor ignoreIfExists)")

    def _check_version(self, item: _Staged, wanted: int | None) -> None:
        if wanted is None or not item.is_open:
            return
        version = self.documents[item.uri].version
        if wanted != version:
            raise EditRefused(f"version {wanted} != {version}")

    def _stage_edits(self, item: _Staged, edits: Sequence[Any]) -> None:
        if item.text is None:
            raise EditRefused(f"{item.uri} does not exist")
        plain_edits = []
        for edit in edits:
            if not isinstance(edit, types.TextEdit | types.AnnotatedTextEdit):
                raise EditRefused(f"cannot apply a {type(edit).__name__}")
            plain_edits.append(types.TextEdit(range=edit.range, new_text=edit.new_text))
        ordered = self._in_order(item.text, plain_edits)
        for edit in ordered:
            item.text = apply_edits(item.text, [edit], self.encoding)
        item.edits.extend(ordered)

    def _in_order(self, text: str, edits: list[types.TextEdit]) -> list[types.TextEdit]:
        """``edits`` (all against ``text``) in an order to apply them one by one.

        Last in the text first, so each range still means what it meant; inserts at one
        place keep their order in the text as they had it in the list (the spec).
        """
        lines = split_lines(text)
        spans = sorted(
            (offset_at(lines, e.range.start, self.encoding),
             offset_at(lines, e.range.end, self.encoding), index)
            for index, e in enumerate(edits)
        )
        for start, end, _ in spans:
            if end < start:
                raise EditRefused("an edit ends before it starts")
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            if end > start:
                raise EditRefused("the edits overlap")
        return [edits[index] for _, _, index in reversed(spans)]

    def _commit(self, item: _Staged) -> FileEdit:
        assert item.text is not None  # staged: created or edited
        text = item.text
        if item.is_open:
            self._changed(self.documents[item.uri], item.edits)
        elif self.save == "none":
            assert item.path is not None
            self.files[item.path] = text
        if item.path is not None and (self.save == "all"
                                      or (self.save == "closed" and not item.is_open)):
            try:
                item.path.parent.mkdir(parents=True, exist_ok=True)
                item.path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise EditRefused(f"cannot write {item.path}: {exc}") from None
        return FileEdit(uri=item.uri, path=item.path, before=item.before, after=text,
                        edits=tuple(item.edits))

    # -- progress and notifications ----------------------------------------------------------
    def expect_progress(self, token: types.ProgressToken) -> None:
        """A work-done token the editor made itself (sent as a request's workDoneToken)."""
        self.progress_reports.setdefault(token, [])

    def progress(self, token: types.ProgressToken) -> list[WorkDoneProgress]:
        return self.progress_reports.get(token, [])

    def stream_text(self, token: Any = None) -> str:
        return "".join(
            s["delta"] for s in self.streams if token is None or s["token"] == token
        )

    def _register(self) -> None:
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            if params.token in self.progress_reports:
                self.on_protocol_problem(f"Duplicate progress token: {params.token!r}")
            self.progress_reports.setdefault(params.token, [])

        def progress(params: types.ProgressParams) -> None:
            if params.token not in self.progress_reports:
                self.on_protocol_problem(f"Unknown progress token: {params.token!r}")
            value = plain(params.value)
            if not value:
                return
            kind = _PROGRESS_KINDS.get(str(value.get("kind"))) if isinstance(value, dict) else None
            if kind is None:
                self.on_protocol_problem(f"Unknown progress value: {value!r}")
                return
            report: WorkDoneProgress = self.client.protocol._converter.structure(value, kind)
            self.progress_reports.setdefault(params.token, []).append(report)
            self.on_progress(params.token, report)

        def stream(params: Any) -> None:
            notification = plain(params)
            self.streams.append(notification)
            self.on_stream(notification)

        async def apply_edit(
            params: types.ApplyWorkspaceEditParams,
        ) -> types.ApplyWorkspaceEditResult:
            self.edits.append(params)
            return await self.on_apply_edit(params)

        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)
            self.on_message(params)

        def log_message(params: types.LogMessageParams) -> None:
            self.log_messages.append(params)
            self.on_log_message(params)

        def show_document(params: types.ShowDocumentParams) -> types.ShowDocumentResult:
            self.shown_documents.append(params)
            return types.ShowDocumentResult(success=True)

        handlers: dict[str, Callable[..., Any]] = {
            types.WINDOW_WORK_DONE_PROGRESS_CREATE: create_progress,
            types.PROGRESS: progress,
            STREAM: stream,
            types.WORKSPACE_APPLY_EDIT: apply_edit,
            types.WINDOW_SHOW_MESSAGE: show_message,
            types.WINDOW_LOG_MESSAGE: log_message,
            types.WINDOW_SHOW_DOCUMENT: show_document,
        }
        assert tuple(handlers) == METHODS
        for method, handler in handlers.items():
            self.client.feature(method)(handler)

    # -- hooks ------------------------------------------------------------------------------
    def on_progress(self, token: types.ProgressToken, value: WorkDoneProgress) -> None:
        """A ``$/progress`` value (already recorded)."""

    def on_stream(self, notification: dict[str, Any]) -> None:
        """An ``lspilot/stream`` notification (already recorded)."""

    def on_message(self, params: types.ShowMessageParams) -> None:
        """A ``window/showMessage`` (already recorded)."""

    def on_log_message(self, params: types.LogMessageParams) -> None:
        """A ``window/logMessage`` (already recorded)."""

    def on_file_edited(self, edit: FileEdit) -> None:
        """A workspace edit changed (or created) a file."""

    def on_protocol_problem(self, message: str) -> None:
        """The server broke the protocol (a progress token it never created...)."""
        logger.warning("%s", message)


def fix_code_action_structuring(client: LanguageClient) -> None:
    """lsprotocol structures a code action carrying a ``command`` as a Command, losing it
    (pygls-notes, trap 7): only a string ``command`` makes a Command."""
    converter = client.protocol._converter

    def structure_action(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            command: types.Command = converter.structure(obj, types.Command)
            return command
        action: types.CodeAction = converter.structure(obj, types.CodeAction)
        return action

    converter.register_structure_hook(types.Command | types.CodeAction, structure_action)


def plain(value: Any) -> Any:
    """pygls hands unknown payloads over as namedtuple-like objects: make them dicts."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__attrs_attrs__"):
        return {a.name: plain(getattr(value, a.name)) for a in value.__attrs_attrs__}
    return value


def _path(uri: str) -> Path | None:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(path) if path else None


def _changes(item: _Staged) -> bool:
    return bool(item.edits) or item.text != item.before
