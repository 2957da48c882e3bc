"""The workspace as features see it: its folders, which folder holds a file, a document's
language and the editor's position encoding, and containment (a path, links resolved,
stays inside a folder). Shared by actions, chat, ghost text, tests and the agent."""

from __future__ import annotations

import os
from pathlib import Path

from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument, Workspace

from lspilot.errors import LspilotError


def root_for(workspace: Workspace, source: Path) -> Path:
    """The innermost workspace folder holding ``source``, else its own folder."""
    folders = [Path(to_fs_path(f.uri) or "") for f in workspace.folders.values()]
    if workspace.root_path:
        folders.append(Path(workspace.root_path))
    inside = [f for f in folders if f == source or f in source.parents]
    if inside:
        return max(inside, key=lambda f: len(f.parts))
    return source.parent


def language_of(document: TextDocument) -> str:
    return document.language_id or Path(document.path).suffix.lstrip(".")


def encoding_of(workspace: Workspace) -> str:
    """The negotiated position encoding's name (``utf-16`` when none was negotiated)."""
    encoding = workspace.position_encoding
    return str(getattr(encoding, "value", encoding) or "utf-16")


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


class OutsideWorkspace(LspilotError, ValueError):
    """A test file that would land outside the workspace folder (``..``, symlinks)."""

    kind = "outside_workspace"


def ensure_inside(path: Path, root: Path, *, purpose: str | None = None,
                  fix: str = "Name a file inside the workspace folder.") -> Path:
    """``path`` with symlinks resolved, or OutsideWorkspace when it leaves ``root``.

    ``purpose`` says what was refused ("write tests to"); without it the message speaks
    of reading ``path``, as chat's ``#file:`` does (it said "write tests" there too).
    """
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise OutsideWorkspace(
            f"Refusing to {purpose or 'read'} {path}: it is outside the workspace folder "
            f"{root}. {fix}"
        )
    return real


def folders(workspace: Workspace) -> list[Path]:
    """The workspace folders (the root path when the editor named no folder)."""
    found = [Path(to_fs_path(f.uri) or "") for f in workspace.folders.values()]
    if not found and workspace.root_path:
        found = [Path(workspace.root_path)]
    return found


def open_text(workspace: Workspace, path: Path) -> str | None:
    """The file as the editor holds it (unsaved changes included) when it is open."""
    document = workspace.text_documents.get(from_fs_path(str(path)) or "")
    return document.source if document is not None else None
