"""The files a chat message names (``#file:path``): where they may come from, and how much.

A name resolves inside one workspace folder only (the document's, else the first), never
against the server's working directory; symlinks are followed and the result must stay
inside. Only regular files are read, without ever blocking on one that is not (a FIFO
would hold the read forever), and no more of a file is read than the context budget can
take.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lspilot.actions.results import ActionFailed
from lspilot.workspace import OutsideWorkspace

# UTF-8 takes at most 4 bytes a character: a file of more bytes than 4 x the room holds
# more characters than fit.
_MAX_BYTES_PER_CHAR = 4


def folder_for(folders: list[Path], document: Path | None) -> Path:
    """The folder ``#file:`` names are resolved in: the innermost one holding the
    document, else the first (an ``untitled:`` buffer, no document, one outside them)."""
    if document is not None:
        inside = [f for f in folders if f == document or f in document.parents]
        if inside:
            return max(inside, key=lambda f: len(f.parts))
    if not folders:
        raise ActionFailed("no_file", "#file: names a file in a workspace folder, and the "
                                      "editor has opened none: open the project's folder.")
    return folders[0]


def resolve(reference: str, root: Path) -> Path:
    """``reference`` inside ``root``, symlinks resolved; OutsideWorkspace otherwise."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(root / reference))
    if real != real_root and real_root not in real.parents:
        raise OutsideWorkspace(f"#file:{reference} is outside the workspace folder {root}: "
                               "only files inside it go with a message.")
    return real


def too_large(reference: str, room: int, budget: int) -> ActionFailed:
    return ActionFailed(
        "context_too_large",
        f"#file:{reference} does not fit: {max(room, 0):,} characters are left of "
        f"contextBudgetChars ({budget:,}) after the message and its code. Name a smaller "
        "file, select the part that matters, or raise contextBudgetChars.")


def read(path: Path, reference: str, room: int, budget: int) -> str:
    """The text of a regular file of at most ``room`` characters (blocking: run it in a
    thread, as a slow disk would hold the loop)."""
    missing = ActionFailed("no_file", f"#file:{reference}: there is no such file in the "
                                      f"workspace folder.")
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise missing from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ActionFailed("no_file", f"#file:{reference} is not a regular file (a "
                                          "folder, a pipe or a device): nothing was read.")
        limit = max(room, 0) * _MAX_BYTES_PER_CHAR
        if info.st_size > limit:
            raise too_large(reference, room, budget)
        data = bytearray()
        while len(data) <= limit:  # the file may grow while it is read
            piece = os.read(descriptor, min(1 << 20, limit + 1 - len(data)))
            if not piece:
                break
            data += piece
    except OSError:
        raise missing from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise too_large(reference, room, budget)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ActionFailed("no_file", f"#file:{reference} is not UTF-8 text: nothing was "
                                      "read.") from None
    if len(text) > room:
        raise too_large(reference, room, budget)
    return text
