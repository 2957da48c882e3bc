"""Tests that run, the pure parts: commands per language, reading outcomes, the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lspilot.testing import commands, diagnose, report, runner
from lspilot.testing.report import Counts


@pytest.mark.parametrize("output, code, expected", [
    ("..F\n=== 1 failed, 2 passed in 0.12s ===\n", 1, Counts(2, 1)),
    ("1 passed in 0.01s\n", 0, Counts(1, 0)),
    ("==== 2 passed, 1 error in 0.3s ====", 1, Counts(2, 1)),
    ("Ran 4 tests in 0.001s\n\nFAILED (failures=1, errors=1)\n", 1, Counts(2, 2)),
    ("Ran 3 tests in 0.001s\n\nOK\n", 0, Counts(3, 0)),
    ("Tests:       1 failed, 3 passed, 4 total\n", 1, Counts(3, 1)),
    ("test result: ok. 5 passed; 0 failed; 0 ignored\n", 0, Counts(5, 0)),
    ("TAP version 13\n# tests 2\n# pass 1\n# fail 1\n", 1, Counts(1, 1)),
    ("--- PASS: TestAdd (0.00s)\n--- FAIL: TestSub (0.00s)\n", 1, Counts(1, 1)),
    ("something odd\n", 0, Counts(1, 0)),
    ("something odd\n", 3, Counts(0, 1)),
])
def test_counts_are_read_from_each_runner(output: str, code: int, expected: Counts) -> None:
    assert report.counts(output, code) == expected


def test_words_and_trimming() -> None:
    assert report.words(Counts(4, 0), timed_out=False, loaded=True) == "4 tests, all pass"
    assert report.words(Counts(3, 1), timed_out=False, loaded=True) == "3 pass, 1 still fails"
    assert "testTimeout" in report.words(Counts(0, 1), timed_out=True, loaded=True)
    assert report.words(Counts(0, 1), timed_out=False, loaded=False) == "the tests did not load"
    long = "start\n" + "x" * 10_000 + "\nthe failure"
    cut = report.trimmed(long, 1000)
    assert len(cut) < 1100 and cut.startswith("start") and cut.endswith("the failure")


def test_builtin_commands_follow_the_project(tmp_path: Path) -> None:
    assert commands.builtin_command("python", tmp_path)[:3] == ("python3", "-m", "pytest")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    assert commands.builtin_command("python", tmp_path)[0] == str(tmp_path / ".venv/bin/python")
    assert commands.builtin_command("javascript", tmp_path) == ("node", "--test", "{file}")
    (tmp_path / "package.json").write_text(json.dumps({"devDependencies": {"vitest": "1"}}))
    assert commands.builtin_command("typescript", tmp_path)[2:4] == ("vitest", "run")
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "jest --ci"}}))
    assert commands.builtin_command("javascript", tmp_path)[2] == "jest"
    assert commands.builtin_command("go", tmp_path) == ("go", "test", "./{dir}")
    assert commands.builtin_command("java", tmp_path) is None
    (tmp_path / "pom.xml").touch()
    assert commands.builtin_command("java", tmp_path) == ("mvn", "-q", "test")
    assert commands.builtin_command("cobol", tmp_path) is None


def test_overrides_win_and_placeholders_expand(tmp_path: Path) -> None:
    mine = {"python": ("tox", "-e", "py", "--", "{file}")}
    assert commands.command_for("python", mine, tmp_path) == mine["python"]
    argv = commands.expand(("go", "test", "./{dir}", "{file}"), tmp_path,
                           tmp_path / "pkg" / "calc_test.go")
    assert argv == ["go", "test", "./pkg", "pkg/calc_test.go"]
    assert commands.unittest_command(("py", "-m", "pytest"))[:3] == ("py", "-m", "unittest")


def test_the_environment_loses_the_key() -> None:
    env = {"PATH": "/bin", "OPENAI_API_KEY": "sk-1", "LSPILOT_API_KEY": "sk-2",
           "MY_TOKEN": "sk-secret", "HOME": "/home/me"}
    assert runner.clean_environment(env, ["sk-secret"]) == {"PATH": "/bin", "HOME": "/home/me"}


def test_the_environment_loses_variables_that_hold_the_key_inside() -> None:
    env = {"PATH": "/bin", "PROXY": "https://me:sk-secret@proxy", "AUTH": "Bearer sk-secret",
           "LIST": "a:sk-secret:b", "OTHER": "sk-secre"}
    assert runner.clean_environment(env, ["sk-secret"]) == {"PATH": "/bin", "OTHER": "sk-secre"}
    # A (non-key) secret too short to be looked for inside other values: only its equal goes.
    assert runner.clean_environment({"PATH": "/bin", "X": "/"}, ["/"]) == {"PATH": "/bin"}


# -- runs that never ran a test ----------------------------------------------------------------

PYTEST_MISSING_MODULE = """\
_________________________ ERROR collecting test_calc.py __________________________
ImportError while importing test module '/w/test_calc.py'.
test_calc.py:1: in <module>
    {line}
E   ModuleNotFoundError: No module named '{name}'
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
1 error in 0.38s
"""
CANNOT_IMPORT_NAME = """\
_________________________ ERROR collecting test_calc.py __________________________
E   ImportError: cannot import name 'nope' from 'calc' (/w/calc.py)
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
"""
UNITTEST_IMPORT_PYTEST = """\
ERROR: test_calc (unittest.loader._FailedTest.test_calc)
ImportError: Failed to import test module: test_calc
    import pytest
ModuleNotFoundError: No module named 'pytest'
Ran 1 test in 0.000s

FAILED (errors=1)
"""


def setup(argv: tuple[str, ...] = ("/usr/bin/python3", "-m", "pytest", "-q", "test_calc.py"),
          **extra: object) -> diagnose.RunSetup:
    fields: dict[str, object] = {
        "language": "python", "argv": argv, "interpreter": "/usr/bin/python3",
        "test_name": "test_calc.py", "source_name": "calc.py",
        "source_imports": frozenset({"numpy"}), "in_project": lambda name: name == "calc"}
    fields.update(extra)
    return diagnose.RunSetup(**fields)  # type: ignore[arg-type]


UNITTEST = ("/usr/bin/python3", "-m", "unittest", "-v", "test_calc.py")


@pytest.mark.parametrize("run_setup, output, code, expected", [
    (setup(), "/usr/bin/python3: No module named pytest\n", 1,
     "pytest is not installed for /usr/bin/python3"),
    (setup(UNITTEST, pytest_missing=True), UNITTEST_IMPORT_PYTEST, 1,
     "pytest is not installed for /usr/bin/python3 (the tests import it)"),
    (setup(UNITTEST, pytest_missing=True), "Ran 0 tests in 0.000s\n\nOK\n", 0,
     "pytest is not installed for /usr/bin/python3 (unittest found no TestCase in "
     "test_calc.py)"),
    (setup(), PYTEST_MISSING_MODULE.format(line="import numpy", name="numpy"), 2,
     "numpy is not installed for /usr/bin/python3 (calc.py imports it)"),
    (setup(), PYTEST_MISSING_MODULE.format(line="from calc import add", name="calc"), 2,
     "/usr/bin/python3 cannot import calc, a module of the project, from the folder the "
     "tests run in"),
    (setup(), "ERROR: file or directory not found: test_calc.py\n\nno tests ran in 0.1s\n", 4,
     "pytest refused its command line (ERROR: file or directory not found: test_calc.py)"),
    (setup(), "ImportError while loading conftest '/w/conftest.py'.\nE   NameError: x\n", 4,
     "pytest could not load the project's conftest.py (NameError: x)"),
    (setup(("npx", "--no-install", "jest", "a.test.js"), language="javascript"),
     "npm ERR! could not determine executable to run\n", 1,
     "jest is not installed in the workspace (npx --no-install jest)"),
])
def test_a_run_that_never_ran_a_test_says_what_is_missing(
        run_setup: diagnose.RunSetup, output: str, code: int, expected: str) -> None:
    assert diagnose.problem(run_setup, output, code) == expected


@pytest.mark.parametrize("output, code", [
    ("no tests ran in 0.25s\n", 5),  # the model wrote no test pytest collects
    (PYTEST_MISSING_MODULE.format(line="import hypothesis", name="hypothesis"), 2),  # test's own
    (CANNOT_IMPORT_NAME, 2),  # a name the module does not have: the model's to fix
    ("E     File \"test_calc.py\", line 3\nE   SyntaxError: invalid syntax\n", 2),
    ("..F\n=== 1 failed, 2 passed in 0.12s ===\n", 1),
    ("1 passed in 0.01s\n", 0),
])
def test_what_the_tests_can_fix_is_left_to_a_repair(output: str, code: int) -> None:
    assert diagnose.problem(setup(), output, code) is None


def test_unittest_finding_no_test_case_is_left_to_a_repair_unless_pytest_is_missing() -> None:
    # The user's unittest command and the model's pytest-style functions: a repair can
    # write TestCase classes. After lspilot fell back from a missing pytest, it cannot.
    assert diagnose.problem(setup(UNITTEST), "Ran 0 tests in 0.000s\n\nOK\n", 0) is None


def test_top_level_imports() -> None:
    source = "import os\nfrom a.b import c\n  import numpy as np\nx = 'import nope'\n"
    assert diagnose.top_level_imports(source) == {"os", "a", "numpy"}
