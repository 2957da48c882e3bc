"""`lspilot demo` against the fake upstream: it plays the editor over real LSP.

The demo starts `lspilot --stdio` itself; the upstream is the scripted fake one (through
LSPILOT_BASE_URL / LSPILOT_API_KEY), so these tests need no model and no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lspilot import cli
from lspilot.local import INSTALL_COMMAND, process
from tests.fake_upstream import FakeUpstream, Reply

KEY = "sk-demo-0123456789"
SOURCE = """\
def total(items):
    s = 0
    for i in items:
        s += i
    return s


def untouched():
    return 1
"""
EXPLANATION = ["`total` adds ", "the items one ", "by one and returns the sum."]
REFACTOR = ["Here it is:\n```python\n", "def total(items):\n    return sum(items)\n", "```\n"]
TESTS = ["```python\n", "from calc import total\n\n\ndef test_total():\n",
         "    assert total([1, 2, 3]) == 6\n", "```\n"]


def script(upstream: FakeUpstream) -> None:
    upstream.enqueue(
        Reply.stream(EXPLANATION, delay=0.05),
        Reply.stream(REFACTOR, delay=0.05),
        Reply.stream(TESTS, delay=0.05, usage=False),
    )


def run_demo(upstream: FakeUpstream, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LSPILOT_", "OPENAI_"))}
    env = {**base, "LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": KEY,
           "HOME": str(cwd.parent / "home"), "XDG_CACHE_HOME": str(cwd.parent / "cache"),
           "LSPILOT_MODEL": "demo-model"}
    return subprocess.run(
        [sys.executable, "-m", "lspilot", "demo", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def test_demo_shows_the_stream_and_the_diffs_and_writes_nothing(upstream, workspace):
    source = workspace / "calc.py"
    source.write_text(SOURCE)
    script(upstream)
    done = run_demo(upstream, workspace, "calc.py", "--range", "1-5")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "".join(EXPLANATION) in out
    assert "calc.py lines 1-5" in out
    # the three actions, each with a result line giving time and tokens
    for title in ("Explain", "Refactor", "Write tests"):
        assert f"✓ {title}: done in " in out
    assert "11 tokens in" in out  # usage reported by the upstream
    assert "(estimated: no usage reported)" in out  # the tests' answer came without usage
    assert "the demo answers Not now" in out  # it runs no model-written code
    # the refactor's diff: exactly the selected function replaced
    assert "--- a/calc.py\n+++ b/calc.py\n" in out
    assert "-    s = 0\n" in out and "+    return sum(items)\n" in out
    assert "-def untouched" not in out
    # the new test file, as a diff from nothing
    assert "--- /dev/null\n+++ b/test_calc.py\n" in out
    assert "+    assert total([1, 2, 3]) == 6\n" in out
    assert "Nothing was written" in out
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    # nothing touched on disk
    assert source.read_text() == SOURCE
    assert sorted(p.name for p in workspace.iterdir()) == ["calc.py"]
    # the key never shows
    assert KEY not in out + done.stderr
    # the requests carried the selection, the key and the model from the environment
    requests = upstream.wait_for_requests(3)
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in requests)
    assert all(r.json["model"] == "demo-model" for r in requests)
    assert "s += i" in requests[1].json["messages"][-1]["content"]


def test_demo_apply_writes_the_edits(upstream, workspace):
    source = workspace / "calc.py"
    source.write_text(SOURCE)
    script(upstream)
    done = run_demo(upstream, workspace, "calc.py", "--range", "1-5", "--apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert source.read_text() == SOURCE.replace(
        "    s = 0\n    for i in items:\n        s += i\n    return s\n", "    return sum(items)\n")
    tests = workspace / "test_calc.py"
    assert tests.read_text().startswith("from calc import total\n")
    assert "Written: " in done.stdout and "test_calc.py" in done.stdout


def test_demo_on_the_bundled_sample(upstream, tmp_path):
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    upstream.enqueue(
        Reply.stream(EXPLANATION),
        Reply.stream(["```python\n", "def summarize(values):\n    return None\n", "```\n"]),
        Reply.stream(["```\n```\n"]),  # an answer without code, twice: a normal outcome
        Reply.stream(["I would rather not."]),
    )
    done = run_demo(upstream, cwd, "--apply")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr  # no_tests is not an error of the demo
    assert "bundled sample" in out
    assert "+++ b/stats.py" in out and "+    return None" in out
    assert "✗ Write tests: failed" in out and "(no_tests)" in out
    assert "Write tests: the model wrote no test." in out
    assert list(cwd.iterdir()) == []  # the sample is a scratch copy, even with --apply
    scratch = Path(re.search(r"bundled sample in (\S+)\)", out).group(1))
    try:  # --apply wrote to the scratch copy, which is kept for the user
        assert "def summarize(values):\n    return None\n" in (scratch / "stats.py").read_text()
    finally:
        shutil.rmtree(scratch)


SUMMARIZE_WRONG = ("```python\nfrom stats import summarize\n\n\ndef test_empty():\n"
                   "    assert summarize([]) == {}\n```\n")
SUMMARIZE_RIGHT = ("```python\nfrom stats import summarize\n\n\ndef test_empty():\n"
                   "    assert summarize([]) is None\n\n\ndef test_two():\n"
                   "    assert summarize([1.0, 3.0]) == {'count': 2, 'mean': 2.0, 'largest': 3.0}\n"
                   "```\n")


def test_demo_runs_the_tests_it_wrote_and_has_them_repaired(upstream, tmp_path):
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    refactored = ("def summarize(values):\n    if not values:\n        return None\n"
                  "    return {'count': len(values), 'mean': sum(values) / len(values), "
                  "'largest': max(values)}\n")
    upstream.enqueue(Reply.stream(EXPLANATION), Reply.stream([REFACTOR[0], refactored, "```\n"]),
                     Reply.stream([SUMMARIZE_WRONG]), Reply.stream([SUMMARIZE_RIGHT]))
    done = run_demo(upstream, cwd)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "the demo answers Run" in out
    assert "✓ Tests run: 2 tests, all pass after 1 repair round" in out
    verdict = out.rstrip().splitlines()[-3]  # then the time taken, then what was written
    assert verdict == "Write tests: 2 tests, all pass after 1 repair round."
    # the repair was asked with the failure pytest printed
    repair = upstream.wait_for_requests(4)[3].json["messages"][-1]["content"]
    assert "assert None == {}" in repair
    assert list(cwd.iterdir()) == []


def test_demo_no_run_runs_nothing(upstream, tmp_path):
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    upstream.enqueue(Reply.stream(EXPLANATION), Reply.stream(REFACTOR),
                     Reply.stream([SUMMARIZE_WRONG]))
    done = run_demo(upstream, cwd, "--no-run")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "the demo answers Not now (--no-run" in out
    assert "Tests run" not in out
    assert len(upstream.wait_for_requests(3)) == 3
    assert "Write tests:" not in out.split("✓ Write tests: done")[1]  # no verdict on tests


def test_demo_fails_with_the_reason_when_the_upstream_does(upstream, workspace):
    (workspace / "calc.py").write_text(SOURCE)
    upstream.default = Reply.error(401, "bad key")
    done = run_demo(upstream, workspace, "calc.py")
    assert done.returncode == 1
    assert "✗ Explain: failed" in done.stdout and "(authentication)" in done.stdout


def test_demo_rejects_a_bad_range(upstream, workspace):
    (workspace / "calc.py").write_text(SOURCE)
    done = run_demo(upstream, workspace, "calc.py", "--range", "5-99")
    assert done.returncode == 1
    assert "--range '5-99': the file has lines 1-9" in done.stderr
    assert upstream.requests == []


def test_demo_without_a_key_or_the_local_extra_says_the_install_command(
    monkeypatch, capsys, tmp_path
):
    for name in list(os.environ):
        if name.startswith(("LSPILOT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # As if llama-cpp-python were not installed.
    monkeypatch.setattr(process, "_SERVER_MODULES", ("lspilot_no_such_module",))
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert INSTALL_COMMAND in err
    assert "installs nothing" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", ["x-y", "3-2", "0-1"])
def test_range_parsing(spec):
    from lspilot.demo import DemoError, _parse_range

    with pytest.raises(DemoError):
        _parse_range(spec, 10)
