"""What an action does with its answer, one applier per apply mode, one interface.

``show`` opens the explanation, ``replace`` replaces the selection (``live``: as the answer
streams), ``testFile`` writes the tests into the test file. An applier sees the answer as it
grows (:meth:`Applier.on_text`), applies the whole answer (:meth:`Applier.apply`) and puts
things back when the action does not finish (:meth:`Applier.restore`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import uuid
from pathlib import Path

import attrs
from lsprotocol import types
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument, Workspace

from lspilot import redact
from lspilot.actions import results
from lspilot.actions.live import LiveRewrite
from lspilot.actions.results import ActionFailed, WrittenTests
from lspilot.actions.selection import Snapshot
from lspilot.actions.testfiles import TestTarget
from lspilot.editor import Editor
from lspilot.edits import EditTarget, declined, edit_target, replacement_edit
from lspilot.jobs.job import EditDeclined, Job
from lspilot.settings import ApplyMode, Settings
from lspilot.workspace import encoding_of

log = logging.getLogger(__name__)


class Applier:
    """The interface, and the defaults: nothing to show while streaming, nothing to undo."""

    # The job the edits belong to: it says "waiting for your review" while a confirmed
    # edit is out, and knows that an edit was applied when it is cancelled later.
    job: Job | None = None

    def __init__(self, editor: Editor, settings: Settings, snap: Snapshot, title: str) -> None:
        self.editor = editor
        self.settings = settings
        self.snap = snap
        self.title = title

    def on_text(self, answer_so_far: str) -> None:
        """The answer so far, as it streams."""

    async def apply(self, answer: str) -> None:
        raise NotImplementedError

    async def restore(self) -> None:
        """The action was cancelled or failed: undo what :meth:`on_text` did."""

    @property
    def confirm(self) -> bool:
        return self.settings.confirm_edits and self.editor.supports_change_annotations

    async def send_edit(self, edit: types.WorkspaceEdit) -> None:
        confirm = self.confirm
        sent = self.editor.apply_edit(edit, self.title, review=confirm)
        reply = await (self.job.review(sent) if confirm and self.job is not None else sent)
        if not reply.applied:
            if confirm and declined(reply.failure_reason):
                raise EditDeclined()
            reason = reply.failure_reason or "no reason given"
            raise ActionFailed("edit_rejected", f"The editor did not apply the edit: {reason}.")
        if self.job is not None:
            self.job.edited()


class ShowExplanation(Applier):
    def __init__(self, editor: Editor, settings: Settings, snap: Snapshot, title: str,
                 cache_dir: Path) -> None:
        super().__init__(editor, settings, snap, title)
        self.cache_dir = cache_dir

    async def apply(self, answer: str) -> None:
        how = self.settings.explain_show
        if how == "none" or not answer.strip():
            return
        if how in ("auto", "document") and self.editor.supports_show_document:
            path = results.explanation_path(
                self.cache_dir / "explanations",
                Path(self.snap.document.path).name, self.snap.first_line, self.snap.last_line,
            )
            # The job masked the key in the answer; masked again here, as the file outlives it.
            text = redact.scrub(answer)
            try:
                _write_private(path, text if text.endswith("\n") else text + "\n")
            except UnsafeExplanationPath as exc:
                # The answer is still the user's: shown as a message instead.
                log.warning("Not writing the explanation: %s", exc)
                self.editor.show_message(types.MessageType.Warning,
                                         f"Not writing the explanation: {exc}")
            else:
                uri = from_fs_path(str(path)) or f"file://{path}"
                if await self.editor.show_document(uri, take_focus=False):
                    return
        self.editor.show_message(types.MessageType.Info, answer)


class ReplaceSelection(Applier):
    async def apply(self, answer: str) -> None:
        snap = self.snap
        new_text = results.refactored_text(answer, snap.selected, snap.line_prefix)
        if snap.document.version != snap.version:
            raise ActionFailed(
                "conflict",
                "The document changed while the answer was being written, so nothing was "
                "applied. Run the action again on the current text.",
            )
        edit = replacement_edit(
            edit_target(snap.document), snap.range, new_text,
            document_changes=self.editor.supports_document_changes, confirm=self.confirm,
        )
        await self.send_edit(edit)


class ReplaceLive(Applier):
    """``liveRefactor``: the selection is rewritten as the answer streams."""

    def __init__(self, editor: Editor, settings: Settings, snap: Snapshot, title: str,
                 encoding: str) -> None:
        super().__init__(editor, settings, snap, title)
        self.streaming = True
        self.live = LiveRewrite(editor, snap.document.uri, snap.range, snap.selected,
                                snap.line_prefix, is_streaming=lambda: self.streaming,
                                encoding=encoding)

    def on_text(self, answer_so_far: str) -> None:
        self.live.update(answer_so_far)

    async def apply(self, answer: str) -> None:
        self.streaming = False
        await self.live.finish(answer)

    async def restore(self) -> None:
        self.streaming = False
        await self.live.restore()


class WriteTestFile(Applier):
    def __init__(self, editor: Editor, settings: Settings, snap: Snapshot, title: str,
                 workspace: Workspace, test: TestTarget) -> None:
        super().__init__(editor, settings, snap, title)
        self.workspace = workspace
        self.test = test
        self.written: WrittenTests | None = None  # once applied

    async def apply(self, answer: str) -> None:
        editor, test = self.editor, self.test
        test_uri = from_fs_path(str(test.path)) or f"file://{test.path}"
        existing: EditTarget | None = None
        open_doc = self.workspace.text_documents.get(test_uri)
        if open_doc is not None:
            existing = edit_target(open_doc)
        else:
            if not test.path.exists() and not editor.supports_create_file:
                # The editor cannot create files through LSP (stock Neovim does not say it
                # can): make the empty file ourselves, inside the workspace, then edit it.
                test.path.parent.mkdir(parents=True, exist_ok=True)
                test.path.touch()
            if test.path.exists():
                on_disk = TextDocument(test_uri, source=test.path.read_text(encoding="utf-8"),
                                       position_codec=self.workspace.position_codec)
                existing = attrs.evolve(edit_target(on_disk), version=None)
        edit, self.written = results.test_file_edit(
            test, answer, existing, test_uri,
            document_changes=editor.supports_document_changes, confirm=self.confirm,
        )
        await self.send_edit(edit)
        await editor.show_document(test_uri)


def applier_for(apply: ApplyMode, *, editor: Editor, settings: Settings, snap: Snapshot,
                title: str, workspace: Workspace, cache_dir: Path,
                test: TestTarget | None, job: Job | None = None) -> Applier:
    """The one place the apply mode is chosen on."""
    applier: Applier
    if apply == "show":
        applier = ShowExplanation(editor, settings, snap, title, cache_dir)
    elif apply == "replace" and settings.live_refactor:
        applier = ReplaceLive(editor, settings, snap, title, encoding_of(workspace))
    elif apply == "replace":
        applier = ReplaceSelection(editor, settings, snap, title)
    else:
        assert test is not None, "a testFile action has its test target"
        applier = WriteTestFile(editor, settings, snap, title, workspace, test)
    applier.job = job
    return applier


class UnsafeExplanationPath(OSError):
    """A symbolic link (or not a folder) where lspilot writes its explanations."""


def _write_private(path: Path, text: str) -> None:
    """Explanations may quote private code: only the user may read them.

    Written whole (a temporary file, then ``os.replace``) inside the folder opened without
    following links: a link planted at ``explanations/`` or at the file's name would
    otherwise send the user's code, with their permissions, wherever it points.
    """
    folder = path.parent
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeExplanationPath(
                f"{folder} is a symbolic link or not a folder; lspilot writes explanations "
                "only into a real folder of its own. Remove it.") from None
        raise
    temporary = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.fchmod(folder_fd, 0o700)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(path.name, dir_fd=folder_fd).st_mode):
                raise UnsafeExplanationPath(
                    f"{path} is a symbolic link; lspilot does not write through links. "
                    "Remove it.")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600, dir_fd=folder_fd)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder_fd)
            raise
    finally:
        os.close(folder_fd)
