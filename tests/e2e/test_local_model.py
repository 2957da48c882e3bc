"""The local model end to end: the real server, llama.cpp's real server, the bundled model.

These assert on the protocol only, never on the model's wording: the bundled model is
tiny and its answers are often near-empty or off-topic. An answer without code is a
normal outcome (``no_code``), so Refactor and Write tests either apply their edit or
fail with exactly that. They need the ``local`` extra (``pip install 'lspilot[local]'``);
``dev/test`` installs it, and with ``CI`` set they run (and fail) without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lspilot.local import LocalModelError, model, process
from tests.e2e.harness import range_of, session

try:
    process.check_installed()
    model.check_bundled()
    MISSING = ""
except LocalModelError as exc:
    MISSING = str(exc)

pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"the local model is not installed ({MISSING}); ./dev/test installs it, and CI "
    "runs these tests",
)

SOURCE = (
    "def total(items):\n"
    "    s = 0\n"
    "    for i in items:\n"
    "        s += i\n"
    "    return s\n"
    "\n"
    "\n"
    "print(total([1, 2, 3]))\n"
)
FUNCTION = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"
LOCAL = {"baseUrl": "local", "apiKey": None, "temperature": 0.2}
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]
# Write tests runs what it wrote, with one repair at most: the test stays modest in time.
RUN_TESTS = {"runTests": "always", "testCommand": {"python": PYTEST}, "testRepairRounds": 1}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: the model is assembled (and hashed) once."""
    return tmp_path_factory.mktemp("local-cache")


def _progress_kinds(reports: list[Any]) -> list[str]:
    return [getattr(r, "kind", None) or r.get("kind") for r in reports]


def _message(report: Any) -> str:
    return str(getattr(report, "message", None) or report.get("message") or "")


async def test_three_actions_through_llama_cpp(upstream, workspace, cache_dir):
    async with session(upstream, workspace, init_options={**LOCAL, **RUN_TESTS},
                       env={"XDG_CACHE_HOME": str(cache_dir)}) as editor:
        uri = editor.open("calc.py", SOURCE)
        selection = range_of(SOURCE, FUNCTION)

        # Explain: the text streams in several pieces, progress begins and ends.
        explained = await editor.run("lspilot.explain", uri, selection, token="t-explain")
        assert explained["status"] == "done", explained
        pieces = [s for s in editor.streams if s["token"] == "t-explain"]
        assert len([p for p in pieces if p["delta"]]) >= 2, pieces
        assert pieces[-1]["done"] is True
        assert editor.stream_text("t-explain") == explained["text"]
        kinds = _progress_kinds(editor.progress("t-explain"))
        assert kinds[0] == "begin" and kinds[-1] == "end", kinds
        # llama.cpp ignores stream_options.include_usage: usage is reported or null.
        usage = explained["usage"]
        assert usage is None or usage["completionTokens"] >= 1

        # The start-up had its own progress, and it said what to expect of the model.
        startup = [t for t in editor.client.progress_reports if str(t).startswith("lspilot-local-")]
        assert len(startup) == 1
        reports = editor.client.progress_reports[startup[0]]
        assert _progress_kinds(reports)[0] == "begin" and _progress_kinds(reports)[-1] == "end"
        assert "Ready" in _message(reports[-1])
        assert model.DEFAULT_BUNDLED.note in _message(reports[-1])
        assert upstream.requests == []  # nothing went to the configured upstream

        # Refactor: exactly one edit of exactly the range, or a clean no_code failure.
        before = len(editor.edits)
        refactored = await editor.run("lspilot.refactor", uri, selection, token="t-refactor")
        kinds = _progress_kinds(editor.progress("t-refactor"))
        assert kinds[0] == "begin" and kinds[-1] == "end", kinds
        edits = editor.edits[before:]
        if refactored["status"] == "done":
            assert len(edits) == 1
            changes = edits[0].edit.document_changes
            assert len(changes) == 1 and len(changes[0].edits) == 1
            assert changes[0].edits[0].range == selection
            text = editor.text(uri)
            assert text.endswith("\n\nprint(total([1, 2, 3]))\n")  # after the range: intact
        else:
            assert refactored["status"] == "failed", refactored
            assert refactored["error"]["type"] == "no_code", refactored
            assert edits == [] and editor.text(uri) == SOURCE

        # Write tests: lspilot begins the small model's answer (the fence, the import it
        # computed, `def test_`), so the file holds real tests of the function; they run.
        current = editor.text(uri)  # the function, refactored or not, then the print
        test_range = range_of(current, current[: current.rindex("\n\nprint(")])
        before = len(editor.edits)
        tested = await editor.run("lspilot.writeTests", uri, test_range, token="t-tests")
        test_file = workspace / "test_calc.py"
        assert tested["status"] == "done", tested
        written = test_file.read_text()
        assert written.startswith("from calc import total\n\n\ndef test_"), written
        changes = editor.edits[before].edit.document_changes
        assert len([c for c in changes if isinstance(c, types.CreateFile)]) == 1
        ran = tested["tests"]  # run by pytest: they loaded, and were counted
        assert "pytest" in ran["command"] and ran["passed"] + ran["failed"] >= 1, ran
        assert ran["rounds"] <= 1


async def test_a_missing_local_model_file_fails_the_action_with_the_reason(
    upstream, workspace, cache_dir
):
    missing = workspace / "nope.gguf"
    options = {**LOCAL, "localModel": str(missing)}
    async with session(upstream, workspace, init_options=options,
                       env={"XDG_CACHE_HOME": str(cache_dir)}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, FUNCTION))
        assert result["status"] == "failed"
        assert result["error"]["type"] == "local_model"
        assert "nope.gguf" in result["error"]["message"]


def test_check_against_the_local_model(cache_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSPILOT_", "OPENAI_"))}
    env["XDG_CACHE_HOME"] = str(cache_dir)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lspilot", "--local", "check"], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"baseUrl": "local"' in done.stdout
    assert "OK: " in done.stdout and "http://127.0.0.1:" in done.stdout
    assert time.monotonic() - started < 120


# -- no llama.cpp process outlives lspilot ------------------------------------------------


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _alive(pid: int, started: str) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] == started and stat[0] != "Z"


class Lspilot:
    """lspilot --stdio --local as a bare process, driven with hand-made frames."""

    def __init__(self, cache_dir: Path, root: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSPILOT_", "OPENAI_"))}
        env["XDG_CACHE_HOME"] = str(cache_dir)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lspilot", "--stdio", "--local"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {}}})
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(65536):
            self.output += chunk

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(_frame(message))
        self.process.stdin.flush()

    def llama(self, timeout: float = 120) -> tuple[int, str]:
        """The llama.cpp child's pid and start time, once it is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in _children(self.process.pid):
                stat = _stat(child)
                if b"llama_cpp.server" in _cmdline(child) and stat is not None:
                    return child, stat[1]
            assert self.process.poll() is None, "lspilot exited"
            time.sleep(0.1)
        raise AssertionError("no llama.cpp child appeared")

    def wait_for_answer(self, id_: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(m.get("id") == id_ for m in self.frames(partial=True)):
            assert time.monotonic() < deadline, f"no answer to request {id_}"
            time.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in str(m.get("params", {}).get("message", ""))
                      for m in self.frames(partial=True) if m.get("method") == "window/logMessage"):
            assert time.monotonic() < deadline, f"no log message with {text!r}"
            time.sleep(0.05)

    def frames(self, *, partial: bool = False) -> list[dict[str, Any]]:
        """Every message lspilot wrote to stdout; fails on anything that is not a frame.

        ``partial``: the output is still arriving, so its last frame may be incomplete.
        """
        data, messages = bytes(self.output), []
        while data:
            header, sep, rest = data.partition(b"\r\n\r\n")
            if partial and not sep:
                break
            fields = dict(line.split(b": ", 1) for line in header.split(b"\r\n"))
            assert sep and set(fields) <= {b"Content-Length", b"Content-Type"}, data[:200]
            length = int(fields[b"Content-Length"])
            if partial and len(rest) < length:
                break
            messages.append(json.loads(rest[:length]))
            data = rest[length:]
        return messages


@pytest.fixture
def lspilot(cache_dir: Path, workspace: Path) -> Iterator[Lspilot]:
    server = Lspilot(cache_dir, workspace)
    llama: tuple[int, str] | None = None
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(10)
        for child in _children(server.process.pid):  # nothing, unless a test failed
            llama = child, (_stat(child) or ("", ""))[1]
        if llama is not None and _alive(*llama):
            os.kill(llama[0], signal.SIGKILL)


def _wait_gone(pid: int, started: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, started):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["kill -9", "kill -9 once ready", "SIGTERM",
                                 "shutdown and exit", "stdin closed"])
def test_no_llama_process_outlives_lspilot(lspilot, how):
    pid, started = lspilot.llama()
    assert _alive(pid, started)
    if how == "kill -9 once ready":  # not only while it starts: also while it serves
        lspilot.wait_for_log("ready at http://127.0.0.1:")
    # Its own process group, so stopping it stops everything it started.
    assert os.getpgid(pid) == pid != os.getpgid(lspilot.process.pid)
    if how.startswith("kill -9"):
        lspilot.process.kill()
    elif how == "SIGTERM":
        lspilot.process.terminate()
    elif how == "shutdown and exit":
        lspilot.send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        lspilot.wait_for_answer(2)
        lspilot.send({"jsonrpc": "2.0", "method": "exit"})
    else:
        assert lspilot.process.stdin is not None
        lspilot.process.stdin.close()
    lspilot.process.wait(15)
    assert _wait_gone(pid, started), f"llama.cpp (pid {pid}) outlived lspilot ({how})"
    if how in ("shutdown and exit", "stdin closed"):
        assert lspilot.process.returncode == 0
    # Whatever llama.cpp printed went to its log, never to the LSP channel.
    time.sleep(0.2)
    messages = lspilot.frames()
    assert messages and messages[0]["id"] == 1 and "capabilities" in messages[0]["result"]


# -- a llama.cpp that dies ------------------------------------------------------------------


def _llama_serving(cache_dir: Path) -> int | None:
    """The pid of the llama.cpp server that serves the model in ``cache_dir``, if any."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            command = _cmdline(int(entry.name))
            state = _stat(int(entry.name))
            if (b"llama_cpp.server" in command and str(cache_dir).encode() in command
                    and state is not None and state[0] != "Z"):
                return int(entry.name)
    return None


@pytest.mark.parametrize(("sig", "words"), [
    (signal.SIGILL, "illegal instruction"),
    (signal.SIGKILL, "SIGKILL"),
])
async def test_llama_cpp_killed_mid_answer_fails_at_once_and_the_next_action_restarts_it(
    upstream, workspace, cache_dir, sig, words
):
    # A long answer, so that the kill lands while it streams.
    options = {**LOCAL, "maxTokens": 400}
    async with session(upstream, workspace, init_options=options,
                       env={"XDG_CACHE_HOME": str(cache_dir)}) as editor:
        uri = editor.open("calc.py", SOURCE)
        selection = range_of(SOURCE, FUNCTION)
        running = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, selection, token="t-killed",
                       instruction="Explain every line in detail."))
        await editor.wait_for_stream(timeout=120)  # the answer is streaming
        pid = _llama_serving(cache_dir)
        assert pid is not None, "no llama.cpp serving the answer"
        os.kill(pid, sig)
        killed_at = time.monotonic()
        result = await asyncio.wait_for(running, 30)
        failed_in = time.monotonic() - killed_at

        assert result["status"] == "failed", result
        assert result["error"]["type"] == "local_model", result
        message = result["error"]["message"]
        assert words in message and signal.Signals(sig).name in message, message
        assert "baseUrl" not in message  # it knows the cause: nothing to check there
        if sig == signal.SIGILL:
            assert "CMAKE_ARGS=" in message and "GGML_NATIVE=OFF" in message, message
        assert failed_in < 1.0, f"the failure took {failed_in:.2f} s"
        end = _message(editor.progress("t-killed")[-1])
        assert end.startswith("Failed:") and "Retrying" not in "".join(
            _message(r) for r in editor.progress("t-killed")), end

        # The next action starts llama.cpp once more, and says so truthfully.
        again = await editor.run("lspilot.explain", uri, selection, token="t-again")
        assert again["status"] == "done", again
        restarted = _llama_serving(cache_dir)
        assert restarted is not None and restarted != pid
        startups = [t for t in editor.client.progress_reports
                    if str(t).startswith("lspilot-local-")]
        assert len(startups) == 2, startups  # the first start, and this one
        messages = [_message(r) for r in editor.client.progress_reports[startups[-1]]]
        assert any("again after it stopped" in m for m in messages), messages
        # The model is assembled already: a restart does not claim to assemble it.
        assert not any("Assembling" in m for m in messages), messages


async def test_a_second_crash_in_a_row_is_reported_without_another_start(
    upstream, workspace, cache_dir
):
    options = {**LOCAL, "maxTokens": 400}
    async with session(upstream, workspace, init_options=options,
                       env={"XDG_CACHE_HOME": str(cache_dir)}) as editor:
        uri = editor.open("calc.py", SOURCE)
        selection = range_of(SOURCE, FUNCTION)
        for round_ in (1, 2):  # crash, restart, crash again
            editor.streams.clear()
            running = asyncio.ensure_future(editor.run(
                "lspilot.explain", uri, selection, instruction="Explain every line in detail."))
            await editor.wait_for_stream(timeout=120)
            pid = _llama_serving(cache_dir)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            result = await asyncio.wait_for(running, 30)
            assert result["error"]["type"] == "local_model", (round_, result)
        starts = len([t for t in editor.client.progress_reports
                      if str(t).startswith("lspilot-local-")])
        third = await editor.run("lspilot.explain", uri, selection)
        assert third["status"] == "failed" and third["error"]["type"] == "local_model", third
        assert "2 times in a row" in third["error"]["message"], third
        assert _llama_serving(cache_dir) is None  # not started a third time
        assert len([t for t in editor.client.progress_reports
                    if str(t).startswith("lspilot-local-")]) == starts


def _posts(log: Path) -> int:
    """Requests llama.cpp's server took (uvicorn logs each as it starts to answer)."""
    return log.read_text(errors="replace").count('"POST /v1/completions') if log.exists() else 0


async def _until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_stale_completions_wait_in_lspilot_and_are_never_sent(upstream, workspace,
                                                                    cache_dir):
    """llama-cpp-python evaluates a prompt to its end even when its request was closed. A
    request superseded while its prompt is evaluated holds the one completion slot until
    its first token; requests made stale meanwhile are dropped without reaching llama.cpp."""
    body = "".join(f"def step_{i}(value):\n    return value * {i} + {i % 7}\n\n\n"
                   for i in range(60))
    source = body + "result = step_3(2)\n"
    lines = source.split("\n")
    blanks = [i for i, line in enumerate(lines) if line == "" and lines[i - 1] == ""]
    log = cache_dir / "lspilot" / "local" / "llama-server.log"
    async with session(upstream, workspace,
                       init_options={**LOCAL, "completionDebounceMs": 0},
                       env={"XDG_CACHE_HOME": str(cache_dir)}) as editor:
        uri = editor.open("steps.py", source)
        # The first request starts llama.cpp.
        await editor.complete(uri, types.Position(len(lines) - 1, 0))
        before = _posts(log)
        first = asyncio.ensure_future(editor.complete(uri, types.Position(blanks[5], 0)))
        await _until("llama.cpp to take the first request", lambda: _posts(log) > before, 120)
        # The cursor moves on while llama.cpp evaluates the first prompt (seconds): this
        # request would be sent at once if the first one's slot were freed when it closed.
        stale = asyncio.ensure_future(editor.complete(uri, types.Position(blanks[20], 0)))
        await asyncio.sleep(0.5)
        last = await asyncio.wait_for(
            editor.complete(uri, types.Position(blanks[40], 0)), 180)
        assert await first == [] and await stale == []  # superseded: answered empty
        assert isinstance(last, list)
        # Two reached llama.cpp after the start: the first and the last, never the stale one.
        assert _posts(log) - before == 2, log.read_text(errors="replace")[-3000:]
