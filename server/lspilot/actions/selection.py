"""What an action reads from the workspace: the selection as it was, the folder, the test file."""

from __future__ import annotations

from pathlib import Path

from attrs import define
from lsprotocol import types
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument, Workspace

from lspilot.actions import small_model_tests
from lspilot.actions.prompts import PromptInput
from lspilot.actions.testfiles import TestTarget, check_test_file, choose_test_file
from lspilot.settings import Settings
from lspilot.workspace import ensure_inside, language_of, relative, root_for


@define(kw_only=True)
class Snapshot:
    """The document as it was when the action started."""

    document: TextDocument
    version: int | None
    range: types.Range
    selected: str
    line_prefix: str
    first_line: int
    last_line: int


def snapshot(workspace: Workspace, uri: str, range_: types.Range) -> Snapshot:
    document = workspace.get_text_document(uri)
    lines = document.lines
    start = document.position_from_client_units(range_.start)
    end = document.position_from_client_units(range_.end)
    selected = document.text_in_client_range(range_)
    first_line_text = lines[start.line] if start.line < len(lines) else ""
    last_line = end.line if end.character > 0 or end.line == start.line else end.line - 1
    return Snapshot(
        document=document,
        version=document.version,
        range=range_,
        selected=selected,
        line_prefix=first_line_text[: start.character],
        first_line=start.line,
        last_line=max(start.line, last_line),
    )


def test_target(workspace: Workspace, snap: Snapshot) -> TestTarget:
    source = Path(snap.document.path)
    root = root_for(workspace, source)
    target = choose_test_file(source, language_of(snap.document), root)
    ensure_inside(target.path, root, purpose="write tests to",
                  fix="Open the file from inside its project folder.")
    open_ = workspace.text_documents.get(from_fs_path(str(target.path)) or "")
    if not target.same_file and open_ is None:  # the editor's text is used when it is open
        check_test_file(target.path)
    return target


def test_import(workspace: Workspace, snap: Snapshot) -> tuple[str | None, list[str]]:
    """For Python: how the tests import the code under test (``from stats import
    summarize``, as ``python -m pytest`` in the workspace folder finds it), and its names."""
    if language_of(snap.document) != "python":
        return None, []
    source = Path(snap.document.path)
    names = small_model_tests.names_under_test(snap.selected,
                                               snap.document.lines[: snap.first_line])
    module = small_model_tests.python_module(source, root_for(workspace, source))
    return small_model_tests.import_line(module, names), names


def prompt_input(workspace: Workspace, snap: Snapshot, settings: Settings, *,
                 test: TestTarget | None, diagnostics: tuple[str, ...],
                 instruction: str | None) -> PromptInput:
    source = Path(snap.document.path)
    root = root_for(workspace, source)
    return PromptInput(
        language=language_of(snap.document),
        file_name=relative(source, root),
        lines=tuple(snap.document.lines),
        selection=snap.selected,
        first_line=snap.first_line,
        last_line=snap.last_line,
        diagnostics=diagnostics,
        instruction=instruction,
        test_file=None if test is None else relative(test.path, root),
        test_import=None if test is None else test_import(workspace, snap)[0],
        context_lines=settings.context_lines,
        budget_chars=settings.context_budget_chars,
    )


def describe_diagnostic(diagnostic: types.Diagnostic) -> str:
    severity = {1: "error", 2: "warning", 3: "info", 4: "hint"}.get(
        int(diagnostic.severity or 1), "error"
    )
    source = f" ({diagnostic.source})" if diagnostic.source else ""
    return f"- line {diagnostic.range.start.line + 1}: {severity}: {diagnostic.message}{source}"


