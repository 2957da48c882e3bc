"""Write tests that run: the new tests are run (when the user says so), failures go back
to the model, the repaired tests replace the ones lspilot wrote, and the answer says what
passed. A real pytest and a real node run the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.harness import API_KEY, capabilities, range_of, session
from tests.e2e.processes import ended, written_pid
from tests.fake_upstream import Reply

SOURCE = "def add(a, b):\n    return a + b\n"
WRONG = "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 5\n```\n"
RIGHT = "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n```\n"
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]


def options(**extra: Any) -> dict[str, Any]:
    return {"testCommand": {"python": PYTEST}, **extra}


async def write_tests(editor: Any, source: str = SOURCE, name: str = "calc.py",
                      language: str = "python", token: str | None = None) -> dict[str, Any]:
    uri = editor.open(name, source, language)
    return await editor.run("lspilot.writeTests", uri, range_of(source, source), token=token)


def answering(editor: Any, answer: str) -> list[str]:
    questions: list[str] = []

    @editor.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem:
        questions.append(params.message)
        return types.MessageActionItem(title=answer)

    return questions


async def test_failing_tests_are_repaired_and_the_answer_counts_them(upstream, workspace):
    upstream.enqueue(Reply.stream([WRONG]), Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        result = await write_tests(editor, token="w1")
        assert result["status"] == "done", result
        tests = result["tests"]
        assert (tests["passed"], tests["failed"], tests["rounds"]) == (1, 0, 1)
        assert "pytest" in tests["command"] and "test_calc.py" in tests["command"]
        repair = upstream.requests[1].json["messages"][-1]["content"]
        assert "assert 4 == 5" in repair  # the failure went back to the model
        assert "assert add(2, 2) == 5" in repair and "def add(a, b)" in repair
        written = (workspace / "test_calc.py").read_text()
        assert "== 4" in written and "== 5" not in written
        messages = [p.message for p in editor.progress("w1") if getattr(p, "message", None)]
        assert messages.count("Running the tests…") == 2
        assert "Repairing the tests (round 1 of 2)…" in messages
        assert messages[-1].endswith("1 test, all pass")


async def test_tests_that_still_fail_stop_after_the_rounds(upstream, workspace):
    upstream.enqueue(Reply.stream([WRONG]), Reply.stream([WRONG]))
    async with session(upstream, workspace,
                       init_options=options(runTests="always", testRepairRounds=1)) as editor:
        result = await write_tests(editor)
        tests = result["tests"]
        assert (tests["passed"], tests["failed"], tests["rounds"]) == (0, 1, 1)
        assert "1 failed" in tests["output"]
        assert len(upstream.requests) == 2
        shown = [m.message for m in editor.client.messages if "still fails" in m.message]
        assert shown == ["Write tests: 0 pass, 1 still fails"]


async def test_only_the_tests_lspilot_wrote_are_replaced(upstream, workspace):
    upstream.enqueue(Reply.stream([WRONG]), Reply.stream([RIGHT]))
    mine = "def test_mine():\n    assert True\n"
    (workspace / "test_calc.py").write_text(mine)
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        result = await write_tests(editor)
        assert result["tests"]["passed"] == 2
        written = (workspace / "test_calc.py").read_text()
        assert written.startswith(mine) and written.count("def test_add") == 1


async def test_ask_says_the_command_and_not_now_runs_nothing(upstream, workspace):
    upstream.enqueue(Reply.stream([WRONG]))
    async with session(upstream, workspace, init_options=options()) as editor:
        questions = answering(editor, "Not now")
        result = await write_tests(editor)
        assert result["status"] == "done" and "tests" not in result
        (question,) = questions
        assert "pytest" in question and "test_calc.py" in question
        assert "runs code the model wrote" in question
        assert len(upstream.requests) == 1  # no repair: nothing ran


async def test_while_asked_to_run_the_progress_waits_without_cancel(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options()) as editor:
        seen: list[Any] = []

        @editor.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem:
            seen.append(editor.progress("q1")[-1])
            return types.MessageActionItem(title="Run")

        result = await write_tests(editor, token="q1")
        assert result["tests"]["passed"] == 1
        (waiting,) = seen
        assert waiting.message == "Waiting for your review…" and waiting.cancellable is False
        reports = [p for p in editor.progress("q1") if p.kind == "report"]
        assert reports[reports.index(waiting) + 1].cancellable is True


async def test_always_in_this_workspace_is_remembered(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]), Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options()) as editor:
        questions = answering(editor, "Always in this workspace")
        first = await write_tests(editor)
        second = await write_tests(editor, name="other.py")
        assert first["tests"]["passed"] == 1 and "tests" in second
        assert len(questions) == 1


async def test_never_asks_nothing_and_runs_nothing(upstream, workspace):
    upstream.enqueue(Reply.stream([WRONG]))
    async with session(upstream, workspace, init_options=options(runTests="never")) as editor:
        questions = answering(editor, "Run")
        result = await write_tests(editor)
        assert "tests" not in result and questions == []
        assert len(upstream.requests) == 1  # nothing ran, so nothing went back for repair


async def test_always_from_the_workspace_settings_is_still_asked(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    caps_config = {"runTests": "always", "testCommand": {"python": ["true"]}}
    async with session(upstream, workspace, configuration=caps_config,
                       caps=capabilities(configuration=True)) as editor:
        questions = answering(editor, "Not now")
        result = await write_tests(editor)
        assert "tests" not in result and len(questions) == 1
        assert "Run the new tests with `true`?" in questions[0]  # the workspace's command


async def test_a_hanging_command_is_stopped_at_the_time_limit(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    async with session(upstream, workspace, init_options={
            "runTests": "always", "testTimeout": 1, "testCommand": {"python": hang}}) as editor:
        result = await write_tests(editor)
        assert result["status"] == "done"
        assert result["tests"]["rounds"] == 0  # a time-out is not sent for repair
        shown = [m.message for m in editor.client.messages if "testTimeout" in m.message]
        assert shown and "did not finish in time" in shown[0]


async def test_a_missing_command_names_the_setting(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options={
            "runTests": "always", "testCommand": {"python": ["no-such-test-runner"]}}) as editor:
        result = await write_tests(editor, token="m1")
        assert result["status"] == "done", result  # the tests were written; they did not run
        tests = result["tests"]
        assert tests["ran"] is False and tests["rounds"] == 0
        assert tests["problem"] == "the test command no-such-test-runner was not found"
        end = editor.progress("m1")[-1].message
        assert "the tests did not run: the test command no-such-test-runner was not " \
            "found" in end and "testCommand" in end
        assert (workspace / "test_calc.py").exists()  # the tests written are kept
        assert len(upstream.requests) == 1


def python_without_pytest(workspace: Path) -> Path:
    """A folder whose `python3` is a Python without pytest (no site-packages), as the
    editor's PATH may offer lspilot (the issue's /usr/bin/python3)."""
    folder = workspace.parent / "bare-bin"
    folder.mkdir(exist_ok=True)
    python = folder / "python3"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    python.chmod(0o755)
    return folder


USES_PYTEST = ("```python\nimport pytest\n\nfrom calc import add\n\n\ndef test_add():\n"
               "    assert add(2, 2) == 4\n```\n")


async def test_a_python_without_pytest_is_said_and_no_repair_is_paid(upstream, workspace):
    bare = python_without_pytest(workspace)
    upstream.enqueue(Reply.stream([USES_PYTEST]), Reply.stream([RIGHT]), Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options={"runTests": "always"},
                       env={"PATH": f"{bare}:/usr/bin:/bin"}) as editor:
        result = await write_tests(editor, token="p1")
        assert result["status"] == "done", result
        tests = result["tests"]
        assert tests["ran"] is False and tests["rounds"] == 0
        assert tests["problem"] == \
            f"pytest is not installed for {bare / 'python3'} (the tests import it)"
        assert "No module named 'pytest'" in tests["output"]
        assert len(upstream.requests) == 1  # nothing sent for a repair: nothing spent
        end = editor.progress("p1")[-1].message
        assert str(bare / "python3") in end and "testCommand" in end
        assert "Repairing the tests" not in " ".join(
            p.message or "" for p in editor.progress("p1"))
        shown = [m.message for m in editor.client.messages if "did not run" in m.message]
        assert len(shown) == 1 and "pytest is not installed" in shown[0]


async def test_without_pytest_unittest_finding_no_test_case_is_said(upstream, workspace):
    bare = python_without_pytest(workspace)
    upstream.enqueue(Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options={"runTests": "always"},
                       env={"PATH": f"{bare}:/usr/bin:/bin"}) as editor:
        tests = (await write_tests(editor))["tests"]
        assert tests["ran"] is False and tests["passed"] == 0  # not "0 tests, all pass"
        assert tests["problem"] == (f"pytest is not installed for {bare / 'python3'} "
                                    "(unittest found no TestCase in test_calc.py)")
        assert len(upstream.requests) == 1


async def test_a_package_the_code_under_test_lacks_is_not_repaired(upstream, workspace):
    source = "import missing_dependency_xyz\n\n\ndef add(a, b):\n    return a + b\n"
    upstream.enqueue(Reply.stream([RIGHT]), Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        tests = (await write_tests(editor, source=source))["tests"]
        assert tests["ran"] is False
        assert tests["problem"] == (f"missing_dependency_xyz is not installed for "
                                    f"{sys.executable} (calc.py imports it)")
        assert len(upstream.requests) == 1


async def test_a_test_importing_a_name_the_module_lacks_is_repaired(upstream, workspace):
    wrong_import = RIGHT.replace("from calc import add", "from calc import add, subtract")
    upstream.enqueue(Reply.stream([wrong_import]), Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        tests = (await write_tests(editor))["tests"]
        assert tests["ran"] is True and (tests["passed"], tests["rounds"]) == (1, 1)
        repair = upstream.requests[1].json["messages"][-1]["content"]
        assert "cannot import name 'subtract'" in repair


async def test_cancel_during_the_run_ends_its_process_group(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    pid_file = workspace.parent / "child.pid"
    sleeper = [sys.executable, "-c",
               "import os, subprocess, sys, time; "
               "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
               f" open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"]
    async with session(upstream, workspace, init_options={
            "runTests": "always", "testCommand": {"python": sleeper}}) as editor:
        running = asyncio.ensure_future(write_tests(editor, token="c1"))
        child = await written_pid(pid_file, "the test command")  # its child's pid
        assert (await editor.command("lspilot.cancel", {"token": "c1"}))["cancelled"] == ["c1"]
        result = await running
        assert result["status"] == "cancelled"
        # The tests lspilot wrote stay in the test file: the end says so.
        assert editor.progress("c1")[-1].message == \
            "Cancelled; the edits already applied stay (undo reverts them)."
        assert (workspace / "test_calc.py").exists()
        await ended(child, "the test command's child")


async def test_an_unsaved_test_file_is_run_as_the_editor_holds_it(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        editor.open("test_calc.py", "")  # open in the editor; its edits stay unsaved there
        (workspace / "test_calc.py").write_text("raise SystemExit('stale copy on disk')\n")
        result = await write_tests(editor)
        assert result["tests"]["passed"] == 1, result["tests"]["output"]


async def test_the_key_is_not_in_the_tests_environment(upstream, workspace):
    upstream.enqueue(Reply.stream([RIGHT]))
    show_env = [sys.executable, "-c",
                "import os; print(sorted(v for k, v in os.environ.items() if 'sk-' in v))"]
    # Variables holding the key inside a longer value go too (a proxy URL, a header).
    env = {"OPENAI_API_KEY": API_KEY, "HTTPS_PROXY": f"http://me:{API_KEY}@127.0.0.1:9",
           "AUTH_HEADER": f"Bearer {API_KEY}"}
    async with session(upstream, workspace, env=env, init_options={
            "runTests": "always", "testCommand": {"python": show_env}}) as editor:
        result = await write_tests(editor)
        assert "[]" in result["tests"]["output"] and API_KEY not in result["tests"]["output"]


@pytest.mark.skipif(shutil.which("node") is None and not os.environ.get("CI"),
                    reason="node is not installed (./dev/test needs it for the VS Code tests, "
                    "and CI runs this test)")
async def test_javascript_tests_run_with_node(upstream, workspace):
    source = "function add(a, b) { return a + b; }\nmodule.exports = { add };\n"
    tests = ("```javascript\nconst test = require('node:test');\n"
             "const assert = require('node:assert');\nconst { add } = require('./calc');\n"
             "test('adds', () => assert.strictEqual(add(1, 2), 3));\n```\n")
    upstream.enqueue(Reply.stream([tests]))
    async with session(upstream, workspace, env={"PATH": os.environ["PATH"]},
                       init_options={"runTests": "always"}) as editor:
        result = await write_tests(editor, source, "calc.js", "javascript")
        assert result["tests"]["command"].startswith("node --test")
        assert (result["tests"]["passed"], result["tests"]["failed"]) == (1, 0)


async def test_a_repair_without_tests_is_not_applied(upstream, workspace):
    # The second answer is the function again, not tests: the tests stay, the next round
    # asks once more, and its answer is the repair.
    upstream.enqueue(Reply.stream([WRONG]),
                     Reply.stream(["```python\ndef add(a, b):\n    return a + b\n```\n"]),
                     Reply.stream([RIGHT]))
    async with session(upstream, workspace, init_options=options(runTests="always")) as editor:
        result = await write_tests(editor)
        assert result["status"] == "done", result
        tests = result["tests"]
        assert (tests["passed"], tests["failed"], tests["rounds"]) == (1, 0, 2)
        written = (workspace / "test_calc.py").read_text()
        assert written == RIGHT.removeprefix("```python\n").removesuffix("```\n")
        # the answer without tests never reached the file: two edits, the tests and the fix
        assert len(editor.edits) == 2
