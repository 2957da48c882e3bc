"""Tests that run, the pure parts: commands per language, reading outcomes, the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lspilot.testing import commands, report, runner
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
