"""The workspace as the agent's tools see it: paths inside the folders only (links
resolved), ``.gitignore`` and ``contextExclude`` honoured, files read as the editor holds
them, everything bounded. No LSP here: the editor's open text comes in as a function."""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pathspec

from lspilot import exclusion

# Folders never walked: version control, caches, and what .gitignore usually names.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv",
                          "venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox"})
MAX_FILE_BYTES = 2_000_000  # a file bigger than this is not source the model should read
MAX_WALKED = 20_000  # entries visited by one listing or search, at most


class ToolError(Exception):
    """A step that failed; the message is what the model reads."""


class ToolRefused(ToolError):
    """A step the user turned down while it ran (an edit's preview declined)."""


class WorkspaceFiles:
    def __init__(self, folders: Sequence[Path], exclude: Sequence[str],
                 open_text: Callable[[Path], str | None],
                 fetch_text: Callable[[Path], Awaitable[str | None]] | None = None) -> None:
        if not folders:
            raise ToolError("There is no workspace folder: open a folder in the editor.")
        self.folders = [Path(os.path.realpath(f)) for f in folders]
        self.exclude = tuple(exclude)
        self._open_text = open_text
        # An ACP client that reads files itself (unsaved buffers included) is asked first.
        self._fetch_text = fetch_text

    @property
    def root(self) -> Path:
        return self.folders[0]

    # -- paths ----------------------------------------------------------------------------
    def resolve(self, given: str) -> Path:
        """The real path of ``given`` (relative to the first folder), or ToolError when it
        is outside every workspace folder or excluded."""
        if not isinstance(given, str) or not given.strip():
            raise ToolError("'path' must be a file path relative to the workspace folder.")
        candidate = Path(given)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = Path(os.path.realpath(candidate))
        folder = self.folder_of(real)
        if folder is None:
            raise ToolError(f"{given} is outside the workspace folder {self.root}: only files "
                            "inside it can be used.")
        if self.excluded(real):
            raise ToolError(f"{given} is excluded (contextExclude): its content never "
                            "reaches the model.")
        return real

    def folder_of(self, real: Path) -> Path | None:
        inside = [f for f in self.folders if real == f or f in real.parents]
        return max(inside, key=lambda f: len(f.parts)) if inside else None

    def relative(self, real: Path) -> str:
        folder = self.folder_of(real) or self.root
        text = real.relative_to(folder).as_posix() if real != folder else "."
        return text if folder == self.root else f"{folder.name}/{text}"

    def excluded(self, real: Path) -> bool:
        if self.folder_of(real) is None:
            return True
        return exclusion.excluded(real, self.folders, self.exclude)

    # -- reading --------------------------------------------------------------------------
    def read(self, real: Path, shown: str) -> str:
        """The file as the editor holds it (an open document's text), else from disk:
        a regular UTF-8 file of bounded size (never a FIFO or a device)."""
        text = self._open_text(real)
        if text is not None:
            return text
        try:
            info = os.stat(real)
        except OSError:
            raise ToolError(f"{shown} does not exist.") from None
        if stat.S_ISDIR(info.st_mode):
            raise ToolError(f"{shown} is a folder: use list_files to see what it holds.")
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"{shown} is not a regular file.")
        if info.st_size > MAX_FILE_BYTES:
            raise ToolError(f"{shown} is {info.st_size:,} bytes, too big to read.")
        try:
            return real.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{shown} is not UTF-8 text.") from None
        except OSError as exc:
            raise ToolError(f"{shown} could not be read: {exc.strerror or exc}.") from None

    async def load(self, real: Path, shown: str) -> str:
        """As :meth:`read`, asking ``fetch_text`` first when there is one (a tool that
        reads one file; search and listings stay on :meth:`read`, one client request per
        file would be too slow)."""
        if self._fetch_text is not None:
            text = await self._fetch_text(real)
            if text is not None:
                return text
        return self.read(real, shown)

    # -- walking --------------------------------------------------------------------------
    def walk(self, glob: str | None = None) -> Iterator[Path]:
        """Files of every folder in a stable order, without what .gitignore or
        contextExclude name, or the usual tool folders; ``glob`` filters (gitignore style:
        ``*.py`` matches at any depth)."""
        wanted = pathspec.GitIgnoreSpec.from_lines([glob]) if glob else None
        visited = 0
        for folder in self.folders:
            stack: list[tuple[Path, list[tuple[Path, pathspec.GitIgnoreSpec]]]] = [(folder, [])]
            while stack:
                directory, ignores = stack.pop()
                ignores = [*ignores, *_gitignore(directory)]
                try:
                    entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
                except OSError:
                    continue
                for entry in entries:
                    visited += 1
                    if visited > MAX_WALKED:
                        return
                    path = Path(entry.path)
                    is_dir = entry.is_dir(follow_symlinks=False)
                    if is_dir and entry.name in SKIPPED_DIRS:
                        continue
                    if _ignored(path, is_dir, ignores) or self.excluded(path):
                        continue
                    if is_dir:
                        stack.append((path, ignores))
                    elif entry.is_file(follow_symlinks=False):
                        relative = path.relative_to(folder).as_posix()
                        if wanted is None or wanted.match_file(relative):
                            yield path


def _gitignore(directory: Path) -> list[tuple[Path, pathspec.GitIgnoreSpec]]:
    try:
        lines = (directory / ".gitignore").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [(directory, pathspec.GitIgnoreSpec.from_lines(lines))]


def _ignored(path: Path, is_dir: bool, ignores: list[tuple[Path, pathspec.GitIgnoreSpec]],
             ) -> bool:
    for base, spec in ignores:
        relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(relative):
            return True
    return False
