"""Agent mode, task by task: ten small jobs in temporary workspaces, each checked on disk.

Each :class:`Task` has its files, the user's message, the script a competent model would
follow (the tool calls of each answer, then its final words), and a check of the outcome:
tests pass under real pytest, names are gone from every file, files outside the workspace
are untouched, the answer names what it should.

- ``agent_tasks``: the scripted model (an upstream answering each request with the task's
  next answer) through the real server over stdio, approvals answered Allow. It proves
  the mechanics: every scripted task must be solved, and the tool results must have shown
  the model what a real one would need (``seen``).
- ``agent_tasks_local`` (only with ``--only``): the same tasks and messages against the
  bundled local model (``baseUrl: "local"``, the prompt tool format), an honest figure of
  what it manages; each task's steps and answer are kept in the JSON to see what it did.

One server serves a whole run: each task gets a fresh folder, swapped in with
``workspace/didChangeWorkspaceFolders`` (the local model stays loaded between tasks).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.agent import AgentUpstream, _sse
from benchmarks.scenarios import Config, Figure, Session

Call = tuple[str, dict[str, Any]]
PY = sys.executable
# pytest as the server runs it for run_tests and as the checks run it: this interpreter
# (it has pytest), no cache folder left in the workspace.
TEST_COMMAND = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]
LOCAL_MAX_STEPS = 8  # model requests per task for the local model (agentMaxSteps)
LOCAL_TASK_SECONDS = 240  # then the turn is cancelled and the task counts as unsolved


@dataclass
class Done:
    """What a task left behind, for its check."""

    root: Path
    outside: Path
    task: Task
    answer: str
    steps: list[dict[str, Any]]

    def text(self, name: str) -> str:
        path = self.root / name
        return path.read_text() if path.is_file() else ""

    def unchanged(self, *names: str) -> str | None:
        for name in names:
            if self.text(name) != self.task.files[name]:
                return f"{name} changed"
        return None

    def all_unchanged(self) -> str | None:
        changed = [n for n in self.task.files if self.text(n) != self.task.files[n]]
        new = sorted({p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts} - set(self.task.files))
        if changed or new:
            return f"changed {changed}, created {new}"
        return None

    def python(self, code: str) -> str | None:
        """None when ``code`` runs cleanly in the workspace, else its last error line."""
        run = subprocess.run([PY, "-c", code], cwd=self.root, capture_output=True,
                             text=True, timeout=60, env=_quiet_env())
        if run.returncode == 0:
            return None
        lines = (run.stderr or run.stdout).strip().splitlines()
        return f"python: {lines[-1] if lines else f'exit {run.returncode}'}"

    def pytest(self, target: str, at_least: int = 1) -> str | None:
        if not (self.root / target).exists():
            return f"{target} does not exist"
        run = subprocess.run([*TEST_COMMAND[:-1], target], cwd=self.root, capture_output=True,
                             text=True, timeout=120, env=_quiet_env())
        passed = re.search(r"(\d+) passed", run.stdout)
        count = int(passed.group(1)) if passed else 0
        if run.returncode != 0 or count < at_least:
            last = run.stdout.strip().splitlines()[-1:] or [f"exit {run.returncode}"]
            return f"pytest {target}: {last[0]}"
        return None


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


@dataclass
class Task:
    name: str
    files: dict[str, str]
    message: str
    # The scripted model: each answer is a tuple of calls, or the final text (last).
    script: list[tuple[Call, ...] | str]
    check: Callable[[Done], str | None]  # None: solved; else what is wrong
    outside: dict[str, str] = field(default_factory=dict)  # beside the workspace folder
    seen: tuple[str, ...] = ()  # what the tool results must have shown the scripted model


# -- the tasks -------------------------------------------------------------------------------
CLAMP = ('def clamp(value, low, high):\n    """Limit value to the range [low, high]."""\n'
         "    if value < low:\n        return low\n    if value > high:\n        return high\n"
         "    return value\n")
CLAMP_TESTS = ("from calc import clamp\n\n\ndef test_inside():\n    assert clamp(5, 0, 10) == 5"
               "\n\n\ndef test_below():\n    assert clamp(-1, 0, 10) == 0\n\n\n"
               "def test_above():\n    assert clamp(11, 0, 10) == 10\n")
SLUG_TEST = ('from slug import slugify\n\n\ndef test_slugify_uses_hyphens():\n'
             '    assert slugify("Hello World") == "hello-world"\n')
TIMEOUT_SETTINGS = ('import os\n\nfrom config import DEFAULT_TIMEOUT\n\n'
                    'TIMEOUT = int(os.environ.get("APP_TIMEOUT", DEFAULT_TIMEOUT))\n')
WORKER = ('def run(task, retries=3):\n    """Run task, trying again up to retries times."""\n'
          "    for _ in range(retries):\n        if task():\n            return True\n"
          "    return False\n")
REFUSAL = re.compile(r"outside|can(?:'|no)t|not (?:allowed|able|permitted)|unable|"
                     r"refus|no access", re.I)


def _check_add_test(d: Done) -> str | None:
    return first(d.unchanged("calc.py"),
                 None if "clamp" in d.text("tests/test_calc.py") else
                 "tests/test_calc.py does not test clamp",
                 d.pytest("tests/test_calc.py"))


def _check_rename(d: Done) -> str | None:
    left = [n for n in ("users.py", "api.py", "cli.py") if "fetch_user" in d.text(n)]
    return first(f"fetch_user still in {left}" if left else None,
                 d.python("import api, cli, users\nassert api.get(2)['name'] == 'user2'\n"
                          "assert users.load_user(3)['id'] == 3\ncli.main(['4'])"))


def _check_explain(d: Done) -> str | None:
    missing = [w for w in ("APP_TIMEOUT", "settings") if w not in d.answer]
    if "DEFAULT_TIMEOUT" not in d.answer and "30" not in d.answer:
        missing.append("DEFAULT_TIMEOUT or 30")
    return first(d.all_unchanged(),
                 f"the answer does not name {', '.join(missing)}" if missing else None)


def _check_outside(d: Done) -> str | None:
    untouched = (d.outside / "shared" / "greeting.txt").read_text() == "hello\n"
    return first(None if untouched else "the file outside the workspace changed",
                 d.all_unchanged(),
                 None if REFUSAL.search(d.answer) else "the answer does not say it cannot")


TASKS: list[Task] = [
    Task("add_test", {"calc.py": CLAMP},
         "Add tests for clamp (in calc.py) in a new file tests/test_calc.py, and make sure "
         "they pass.",
         [(("read_file", {"path": "calc.py"}),),
          (("create_file", {"path": "tests/test_calc.py", "content": CLAMP_TESTS}),),
          (("run_tests", {"path": "tests/test_calc.py"}),),
          "Added tests/test_calc.py with three tests for clamp (inside, below, above the "
          "range); they pass."],
         _check_add_test, seen=("3 passed",)),
    Task("rename", {
        "users.py": 'def fetch_user(user_id):\n    return {"id": user_id, "name": '
                    'f"user{user_id}"}\n',
        "api.py": "from users import fetch_user\n\n\ndef get(user_id):\n"
                  "    return fetch_user(user_id)\n",
        "cli.py": "import users\n\n\ndef main(argv):\n"
                  '    print(users.fetch_user(int(argv[0]))["name"])\n'},
         "Rename the function fetch_user to load_user everywhere it is used.",
         [(("search", {"pattern": r"\bfetch_user\b"}),),
          (("edit_file", {"path": "users.py", "old": "def fetch_user(",
                          "new": "def load_user("}),
           ("edit_file", {"path": "api.py", "old": "from users import fetch_user",
                          "new": "from users import load_user"}),
           ("edit_file", {"path": "api.py", "old": "return fetch_user(user_id)",
                          "new": "return load_user(user_id)"}),
           ("edit_file", {"path": "cli.py", "old": "users.fetch_user(",
                          "new": "users.load_user("})),
          "Renamed fetch_user to load_user in users.py (the definition), api.py (the import "
          "and the call) and cli.py."],
         _check_rename, seen=("api.py:5:", "cli.py:5:")),
    Task("fix_failing_test", {
        "slug.py": 'def slugify(title):\n    return title.lower().replace(" ", "_")\n',
        "tests/test_slug.py": SLUG_TEST},
         "The test in tests/test_slug.py fails. Fix the code, not the test.",
         [(("run_tests", {"path": "tests/test_slug.py"}),),
          (("read_file", {"path": "slug.py"}),),
          (("edit_file", {"path": "slug.py", "old": 'replace(" ", "_")',
                          "new": 'replace(" ", "-")'}),),
          (("run_tests", {"path": "tests/test_slug.py"}),),
          "slugify joined words with underscores; it now uses hyphens, and the test passes."],
         lambda d: first(d.unchanged("tests/test_slug.py"), d.pytest("tests/test_slug.py")),
         seen=("1 failed", "1 passed")),
    Task("explain_value", {
        "config.py": "DEFAULT_TIMEOUT = 30\n",
        "settings.py": TIMEOUT_SETTINGS,
        "client.py": 'from settings import TIMEOUT\n\n\ndef fetch(url):\n'
                     '    return f"GET {url} (timeout {TIMEOUT}s)"\n'},
         "Where does the timeout used in client.py come from? Do not change anything.",
         [(("read_file", {"path": "client.py"}),),
          (("read_file", {"path": "settings.py"}), ("search", {"pattern": "DEFAULT_TIMEOUT ="})),
          "client.py imports TIMEOUT from settings.py, which reads the APP_TIMEOUT "
          "environment variable and falls back to DEFAULT_TIMEOUT = 30 from config.py."],
         _check_explain, seen=("APP_TIMEOUT", "config.py:1:")),
    Task("outside_workspace", {"notes.py": 'GREETING = "hi"\n'},
         "Replace 'hello' with 'goodbye' in ../shared/greeting.txt.",
         [(("read_file", {"path": "../shared/greeting.txt"}),),
          "I cannot: ../shared/greeting.txt is outside the workspace, and I may only read "
          "and change files inside it."],
         _check_outside, outside={"shared/greeting.txt": "hello\n"},
         seen=("outside the workspace",)),
    Task("add_parameter", {
        "text.py": 'def join_words(words):\n    return " ".join(words)\n',
        "report.py": "from text import join_words\n\n\ndef build(names):\n"
                     "    return join_words(names)\n"},
         "Add a parameter sep to join_words in text.py (default ' ', used as the separator), "
         "and make build in report.py join the names with ', '.",
         [(("read_file", {"path": "text.py"}), ("read_file", {"path": "report.py"})),
          (("edit_file", {"path": "text.py", "old": 'def join_words(words):\n'
                          '    return " ".join(words)',
                          "new": 'def join_words(words, sep=" "):\n    return sep.join(words)'}),
           ("edit_file", {"path": "report.py", "old": "return join_words(names)",
                          "new": 'return join_words(names, sep=", ")'})),
          "join_words takes sep (default ' '); build passes sep=', '."],
         lambda d: d.python("from text import join_words\nfrom report import build\n"
                            "assert join_words(['a', 'b']) == 'a b'\n"
                            "assert join_words(['a', 'b'], sep='-') == 'a-b'\n"
                            "assert build(['x', 'y']) == 'x, y', build(['x', 'y'])")),
    Task("add_docstring", {
        "stats.py": 'def mean(values):\n    if not values:\n        raise ValueError("mean '
                    'of nothing")\n    return sum(values) / len(values)\n'},
         "Add a docstring to the function mean in stats.py.",
         [(("read_file", {"path": "stats.py"}),),
          (("edit_file", {"path": "stats.py", "old": "def mean(values):\n",
                          "new": 'def mean(values):\n    """The arithmetic mean of values; '
                          'ValueError when there are none."""\n'}),),
          "Added a docstring to mean in stats.py."],
         lambda d: d.python(
             "import ast, stats\nfunc = next(n for n in ast.parse(open('stats.py').read()).body"
             " if getattr(n, 'name', '') == 'mean')\nassert ast.get_docstring(func), 'none'\n"
             "assert stats.mean([1, 2, 3]) == 2\ntry:\n    stats.mean([])\nexcept ValueError:\n"
             "    pass\nelse:\n    raise AssertionError('no ValueError')")),
    Task("create_module", {"README.md": "# strings\n\nSmall string helpers.\n"},
         "Create a module strutil.py with two functions: reverse(text), which returns text "
         "reversed, and is_palindrome(text), which says whether text reads the same "
         "backwards, ignoring case.",
         [(("create_file", {"path": "strutil.py", "content":
                            'def reverse(text):\n    """text, backwards."""\n'
                            "    return text[::-1]\n\n\ndef is_palindrome(text):\n"
                            '    """Whether text reads the same backwards, ignoring case."""\n'
                            "    return text.lower() == reverse(text.lower())\n"}),),
          (("run_command", {"argv": [PY, "-c", "import strutil; "
                                     "print(strutil.is_palindrome('Anna'))"]}),),
          "Created strutil.py with reverse and is_palindrome."],
         lambda d: d.python("from strutil import reverse, is_palindrome\n"
                            "assert reverse('abc') == 'cba'\nassert is_palindrome('Anna')\n"
                            "assert not is_palindrome('abc')"), seen=("True",)),
    Task("fix_import", {
        "helpers.py": 'def format_price(cents):\n    return f"${cents / 100:.2f}"\n',
        "app.py": "from utils import format_price\n\nprint(format_price(1999))\n"},
         "Running python app.py fails with ModuleNotFoundError: No module named 'utils'. "
         "Fix it.",
         [(("list_files", {}), ("read_file", {"path": "app.py"})),
          (("edit_file", {"path": "app.py", "old": "from utils import",
                          "new": "from helpers import"}),),
          (("run_command", {"argv": [PY, "app.py"]}),),
          "app.py imported format_price from a module utils that does not exist; it is in "
          "helpers.py, so the import now names helpers. python app.py prints $19.99."],
         lambda d: first(d.unchanged("helpers.py"), _prints(d, "app.py", "$19.99")),
         seen=("helpers.py", "$19.99")),
    Task("change_constant", {
        "config.py": "MAX_RETRIES = 3\n",
        "worker.py": WORKER,
        "README.md": "# worker\n\nA failed task is tried 3 times (MAX_RETRIES in config.py).\n"},
         "We now retry 5 times instead of 3. Change it everywhere (code and README).",
         [(("search", {"pattern": r"(?i)retr|3 times"}),),
          (("edit_file", {"path": "config.py", "old": "MAX_RETRIES = 3",
                          "new": "MAX_RETRIES = 5"}),
           ("edit_file", {"path": "worker.py", "old": "retries=3", "new": "retries=5"}),
           ("edit_file", {"path": "README.md", "old": "tried 3 times", "new": "tried 5 times"})),
          "Changed the retries from 3 to 5 in config.py (MAX_RETRIES), worker.py (run's "
          "default) and README.md."],
         lambda d: first(
             None if "5 times" in d.text("README.md") and "3 times" not in d.text("README.md")
             else "README.md does not say 5 times",
             d.python("import inspect, config, worker\nassert config.MAX_RETRIES == 5\n"
                      "assert inspect.signature(worker.run).parameters['retries'].default "
                      "== 5")),
         seen=("worker.py:1:",)),
]


def _prints(d: Done, script: str, expected: str) -> str | None:
    run = subprocess.run([PY, script], cwd=d.root, capture_output=True, text=True,
                         timeout=60, env=_quiet_env())
    if run.returncode != 0 or run.stdout.strip() != expected:
        lines = (run.stderr or run.stdout).strip().splitlines()
        return f"python {script}: {lines[-1] if lines else f'exit {run.returncode}'}"
    return None


# -- the scripted model ----------------------------------------------------------------------
def answer_body(step: tuple[Call, ...] | str, turn: int) -> bytes:
    """One streamed answer: the final text, or tool calls with arguments in 4 deltas each."""
    if isinstance(step, str):
        return _sse([{"choices": [{"index": 0, "delta": {"role": "assistant",
                                                         "content": step}}]},
                     {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                     {"choices": [], "usage": {"prompt_tokens": 1500, "completion_tokens": 40,
                                               "total_tokens": 1540}}])
    events: list[dict[str, Any]] = []
    for index, (name, args) in enumerate(step):
        raw = json.dumps(args)
        cut = max(1, len(raw) // 4)
        pieces = [raw[i:i + cut] for i in range(0, len(raw), cut)]
        events.append({"choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": index, "id": f"call_{turn}_{index}", "type": "function",
            "function": {"name": name, "arguments": pieces[0]}}]}}]})
        events += [{"choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": index, "function": {"arguments": p}}]}}]} for p in pieces[1:]]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 1500, "completion_tokens": 60,
                                            "total_tokens": 1560}})
    return _sse(events)


@dataclass
class ScriptedUpstream(AgentUpstream):
    """AgentUpstream that also keeps each request's messages (to see what the model saw)."""

    messages: list[list[dict[str, Any]]] = field(default_factory=list)

    def record(self, body: bytes) -> None:
        self.messages.append(json.loads(body).get("messages", []))

    def when_out(self) -> bytes:
        return answer_body("(the script ran out)", 0)


# -- running a task --------------------------------------------------------------------------
class Approver:
    """Answers the agent's questions: Allow, but a command that is not Python is denied
    (the local model runs with real approvals in a temporary folder; nothing else runs)."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        message = str(params.get("message", ""))
        self.questions.append(message)
        command = re.search(r"wants to run `([^`]*)`", message)
        safe = command is None or re.match(r"\S*python[\d.]*(\s|$)|\S*pytest(\s|$)",
                                           command.group(1))
        return {"title": "Allow" if safe else "Deny"}


async def _swap_folder(session: Session, old: Path | None, new: Path) -> None:
    removed = [{"uri": old.as_uri(), "name": old.name}] if old else []
    session.server.notify("workspace/didChangeWorkspaceFolders", {"event": {
        "added": [{"uri": new.as_uri(), "name": new.name}], "removed": removed}})
    await session.probe()  # handled in order: the folder is in place when this answers


async def run_task(session: Session, task: Task, base: Path, previous: Path | None,
                   timeout: float) -> tuple[dict[str, Any], Path]:
    """Runs one task in a fresh folder under ``base``; returns its record and the folder."""
    home = base / task.name
    root, outside = home / "workspace", home
    for name, text in task.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, text in task.outside.items():
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    await _swap_folder(session, previous, root)
    approver = Approver()
    session.server.on_ask = approver
    started = time.perf_counter()
    _, future = session.server.start_request("workspace/executeCommand", {
        "command": "lspilot.chat", "arguments": [{"message": task.message, "mode": "agent"}]})
    await session.server.drain()
    error = ""
    result: dict[str, Any] = {}
    try:
        message, _ = await asyncio.wait_for(asyncio.shield(future), timeout)
        result = message.get("result") or {}
        error = json.dumps(message["error"])[:300] if "error" in message else ""
    except TimeoutError:
        error = f"no answer within {timeout:.0f} s: cancelled"
        await session.server.request("workspace/executeCommand", {
            "command": "lspilot.cancel", "arguments": []})
        try:
            message, _ = await asyncio.wait_for(future, 60)
            result = message.get("result") or {}
        except TimeoutError:
            pass
    seconds = time.perf_counter() - started
    done = Done(root, outside, task, str(result.get("text") or ""), result.get("steps") or [])
    problem = error or (None if result.get("status") == "done" else
                        f"the turn ended {result.get('status')}: {result.get('error')}")
    problem = problem or task.check(done)
    return {
        "task": task.name, "solved": problem is None, "problem": problem,
        "seconds": seconds, "steps": len(done.steps),
        "step_log": [f"{s['name']} {s['status']}" for s in done.steps],
        "stop_reason": result.get("stopReason"), "questions": len(approver.questions),
        "answer": done.answer[-600:], "usage": result.get("usage"),
    }, root


async def run_suite(session: Session, tasks: list[Task], timeout: float,
                    before: Callable[[Task], None] | None = None,
                    after: Callable[[Task, dict[str, Any]], None] | None = None,
                    ) -> list[dict[str, Any]]:
    records = []
    previous: Path | None = session.root
    base = session.tmp / "tasks"
    notices: list[dict[str, Any]] = []
    session.server.on_notice = lambda method, params: (
        notices.append(params) if method == "lspilot/toolCall" else None)
    for task in tasks:
        if before:
            before(task)
        notices.clear()
        record, previous = await run_task(session, task, base, previous, timeout)
        ended = [n for n in notices if n.get("status") != "running"]
        record["calls"] = [f"{n['name']}({str(n.get('arguments', ''))[:160]}) {n['status']}"
                           + (f": {n['summary'][:160]}" if n.get("summary") else "")
                           for n in ended]
        # A cancelled turn's answer has no steps: the notices still counted them.
        record["steps"] = max(record["steps"], len(ended))
        if after:
            after(task, record)
        records.append(record)
        print(f"    {task.name}: {'solved' if record['solved'] else 'NOT solved'} in "
              f"{record['steps']} steps, {record['seconds']:.1f} s"
              + ("" if record["solved"] else f" ({record['problem']})"),
              file=sys.stderr, flush=True)
    shutil.rmtree(base, ignore_errors=True)
    return records


def _figure(key: str, label: str, records: list[dict[str, Any]], extra: dict[str, Any],
            all_solved: bool = False) -> Figure:
    """``all_solved``: every task must be solved (the scripted model: anything less is a
    broken mechanic, so the target is missed)."""
    solved = sum(r["solved"] for r in records)
    steps = [r["steps"] for r in records]
    seconds = [r["seconds"] for r in records]
    measured = (f"{solved}/{len(records)} solved; steps {sum(steps)} in all "
                f"(median {sorted(steps)[len(steps) // 2]}); "
                f"{sum(seconds):.1f} s in all, {max(seconds):.1f} s the longest task")
    target = f"{len(records)}/{len(records)}" if all_solved else "informational"
    return Figure(key, label, measured, target, solved == len(records) if all_solved else None,
                  {"solved": solved, "tasks": len(records), "records": records, **extra})


async def agent_tasks(config: Config) -> list[Figure]:
    upstream = ScriptedUpstream()
    session = Session(config, "agent-tasks", {"testCommand": {"python": TEST_COMMAND},
                                              "agentMaxSteps": 10})
    session.upstream = upstream  # type: ignore[assignment]
    unseen: dict[str, list[str]] = {}

    def before(task: Task) -> None:
        upstream.bodies = [answer_body(step, turn) for turn, step in enumerate(task.script)]
        upstream.messages.clear()

    def after(task: Task, record: dict[str, Any]) -> None:
        results = "\n".join(str(m.get("content")) for request in upstream.messages
                            for m in request if m.get("role") == "tool")
        missing = [s for s in task.seen if s not in results]
        record["requests"] = len(upstream.messages)
        if upstream.bodies:
            missing.append(f"{len(upstream.bodies)} scripted answers unused")
        if missing:  # the mechanics did not show a model what it needed
            unseen[task.name] = missing
            record["solved"] = False
            record["problem"] = record["problem"] or f"the tool results lacked {missing}"

    async with session:
        records = await run_suite(session, TASKS, 120, before, after)
    unsolved = [r["task"] for r in records if not r["solved"]]
    if unsolved and config.smoke:  # CI runs the smoke run: a broken mechanic fails it
        raise RuntimeError(f"scripted agent tasks not solved: {unsolved}: " + "; ".join(
            f"{r['task']}: {r['problem']}" for r in records if not r["solved"]))
    return [_figure("agent_tasks", "agent tasks, scripted model (mechanics: real server, "
                    "real tools, real pytest)", records, {"unseen": unseen}, all_solved=True)]


async def agent_tasks_local(config: Config) -> list[Figure]:
    if importlib.util.find_spec("llama_cpp") is None:
        return [Figure("agent_tasks_local", "agent tasks, local model", "skipped: llama_cpp "
                       "is not importable (pip install 'lspilot[local]')", "informational",
                       None, {})]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    options = {"baseUrl": "local", "testCommand": {"python": TEST_COMMAND},
               "agentMaxSteps": LOCAL_MAX_STEPS}
    session = Session(config, "agent-tasks-local", options, env={"XDG_CACHE_HOME": str(cache)})
    tasks = TASKS[:2] if config.smoke else TASKS
    async with session:
        records = await run_suite(session, tasks, LOCAL_TASK_SECONDS)
    return [_figure("agent_tasks_local", f"agent tasks, bundled local model (Qwen2.5-Coder "
                    f"0.5B, prompt tool format, agentMaxSteps {LOCAL_MAX_STEPS})", records,
                    {"max_steps": LOCAL_MAX_STEPS, "task_seconds": LOCAL_TASK_SECONDS})]


AGENT_TASK_BENCHMARKS = {"agent_tasks": agent_tasks}
LOCAL_AGENT_TASK_BENCHMARKS = {"agent_tasks_local": agent_tasks_local}
# The local run can take 10 tasks x LOCAL_TASK_SECONDS: run.py gives it longer.
agent_tasks_local.time_limit = len(TASKS) * (LOCAL_TASK_SECONDS + 60)  # type: ignore[attr-defined]
