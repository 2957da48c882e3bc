"""Which command runs a language's tests, from the project's own files; pure.

``testCommand`` entries win over the built-ins. Placeholders: ``{file}`` the test file and
``{dir}`` its folder, both relative to the workspace folder the command runs in.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_JS = ("javascript", "typescript", "javascriptreact", "typescriptreact")
# A Python without pytest says this; the run falls back to unittest.
NO_PYTEST = "No module named pytest"


def python_for(root: Path, exists: Callable[[Path], bool] = Path.exists) -> str:
    """The project's own interpreter when it has a virtual environment there."""
    for venv in (".venv", "venv"):
        candidate = root / venv / "bin" / "python"
        if exists(candidate):
            return str(candidate)
    return "python3"


def builtin_command(language: str, root: Path, *,
                    read: Callable[[Path], str | None] | None = None,
                    exists: Callable[[Path], bool] = Path.exists) -> tuple[str, ...] | None:
    read = read or _read
    if language == "python":
        return (python_for(root, exists), "-m", "pytest", "-q", "{file}")
    if language == "go":
        return ("go", "test", "./{dir}")
    if language == "rust":
        return ("cargo", "test")
    if language in _JS:
        return _js_command(read(root / "package.json"))
    if language == "java":
        if exists(root / "pom.xml"):
            return ("mvn", "-q", "test")
        if exists(root / "gradlew"):
            return ("./gradlew", "test")
        if exists(root / "build.gradle") or exists(root / "build.gradle.kts"):
            return ("gradle", "test")
    return None


def unittest_command(pytest_command: Sequence[str]) -> tuple[str, ...]:
    """The same interpreter with unittest, for a Python without pytest."""
    return (pytest_command[0], "-m", "unittest", "-v", "{file}")


def _js_command(package_json: str | None) -> tuple[str, ...]:
    try:
        package = json.loads(package_json) if package_json else {}
    except ValueError:
        package = {}
    if not isinstance(package, dict):
        package = {}
    names: set[str] = set()
    for key in ("devDependencies", "dependencies"):
        if isinstance(package.get(key), dict):
            names |= set(package[key])
    script = package.get("scripts", {}).get("test", "") if isinstance(
        package.get("scripts"), dict) else ""
    for runner, argv in (("vitest", ("npx", "--no-install", "vitest", "run", "{file}")),
                         ("jest", ("npx", "--no-install", "jest", "{file}")),
                         ("mocha", ("npx", "--no-install", "mocha", "{file}"))):
        if runner in names or runner in str(script):
            return argv
    return ("node", "--test", "{file}")


def command_for(language: str, overrides: Mapping[str, Sequence[str]], root: Path,
                ) -> tuple[str, ...] | None:
    if language in overrides:
        return tuple(overrides[language])
    return builtin_command(language, root)


def expand(argv: Sequence[str], root: Path, test_file: Path) -> list[str]:
    relative = _relative(test_file, root)
    folder = _relative(test_file.parent, root)
    return [arg.replace("{file}", relative).replace("{dir}", folder) for arg in argv]


def shown(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _relative(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return text or "."


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
