"""Where tests for a file go, by each language's convention."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from attrs import define

from lspilot.errors import LspilotError

_JS_LANGUAGES = {"javascript", "typescript", "javascriptreact", "typescriptreact"}


class UnusableTestFile(LspilotError):
    """The test file exists but cannot take the tests: a folder, not a file, not UTF-8."""

    kind = "test_file"


@define(frozen=True)
class TestTarget:
    path: Path
    # True when the tests go into the source file itself (Rust's `mod tests`).
    same_file: bool = False


def choose_test_file(
    source: Path,
    language: str,
    root: Path,
    is_dir: Callable[[Path], bool] = Path.is_dir,
) -> TestTarget:
    """The conventional test file for ``source`` (an absolute path inside ``root``)."""
    stem, suffix, folder = source.stem, source.suffix, source.parent
    if language == "python" or suffix == ".py":
        if is_dir(root / "tests"):
            return TestTarget(root / "tests" / f"test_{stem}.py")
        return TestTarget(folder / f"test_{stem}.py")
    if language in _JS_LANGUAGES or suffix in {".js", ".ts", ".jsx", ".tsx", ".mjs", ".cjs"}:
        return TestTarget(folder / f"{stem}.test{suffix or '.js'}")
    if language == "go" or suffix == ".go":
        return TestTarget(folder / f"{stem}_test.go")
    if language == "rust" or suffix == ".rs":
        return TestTarget(source, same_file=True)
    if language == "java" or suffix == ".java":
        parts = source.parts
        for index in range(len(parts) - 2):
            if parts[index : index + 3] == ("src", "main", "java"):
                mirrored = Path(*parts[:index], "src", "test", "java", *parts[index + 3 : -1])
                return TestTarget(mirrored / f"{stem}Test.java")
        return TestTarget(folder / f"{stem}Test.java")
    if language == "ruby" or suffix == ".rb":
        if is_dir(root / "spec"):
            return TestTarget(root / "spec" / f"{stem}_spec.rb")
        return TestTarget(root / "test" / f"test_{stem}.rb")
    if language == "csharp" or suffix == ".cs":
        return TestTarget(folder / f"{stem}Tests.cs")
    if language == "php" or suffix == ".php":
        return TestTarget(root / "tests" / f"{stem[:1].upper()}{stem[1:]}Test.php")
    return TestTarget(folder / f"{stem}_test{suffix}")


def check_test_file(path: Path) -> None:
    """Refuse a test file the tests cannot be added to, before the model is asked.

    A folder (or a FIFO, a device) where the test file goes, or a file that is not UTF-8,
    used to fail as ``internal`` when the answer was written: after it was paid for.
    """
    try:
        # Opened without blocking: a FIFO named like the test file must not hang us.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return  # made when the tests are written
    except OSError as exc:
        raise UnusableTestFile(
            f"The test file {path} cannot be read: {exc.strerror or exc}.",
            hint="Check its permissions.") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise UnusableTestFile(
                f"The test file {path} is a folder, so the tests cannot be written to it.",
                hint="Rename or move that folder, or run the action on a file whose test "
                     "file is free.")
        if not stat.S_ISREG(mode):
            raise UnusableTestFile(
                f"The test file {path} is not a regular file, so the tests cannot be "
                "written to it.", hint="Remove or rename it.")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(descriptor)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnusableTestFile(
            f"The test file {path} is not UTF-8 text (byte {exc.start} is not), so the "
            "tests cannot be added to it.",
            hint="Convert it to UTF-8 (or open it in the editor, which then holds the "
                 "text), and run the action again.") from None


def wrap_rust_tests(code: str) -> str:
    """Rust tests live in a `#[cfg(test)] mod tests` at the end of the same file."""
    if "mod tests" in code:
        return code
    body = "".join(
        ("    " + line if line.strip() else line) for line in code.splitlines(keepends=True)
    )
    return f"#[cfg(test)]\nmod tests {{\n    use super::*;\n\n{body.rstrip()}\n}}\n"
