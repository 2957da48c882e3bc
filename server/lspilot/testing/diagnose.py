"""Whether a test run got to run a test, and when it did not because of the environment,
what is missing, in one line; pure.

A run that never ran a test is not something a repair of the tests can fix when the cause
lies outside them, so it is not sent to the model (nothing is spent) and the user is told
what is missing and how to set ``testCommand``:

- the framework is not installed for the interpreter (``No module named pytest``; after
  lspilot fell back to unittest, a test file that imports pytest, or unittest finding no
  ``TestCase``), or the runner is not installed in the workspace (``npx --no-install``);
- a package the code under test imports is missing (the file under test imports it too:
  the project's environment lacks it, not the test), or a module of the project cannot be
  imported from where the tests run (the interpreter or its path is wrong);
- pytest refused its command line (exit 4) or could not load the project's own
  ``conftest.py``;
- the command was not found (see ``runner.TestCommandFailed``).

Everything else that stops a test file from loading is the model's to fix and is repaired
like a failing test: importing a name the module does not have (``cannot import name``), a
package only the test imports, a syntax or name error in the test file, and a file in which
pytest (exit 5) or unittest finds no test: the model wrote none the runner can collect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

from attrs import define

_MISSING_MODULE = re.compile(r"No module named '?([A-Za-z_][\w.]*)'?")
_IMPORTS = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import|import\s+([A-Za-z_]\w*))",
                      re.M)
_RAN_NONE = re.compile(r"^Ran 0 tests?\b", re.M)
_NPX_MISSING = ("could not determine executable to run", "npm ERR! missing script")
LINE_CHARS = 240  # a problem is one line of at most this many characters


@define(frozen=True, kw_only=True)
class RunSetup:
    """What the diagnosis knows of a run besides its output."""

    language: str
    argv: Sequence[str]
    interpreter: str  # argv[0] as found on PATH: what the user must check
    test_name: str  # the test file, relative to the folder the tests run in
    source_name: str  # the file under test
    source_imports: Collection[str]  # top-level modules the file under test imports
    in_project: Callable[[str], bool]  # a top-level module that is a file of the project
    pytest_missing: bool = False  # the pytest run said so and unittest ran instead

    @property
    def runner(self) -> str:
        head = list(self.argv[1:3])
        if "pytest" in head:
            return "pytest"
        if "unittest" in head:
            return "unittest"
        return ""


def top_level_imports(source: str) -> frozenset[str]:
    """The top-level modules a Python file imports (``from a.b import c`` gives ``a``)."""
    return frozenset(a or b for a, b in _IMPORTS.findall(source))


def problem(setup: RunSetup, output: str, exit_code: int | None) -> str | None:
    """One line saying what is missing when the run never ran a test for a reason outside
    the tests; None when the outcome is the tests' own (passed, failed, or theirs to fix)."""
    if setup.language == "python":
        found = _python_problem(setup, output, exit_code)
    elif tuple(setup.argv[:2]) == ("npx", "--no-install"):
        found = _npx_problem(setup, output)
    else:
        found = None
    return _one_line(found) if found is not None else None


def not_installed_hint(setup: RunSetup) -> str:
    """What to do, after the problem: install it there, or set ``testCommand``."""
    if setup.language == "python":
        return ("Install it for that interpreter, or set testCommand to the command that runs "
                'your tests, e.g. {"python": [".venv/bin/python", "-m", "pytest", "-q", '
                '"{file}"]}.')
    return (f"Install it, or set testCommand for {setup.language} to the command that runs "
            "your tests.")


def _python_problem(setup: RunSetup, output: str, exit_code: int | None) -> str | None:
    interpreter = setup.interpreter
    missing = [name.split(".")[0] for name in _MISSING_MODULE.findall(output)]
    ran_none = setup.runner == "unittest" and _RAN_NONE.search(output) is not None
    if setup.pytest_missing and ("pytest" in missing or ran_none):
        why = "the tests import it" if "pytest" in missing else \
            f"unittest found no TestCase in {setup.test_name}"
        return f"pytest is not installed for {interpreter} ({why})"
    if "pytest" in missing:
        return f"pytest is not installed for {interpreter}"
    for name in missing:
        if setup.in_project(name):
            return (f"{interpreter} cannot import {name}, a module of the project, from the "
                    "folder the tests run in")
        if name in setup.source_imports:
            return (f"{name} is not installed for {interpreter} ({setup.source_name} "
                    "imports it)")
    if setup.runner == "pytest":
        if "while loading conftest" in output:
            return f"pytest could not load the project's conftest.py ({_error_line(output)})"
        if exit_code == 4:
            return f"pytest refused its command line ({_error_line(output)})"
    return None


def _npx_problem(setup: RunSetup, output: str) -> str | None:
    if any(marker in output for marker in _NPX_MISSING):
        tool = setup.argv[2] if len(setup.argv) > 2 else "the test runner"
        return f"{tool} is not installed in the workspace (npx --no-install {tool})"
    return None


def _error_line(output: str) -> str:
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("ERROR:", "E ", "error:")) or "Error:" in stripped:
            return stripped.removeprefix("E ").strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…"
