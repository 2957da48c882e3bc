"""A misbehaving client: malformed frames, early requests, vanishing, never answering."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path

from tests.e2e.harness import API_KEY, plain, range_of, session
from tests.fake_upstream import Reply


class RawClient:
    """Frames written by hand to a real lspilot process; every stdout byte is checked."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lspilot"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )
        self._buffer = b""

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any] | bytes) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.send_raw(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame; anything on stdout that is not a frame fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            header_end = self._buffer.find(b"\r\n\r\n")
            if header_end != -1:
                headers = self._buffer[:header_end].decode("ascii")
                assert headers.startswith("Content-Length: "), f"not a frame: {self._buffer!r}"
                length = int(headers.split("\r\n")[0].split(": ")[1])
                if len(self._buffer) >= header_end + 4 + length:
                    body = self._buffer[header_end + 4 : header_end + 4 + length]
                    self._buffer = self._buffer[header_end + 4 + length :]
                    return json.loads(body)
            left = deadline - time.monotonic()
            assert left > 0, "no frame arrived"
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, "the server closed stdout"
                self._buffer += chunk

    def response(self, ident: Any) -> dict[str, Any]:
        while True:
            message = self.receive()
            if message.get("id") == ident and "method" not in message:
                return message

    def initialize(self, options: dict[str, Any] | None = None) -> None:
        self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                   "params": {"capabilities": {}, "initializationOptions": options or {}}})
        assert "result" in self.response("init")
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_malformed_frames_get_json_rpc_errors_and_the_server_recovers():
    client = RawClient()
    try:
        client.send({"jsonrpc": "2.0", "id": 1, "method": "textDocument/codeAction",
                     "params": {}})
        assert client.response(1)["error"]["code"] == -32002  # not initialized yet
        client.send(b"this is not json")
        assert client.receive()["error"]["code"] == -32700
        client.send({"hello": "world", "id": 7})
        assert client.response(7)["error"]["code"] == -32600
        client.send_raw(b'Content-Length: 5\r\n\r\n{"jsonrpc": "2.0", "id": 8}')  # too short
        assert client.receive()["error"]["code"] == -32700
        client.send_raw(b"garbage without any header\r\n\r\n")
        client.initialize()
        client.send({"jsonrpc": "2.0", "id": 2, "method": "no/such/method", "params": {}})
        assert client.response(2)["error"]["code"] == -32601
        client.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/codeAction",
                     "params": {"textDocument": 5}})
        assert client.response(3)["error"]["code"] == -32602
        client.send({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
        assert client.response(4)["result"] is None
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.wait() == 0
    finally:
        client.close()


def test_a_header_that_never_ends_is_skipped_and_the_next_frame_is_answered():
    client = RawClient()
    try:
        # 8 MB of one header line: kept whole, it took the header's Content-Length (10)
        # for the next frame's and swallowed it; the buffer grew with it, rescanned on
        # every read.
        client.send_raw(b"Content-Length: 10\r\nX-Padding: ")
        for _ in range(128):
            client.send_raw(b"a" * 65536)
        client.initialize()
        client.send({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
        assert client.response(4)["result"] is None
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.wait() == 0
    finally:
        client.close()


def test_exit_without_shutdown_exits_with_1():
    client = RawClient()
    try:
        client.initialize()
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.wait() == 1
    finally:
        client.close()


def test_stdin_closed_mid_action_ends_the_server_and_the_upstream_request(upstream, tmp_path):
    upstream.enqueue(Reply.stream(["slow "] * 500, delay=0.05))
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    client = RawClient()
    try:
        client.initialize({"baseUrl": upstream.base_url, "apiKey": API_KEY})
        uri = from_fs_path(str(source))
        client.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": {"uri": uri, "languageId": "python", "version": 1,
                             "text": "x = 1\n"}}})
        client.send({"jsonrpc": "2.0", "id": 9, "method": "workspace/executeCommand", "params": {
            "command": "lspilot.explain", "arguments": [{"uri": uri, "range": {
                "start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}}}]}})
        upstream.wait_for_requests(1)
        client.process.stdin.close()
        assert client.wait() == 0 or client.process.returncode in (0, 1)
        assert upstream.requests[0].client_closed.wait(2)
    finally:
        client.close()


def test_nothing_but_frames_reaches_stdout_even_from_a_stray_print(tmp_path: Path):
    # sitecustomize runs in the server process: a noisy library thread that, once the
    # server is up, prints and writes straight to file descriptor 1.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, threading\n"
        "def noise():\n"
        "    print('hello from a noisy library', flush=True)\n"
        "    os.write(1, b'raw bytes on fd 1\\n')\n"
        "threading.Timer(1.0, noise).start()\n"
    )
    client = RawClient(env={"PYTHONPATH": str(tmp_path)})
    try:
        client.initialize()  # receive() fails on any byte that is not part of a frame
        time.sleep(1.5)
        client.send({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"})
        client.response(3)
        client.send({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
        client.response(4)
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.wait() == 0
    finally:
        client.close()


async def test_an_editor_slow_to_answer_apply_edit_holds_up_nothing_else(upstream, workspace):
    source = "def f():\n    return 1\n"
    upstream.default = Reply.stream(["```python\ndef f():\n    return 2\n```"])
    async with session(upstream, workspace) as editor:
        editor.apply_mode = "hold"
        uri = editor.open("f.py", source)
        held = asyncio.ensure_future(
            editor.run("lspilot.refactor", uri, range_of(source, source), token="held"))
        while not editor.edits:
            await asyncio.sleep(0.05)
        # While that edit waits for the editor, other actions still run.
        result = await editor.run("lspilot.explain", uri, range_of(source, source))
        assert result["status"] == "done"
        # The edit is on its way: a cancel cannot take it back, and does not pretend to.
        answer = await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lspilot.cancel", arguments=[{"token": "held"}]))
        assert plain(answer) == {"cancelled": []}
        editor.release_edits.set()
        assert (await asyncio.wait_for(held, 10))["status"] == "done"
        assert editor.text(uri) == "def f():\n    return 2\n"


async def test_a_reversed_did_change_range_is_normalised_not_duplicated(upstream, workspace):
    upstream.default = Reply.stream(["ok"])
    source = "alpha = 1\nbeta = 2\ngamma = 3\n"
    async with session(upstream, workspace) as editor:
        uri = editor.open("g.py", source)
        # End before start, as a buggy client may send; vscode-languageserver swaps them.
        editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(2, 5), types.Position(0, 5)), text="X")]))
        result = await editor.command("lspilot.chat", {"message": "what is it?", "uri": uri})
        assert result["status"] == "done"
        sent = upstream.requests[0].json["messages"][-1]["content"]
        assert "alphaX = 3\n" in sent
        assert "beta" not in sent and sent.count("alpha") == 1
