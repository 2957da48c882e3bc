"""Each log line reaches one place: stderr until the editor listens, then only the editor;
``--log-file`` keeps all of it. Actions, test runs and repair rounds are logged at info."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import API_KEY, range_of, session
from tests.fake_upstream import Reply


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Server:
    """lspilot over stdio, driven with hand-made frames; stdout and stderr kept apart."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSPILOT_", "OPENAI_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lspilot", "--stdio", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.out = bytearray()
        self.err = bytearray()
        for pipe, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._drain, args=(pipe, sink), daemon=True).start()

    @staticmethod
    def _drain(pipe: Any, sink: bytearray) -> None:
        while chunk := pipe.read1(65536):
            sink.extend(chunk)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(_frame(message))
        self.process.stdin.flush()

    def messages(self) -> list[dict[str, Any]]:
        data, found = bytes(self.out), []
        while b"\r\n\r\n" in data:
            header, _, rest = data.partition(b"\r\n\r\n")
            length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            found.append(json.loads(rest[:length]))
            data = rest[length:]
        return found

    def wait_for(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages():
                if predicate(message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no such message; got {self.messages()}")

    def stop(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 99, "method": "shutdown"})
        self.wait_for(lambda m: m.get("id") == 99)
        self.send({"jsonrpc": "2.0", "method": "exit"})
        self.process.wait(10)


def _start(server: Server, root: Path) -> None:
    server.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {}}})
    server.wait_for(lambda m: m.get("id") == 1)
    server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})


def _warn_about_a_misspelt_setting(server: Server) -> dict[str, Any]:
    """A warning the server logs on demand: an unknown settings key."""
    server.send({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
                 "params": {"settings": {"lspilot": {"modle": "m"}}}})
    return server.wait_for(lambda m: m.get("method") == "window/logMessage"
                           and "modle" in m["params"]["message"])


def test_once_the_editor_listens_a_line_goes_to_it_and_not_to_stderr(tmp_path):
    server = Server()
    try:
        _start(server, tmp_path)
        logged = _warn_about_a_misspelt_setting(server)
        assert logged["params"]["type"] == 2  # Warning: its level, not an error
        # The stop's answer came after the warning was written: stderr had its chance.
        server.stop()
        stderr = server.err.decode()
        assert "modle" not in stderr, stderr
        assert len([m for m in server.messages() if m.get("method") == "window/logMessage"
                    and "modle" in m["params"]["message"]]) == 1
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_log_file_keeps_every_line_owner_only(tmp_path):
    log_file = tmp_path / "logs" / "lspilot.log"
    server = Server("--log-file", str(log_file), "--log-level", "DEBUG")
    try:
        _start(server, tmp_path)
        _warn_about_a_misspelt_setting(server)
        server.stop()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    text = log_file.read_text()
    assert "modle" in text and "WARNING" in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_a_log_file_that_existed_is_made_owner_only(tmp_path):
    log_file = tmp_path / "lspilot.log"
    log_file.write_text("an older session\n")
    log_file.chmod(0o644)
    server = Server("--log-file", str(log_file))
    try:
        _start(server, tmp_path)
        _warn_about_a_misspelt_setting(server)
        server.stop()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert log_file.read_text().startswith("an older session\n")  # appended to, not replaced


# -- what actions, test runs and repairs leave in the log ----------------------------------------

SOURCE = "def add(a, b):\n    return a + b\n"
WRONG = "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 5\n```\n"
RIGHT = "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n```\n"


async def test_actions_test_runs_and_repairs_are_logged_at_info(upstream, workspace, tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    upstream.enqueue(Reply.stream([WRONG], usage=usage), Reply.stream([RIGHT], usage=usage))
    log_file = tmp_path / "lspilot.log"
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]
    async with session(upstream, workspace, init_options={
            "runTests": "always", "testCommand": {"python": pytest_argv}},
            server_args=("--log-level", "INFO", "--log-file", str(log_file))) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done" and result["tests"]["passed"] == 1
        shown = [m.message for m in editor.client.log_messages]
    logged = log_file.read_text()
    assert " INFO lspilot.jobs.job: writeTests started" in logged  # info, not debug
    for text in (logged, "\n".join(shown)):  # the file and the editor's output channel
        assert f"writeTests started ({uri}, token " in text
        assert re.search(r"Test run: `.*pytest .*test_calc\.py` in \S+: exit 1 after "
                         r"[\d.]+ s; 0 passed, 1 failed", text), text
        assert "Test repair round 1 of 2: 1 failed; asking the model" in text
        assert "Test repair round 1: the new tests applied" in text
        assert re.search(r"exit 0 after [\d.]+ s; 1 passed, 0 failed", text)
        assert re.search(rf"writeTests done \({re.escape(uri)}\): 2,000 tokens in, 400 out, "
                         r"\$0\.0007, [\d.]+ s", text), text
    assert API_KEY not in logged and "return a + b" not in logged  # no key, no prompt
