"""The agent's tools in an LSP editor: files as the editor holds them, edits as versioned
``workspace/applyEdit`` (one undo step each), runs with the key out of their environment.

Edits land in the editor's buffers, which may stay unsaved; before anything runs, the
files the agent changed are written to disk as the editor holds them, so a test run sees
the agent's work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lsprotocol import types
from pygls.uris import from_fs_path

from lspilot import logs
from lspilot.agent.files import ToolError, ToolRefused, WorkspaceFiles
from lspilot.agent.tools import CommandRun, TestsRun
from lspilot.edits import EditTarget, declined, replacement_edit
from lspilot.services import Services
from lspilot.settings import Settings
from lspilot.testing import commands, report, runner
from lspilot.text import position_of
from lspilot.workspace import folders, open_text

log = logging.getLogger(__name__)

# A test file's language by its suffix (run_tests with a path).
LANGUAGES = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript",
             ".jsx": "javascriptreact", ".tsx": "typescriptreact", ".go": "go",
             ".rs": "rust", ".java": "java"}
# The project's language by a file at its root (run_tests without a path).
PROJECT_FILES = (("pyproject.toml", "python"), ("setup.py", "python"), ("pytest.ini", "python"),
                 ("package.json", "javascript"), ("go.mod", "go"), ("Cargo.toml", "rust"),
                 ("pom.xml", "java"))


class LspHost:
    def __init__(self, services: Services, settings: Settings, uri: str | None,
                 on_edit: Callable[[], None] = lambda: None) -> None:
        self.services = services
        self.settings = settings
        self.uri = uri
        self.on_edit = on_edit  # an edit is in the user's files (a cancel says so)
        self.files = WorkspaceFiles(folders(services.workspace), settings.context_exclude,
                                    lambda path: open_text(services.workspace, path))
        self.changed: set[Path] = set()

    # -- reading --------------------------------------------------------------------------
    # -- editing --------------------------------------------------------------------------
    async def replace_text(self, path: Path, expected: str, start: int, end: int,
                           new: str) -> None:
        uri = from_fs_path(str(path)) or ""
        document = self.services.workspace.text_documents.get(uri)
        encoding = _encoding(self.services)
        target = EditTarget(uri=uri, version=document.version if document else None,
                            text=expected, end=position_of(expected, len(expected), encoding))
        range_ = types.Range(position_of(expected, start, encoding),
                             position_of(expected, end, encoding))
        editor = self.services.editor
        edit = replacement_edit(target, range_, new,
                                document_changes=editor.supports_document_changes,
                                confirm=False)
        reply = await editor.apply_edit(edit, "lspilot agent: edit")
        if not reply.applied:
            _refused_by_user(reply.failure_reason)
            raise ToolError("The editor did not apply the edit"
                            f"{': ' + reply.failure_reason if reply.failure_reason else ''}; "
                            "the file is unchanged.")
        self.on_edit()
        if document is None:
            # Not open: the editor may keep it in an unsaved buffer, so the disk gets the
            # same text now (what runs must see it).
            _write(path, expected[:start] + new + expected[end:])
        self.changed.add(path)

    async def create_file(self, path: Path, content: str) -> None:
        editor = self.services.editor
        uri = from_fs_path(str(path)) or ""
        if editor.supports_create_file:
            empty = types.Range(types.Position(0, 0), types.Position(0, 0))
            edit = types.WorkspaceEdit(document_changes=[
                types.CreateFile(uri=uri, options=types.CreateFileOptions(
                    overwrite=False, ignore_if_exists=False)),
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri,
                                                                               version=None),
                    edits=[types.TextEdit(range=empty, new_text=content)])])
            reply = await editor.apply_edit(edit, "lspilot agent: create a file")
            if not reply.applied:
                _refused_by_user(reply.failure_reason)
                raise ToolError("The editor did not create the file"
                                f"{': ' + reply.failure_reason if reply.failure_reason else ''}.")
        _write(path, content, only_if_empty=True)
        self.changed.add(path)
        self.on_edit()

    def _sync_to_disk(self) -> None:
        """The files the agent changed, written as the editor holds them."""
        for path in self.changed:
            text = open_text(self.services.workspace, path)
            if text is None:
                continue
            try:
                if path.read_text(encoding="utf-8") == text:
                    continue
            except OSError:
                pass
            path.write_text(text, encoding="utf-8")

    # -- running --------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        return runner.clean_environment(os.environ, logs.secrets())

    async def run_command(self, argv: Sequence[str], cwd: Path) -> CommandRun:
        self._sync_to_disk()
        try:
            run = await runner.run(argv, cwd, limit_seconds=self.settings.test_timeout,
                                   env=self._environment())
        except runner.TestCommandFailed as exc:
            raise ToolError(str(exc)) from None
        log.info("Agent command: %s", runner.describe(run, cwd))
        return CommandRun(run.exit_code, logs.scrub(run.output), run.timed_out)

    def test_command(self, path: Path | None) -> tuple[str, ...] | None:
        language = LANGUAGES.get(path.suffix) if path is not None else None
        root = self.files.folder_of(path) if path is not None else None
        root = root or self.files.root
        if language is None:
            language = next((lang for name, lang in PROJECT_FILES if (root / name).exists()),
                            "python")
        return commands.command_for(language, self.settings.test_command, root)

    def chosen_by_workspace(self, tool: str) -> bool:
        """Whether a workspace's settings chose what ``tool`` runs (its testCommand)."""
        return tool == "run_tests" and self.services.store.set_by_workspace(
            self.uri, ("testCommand",))

    async def run_tests(self, path: Path | None) -> TestsRun:
        template = self.test_command(path)
        if template is None:
            raise ToolError("No test command is known for this project: the user can set "
                            "testCommand.")
        root = (self.files.folder_of(path) if path is not None else None) or self.files.root
        argv = commands.expand(template, root, path if path is not None else root)
        self._sync_to_disk()
        try:
            run = await runner.run(argv, root, limit_seconds=self.settings.test_timeout,
                                   env=self._environment())
        except runner.TestCommandFailed as exc:
            raise ToolError(str(exc)) from None
        found = report.counts(run.output, run.exit_code)
        log.info("Agent test run: %s; %d passed, %d failed", runner.describe(run, root),
                 found.passed, found.failed)
        return TestsRun(commands.shown(argv), found.passed, found.failed, run.exit_code,
                        report.trimmed(logs.scrub(run.output)), run.timed_out)


def _refused_by_user(reason: str | None) -> None:
    """An editor that previews the agent's edits says when the user declined one (an
    empty reason is not enough here: lspilot did not ask for a confirmation)."""
    if reason and reason.strip() and declined(reason):
        raise ToolRefused("Not applied: the user declined this edit, so the file is "
                          "unchanged. Do not make the same edit again: continue another "
                          "way, or say what you need and stop.")


def _write(path: Path, text: str, *, only_if_empty: bool = False) -> None:
    """Write what the editor was given to disk too (small files; quick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if only_if_empty and path.exists() and path.stat().st_size:
        return  # the editor created it with the content already
    path.write_text(text, encoding="utf-8")


def _encoding(services: Services) -> str:
    encoding = services.workspace.position_encoding
    return str(getattr(encoding, "value", encoding) or "utf-16")
