"""``contextExclude``: files that never reach the model by any path (agent tools,
``#file:``, ghost text's neighbouring snippets, the open document itself); pure.

Globs match the way ``.gitignore`` lines do (``*.pem`` at any depth, ``**/secrets/**``),
against the path relative to the innermost workspace folder holding the file (links
resolved), or against the whole path for a file outside every folder.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import pathspec


@functools.lru_cache(maxsize=16)
def _spec(globs: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(globs)


def excluded(path: Path, folders: Sequence[Path], globs: Sequence[str]) -> bool:
    real = Path(os.path.realpath(path))
    inside = [f for f in (Path(os.path.realpath(f)) for f in folders)
              if real == f or f in real.parents]
    if inside:
        folder = max(inside, key=lambda f: len(f.parts))
        relative = real.relative_to(folder).as_posix() if real != folder else "."
    else:
        relative = real.as_posix().lstrip("/")
    spec = _spec(tuple(globs))
    return spec.match_file(relative) or (path != real and spec.match_file(path.name))


def reason(shown: str) -> str:
    return (f"{shown} is excluded by contextExclude: lspilot sends nothing of it to the "
            "model.")
