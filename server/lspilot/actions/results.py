"""Turning a finished answer into what the editor gets: pure edit construction."""

from __future__ import annotations

from pathlib import Path

from attrs import define
from lsprotocol import types

from lspilot.actions.extract import extract_code
from lspilot.actions.testfiles import TestTarget, wrap_rust_tests
from lspilot.edits import (
    CONFIRM_ANNOTATION,
    EditTarget,
    change_annotations,
    fit_to_selection,
    make_text_edit,
    workspace_edit,
)
from lspilot.errors import LspilotError


class ActionFailed(LspilotError):
    """An action that cannot finish, with a kind for ``error.type`` and a clear message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message, kind=kind)


def code_or_fail(answer: str) -> str:
    code = extract_code(answer)
    if code is None:
        raise ActionFailed(
            "no_code",
            "The model's answer held no code, so nothing was changed. Try again, "
            "add an instruction, or use a stronger model.",
        )
    return code


def refactored_text(answer: str, selected: str, line_prefix: str) -> str:
    return fit_to_selection(code_or_fail(answer), selected, line_prefix)


@define(frozen=True, kw_only=True)
class WrittenTests:
    """What lspilot wrote into a test file: only this part is ever replaced by a repair."""

    uri: str
    text: str  # the whole file after the edit
    start: int  # where lspilot's tests start in it
    code: str  # lspilot's tests

    def replaced(self, text: str, start: int, code: str) -> WrittenTests:
        return WrittenTests(uri=self.uri, text=text, start=start, code=code)


def test_code(test: TestTarget, answer: str) -> str:
    code = code_or_fail(answer)
    return wrap_rust_tests(code) if test.same_file else code


def test_file_edit(
    test: TestTarget,
    answer: str,
    existing: EditTarget | None,
    new_uri: str,
    *,
    document_changes: bool,
    confirm: bool,
) -> tuple[types.WorkspaceEdit, WrittenTests]:
    """Append to the test file when it exists, else create it; never overwrite.

    ``existing`` is None only when the file is missing and the editor can create files.
    """
    code = test_code(test, answer)
    if existing is not None:
        # One blank line between what was there and the new tests.
        if not existing.text or existing.text.endswith("\n\n"):
            separator = ""
        elif existing.text.endswith("\n"):
            separator = "\n"
        else:
            separator = "\n\n"
        insert = types.Range(start=existing.end, end=existing.end)
        written = WrittenTests(uri=existing.uri, text=existing.text + separator + code,
                               start=len(existing.text) + len(separator), code=code)
        return workspace_edit(existing, [(insert, separator + code)],
                               document_changes=document_changes, confirm=confirm), written
    empty = types.Range(start=types.Position(0, 0), end=types.Position(0, 0))
    text_edit = make_text_edit(empty, code, confirm)
    create = types.CreateFile(
        uri=new_uri,
        options=types.CreateFileOptions(ignore_if_exists=True),
        annotation_id=CONFIRM_ANNOTATION if confirm else None,
    )
    doc_edit = types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=new_uri, version=None),
        edits=[text_edit],
    )
    written = WrittenTests(uri=new_uri, text=code, start=0, code=code)
    return types.WorkspaceEdit(
        document_changes=[create, doc_edit], change_annotations=change_annotations(confirm)
    ), written


def explanation_path(cache_dir: Path, source_name: str, first: int, last: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in source_name)
    return cache_dir / f"{safe}-L{first + 1}-{last + 1}.explanation.md"
