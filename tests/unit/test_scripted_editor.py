"""The scripted editor (lspilot demo's and the e2e tests' editor) applies edits carefully."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from lspilot.scripted_editor import FileEdit, SavePolicy, ScriptedEditor
from lspilot.text import apply_edits, range_of

SOURCE = "def f():\n    return 1\n\n\ndef g():\n    return 2\n"


class Recorder(ScriptedEditor):
    def __init__(self, save: SavePolicy = "closed") -> None:
        super().__init__(LanguageClient("test", "0"), save=save)
        self.sent: list[tuple[str, Any]] = []
        self.file_edits: list[FileEdit] = []
        self.client.protocol.notify = lambda method, params=None: self.sent.append(  # type: ignore[method-assign]
            (method, params))

    def on_file_edited(self, edit: FileEdit) -> None:
        self.file_edits.append(edit)

    def changes(self) -> list[types.DidChangeTextDocumentParams]:
        return [p for m, p in self.sent if m == types.TEXT_DOCUMENT_DID_CHANGE]


def uri_of(path: Path) -> str:
    uri = from_fs_path(str(path))
    assert uri is not None
    return uri


def doc_edit(uri: str, version: int | None, *edits: types.TextEdit) -> types.TextDocumentEdit:
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=list(edits))


def edit(range_: types.Range, text: str) -> types.TextEdit:
    return types.TextEdit(range=range_, new_text=text)


def test_a_versioned_edit_is_applied_and_told_to_the_server_once(tmp_path):
    editor = Recorder()
    uri = uri_of(tmp_path / "a.py")
    editor.open_document(uri, SOURCE, "python")
    result = editor.apply_edit(types.WorkspaceEdit(document_changes=[
        doc_edit(uri, 1, edit(range_of(SOURCE, "return 1"), "return 10"),
                 edit(range_of(SOURCE, "return 2"), "return 20"))]))
    assert result.applied
    expected = SOURCE.replace("return 1", "return 10").replace("return 2", "return 20")
    assert editor.text(uri) == expected and editor.version(uri) == 2
    (change,) = editor.changes()
    assert change.text_document.version == 2
    # the content changes, applied in order, give the editor's text (as the server does)
    text = SOURCE
    for piece in change.content_changes:
        assert isinstance(piece, types.TextDocumentContentChangePartial)
        text = apply_edits(text, [edit(piece.range, piece.text)])
    assert text == expected
    (file_edit,) = editor.file_edits
    assert (file_edit.before, file_edit.after) == (SOURCE, expected)
    assert not (tmp_path / "a.py").exists()  # an open document stays unsaved


def test_inserts_at_one_place_keep_their_order():
    editor = Recorder()
    editor.open_document("file:///x.py", "ab", "python")
    here = types.Range(types.Position(0, 1), types.Position(0, 1))
    assert editor.apply_edit(types.WorkspaceEdit(
        changes={"file:///x.py": [edit(here, "1"), edit(here, "2")]})).applied
    assert editor.text("file:///x.py") == "a12b"


def test_a_stale_version_applies_nothing(tmp_path):
    editor = Recorder()
    uri = uri_of(tmp_path / "a.py")
    editor.open_document(uri, SOURCE, "python")
    editor.change(uri, types.Range(types.Position(0, 0), types.Position(0, 0)), "# x\n")
    new = tmp_path / "test_a.py"
    result = editor.apply_edit(types.WorkspaceEdit(document_changes=[
        types.CreateFile(uri=uri_of(new)),
        doc_edit(uri_of(new), None, edit(types.Range(types.Position(0, 0),
                                                     types.Position(0, 0)), "tests\n")),
        doc_edit(uri, 1, edit(range_of(SOURCE, "return 1"), "return 10")),
    ]))
    assert not result.applied
    assert result.failure_reason == "version 1 != 2" and result.failed_change == 2
    assert not new.exists() and editor.text(uri) == "# x\n" + SOURCE
    assert len(editor.changes()) == 1 and not editor.file_edits


def test_overlapping_edits_are_refused():
    editor = Recorder()
    editor.open_document("file:///x.py", SOURCE, "python")
    result = editor.apply_edit(types.WorkspaceEdit(changes={"file:///x.py": [
        edit(range_of(SOURCE, "def f():\n    return"), ""),
        edit(range_of(SOURCE, "return 1"), "")]}))
    assert not result.applied and "overlap" in (result.failure_reason or "")
    assert editor.text("file:///x.py") == SOURCE


@pytest.mark.parametrize("save", ["closed", "none"])
def test_a_created_file_is_saved_or_kept_in_memory(tmp_path, save):
    editor = Recorder(save)
    new = tmp_path / "tests" / "test_a.py"
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    assert editor.apply_edit(types.WorkspaceEdit(document_changes=[
        types.CreateFile(uri=uri_of(new), options=types.CreateFileOptions(ignore_if_exists=True)),
        doc_edit(uri_of(new), None, edit(start, "def test(): pass\n")),
    ])).applied
    if save == "closed":
        assert new.read_text() == "def test(): pass\n" and not editor.files
    else:
        assert not new.exists() and editor.files == {new: "def test(): pass\n"}
    (file_edit,) = editor.file_edits
    assert file_edit.before is None and file_edit.path == new


def test_an_existing_file_is_not_overwritten_unless_asked(tmp_path):
    editor = Recorder()
    path = tmp_path / "a.py"
    path.write_text("kept\n")
    refused = editor.apply_edit(types.WorkspaceEdit(document_changes=[
        types.CreateFile(uri=uri_of(path))]))
    assert not refused.applied and path.read_text() == "kept\n"
    assert editor.apply_edit(types.WorkspaceEdit(document_changes=[types.CreateFile(
        uri=uri_of(path), options=types.CreateFileOptions(ignore_if_exists=True))])).applied
    assert path.read_text() == "kept\n" and not editor.file_edits
    assert editor.apply_edit(types.WorkspaceEdit(document_changes=[types.CreateFile(
        uri=uri_of(path), options=types.CreateFileOptions(overwrite=True))])).applied
    assert path.read_text() == ""


def test_an_edit_to_a_missing_file_is_refused(tmp_path):
    editor = Recorder()
    missing = uri_of(tmp_path / "missing.py")
    result = editor.apply_edit(types.WorkspaceEdit(document_changes=[doc_edit(
        missing, None, edit(types.Range(types.Position(0, 0), types.Position(0, 0)), "x"))]))
    assert not result.applied and "does not exist" in (result.failure_reason or "")


def test_document_changes_are_preferred_over_changes():
    editor = Recorder()
    editor.open_document("file:///x.py", "a\n", "python")
    whole = types.Range(types.Position(0, 0), types.Position(0, 1))
    assert editor.apply_edit(types.WorkspaceEdit(
        changes={"file:///x.py": [edit(whole, "from changes")]},
        document_changes=[doc_edit("file:///x.py", 1, edit(whole, "b"))])).applied
    assert editor.text("file:///x.py") == "b\n"


def test_a_server_that_wants_whole_documents_gets_them():
    editor = Recorder()
    editor.connected(types.InitializeResult(capabilities=types.ServerCapabilities(
        text_document_sync=types.TextDocumentSyncKind.Full)))
    editor.open_document("file:///x.py", "a\n", "python")
    editor.change("file:///x.py", types.Range(types.Position(0, 0), types.Position(0, 0)), "b")
    (change,) = editor.changes()
    assert change.content_changes == [types.TextDocumentContentChangeWholeDocument(text="ba\n")]


def test_a_code_action_with_a_command_stays_a_code_action():
    editor = Recorder()
    converter = editor.client.protocol._converter
    action = converter.structure(
        {"title": "lspilot: Refactor", "kind": "refactor.rewrite",
         "command": {"title": "Refactor", "command": "lspilot.refactor", "arguments": []}},
        types.Command | types.CodeAction)
    assert isinstance(action, types.CodeAction) and action.command is not None
    command = converter.structure({"title": "Refactor", "command": "lspilot.refactor"},
                                  types.Command | types.CodeAction)
    assert isinstance(command, types.Command)
