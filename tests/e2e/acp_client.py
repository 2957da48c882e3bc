"""An ACP client over the real ``lspilot acp`` process: newline-delimited JSON-RPC on its
stdin/stdout, as Zed or agent-shell speak it. It records every ``session/update``, keeps
editor buffers (answering ``fs/read_text_file`` from them, unsaved text included, and
taking ``fs/write_text_file`` into them), answers permission requests as told (or holds
them), and fakes a terminal. Any stdout line that is not JSON-RPC fails the test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.fake_upstream import FakeUpstream

API_KEY = "sk-test-0123456789abcdef"


class AcpClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 0
        self.pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.updates: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.not_protocol: list[bytes] = []
        # The editor's buffers by absolute path (unsaved text); writes land here.
        self.buffers: dict[str, str] = {}
        self.reads: list[str] = []
        self.writes: list[tuple[str, str]] = []
        # session/request_permission: the option to pick, or None to hold the question
        # until `release` resolves it (then the reply is whatever it is set to).
        self.permission_answer: str | None = "allow"
        self.permissions: list[dict[str, Any]] = []
        self.permission_asked = asyncio.Event()
        self.release: asyncio.Future[dict[str, Any]] | None = None
        self.terminal_calls: list[tuple[str, dict[str, Any]]] = []
        self.terminal_output = "1 passed in 0.01s\n"
        self.terminal_hold = False  # wait_for_exit never answers (a command that runs on)
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "fs/read_text_file": self._read, "fs/write_text_file": self._write,
            "session/request_permission": self._permission}
        for method in ("create", "output", "wait_for_exit", "kill", "release"):
            self.handlers[f"terminal/{method}"] = self._terminal(method)
        self.reader = asyncio.get_running_loop().create_task(self._read_loop())

    # -- sending -------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: Any, *, timeout: float = 10.0,
                      ident: Any = None) -> dict[str, Any]:
        """The whole reply (``result`` or ``error``)."""
        if ident is None:
            ident = self.next_id = self.next_id + 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        return await asyncio.wait_for(future, timeout)

    async def call(self, method: str, params: Any, *, timeout: float = 10.0) -> Any:
        reply = await self.request(method, params, timeout=timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def expect_reply(self, ident: Any, timeout: float = 5.0) -> dict[str, Any]:
        """A reply to a message sent raw (by its id; None for errors without one)."""
        future = self.pending.setdefault(ident, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(future, timeout)

    # -- session helpers -----------------------------------------------------------------
    async def start_session(self, cwd: Path, caps: dict[str, Any] | None = None) -> str:
        init = await self.call("initialize", {
            "protocolVersion": 1, "clientCapabilities": caps or {},
            "clientInfo": {"name": "lspilot-tests", "version": "1"}})
        assert init["protocolVersion"] == 1
        session = await self.call("session/new", {"cwd": str(cwd), "mcpServers": []})
        return str(session["sessionId"])

    def prompt(self, session: str, text: str) -> asyncio.Task[dict[str, Any]]:
        return asyncio.get_running_loop().create_task(self.request(
            "session/prompt", {"sessionId": session,
                               "prompt": [{"type": "text", "text": text}]}, timeout=20))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u.get("sessionUpdate") == kind]

    def text(self) -> str:
        return "".join(u["content"]["text"] for u in self.kinds("agent_message_chunk"))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)
        await asyncio.wait_for(wait(), timeout)

    # -- receiving -----------------------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                message = json.loads(line)
                assert isinstance(message, dict) and message.get("jsonrpc") == "2.0"
            except (ValueError, AssertionError):
                self.not_protocol.append(line)
                continue
            if "method" in message and "id" in message:
                asyncio.get_running_loop().create_task(self._answer(message))
            elif "method" in message:
                if message["method"] == "session/update":
                    self.updates.append(message["params"]["update"])
                    async with self.changed:
                        self.changed.notify_all()
            else:
                future = self.pending.setdefault(
                    message.get("id"), asyncio.get_running_loop().create_future())
                if not future.done():
                    future.set_result(message)
                async with self.changed:
                    self.changed.notify_all()

    async def _answer(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message["method"])
        if handler is None:
            self.send({"jsonrpc": "2.0", "id": message["id"],
                       "error": {"code": -32601, "message": "no such method"}})
            return
        try:
            result = handler(message["params"])
            if asyncio.iscoroutine(result):
                result = await result
        except LookupError as exc:
            self.send({"jsonrpc": "2.0", "id": message["id"],
                       "error": {"code": -32002, "message": f"not found: {exc}"}})
            return
        self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _read(self, params: dict[str, Any]) -> dict[str, Any]:
        path = params["path"]
        self.reads.append(path)
        if path in self.buffers:
            return {"content": self.buffers[path]}
        return {"content": Path(path).read_text(encoding="utf-8")}

    def _write(self, params: dict[str, Any]) -> None:
        self.writes.append((params["path"], params["content"]))
        self.buffers[params["path"]] = params["content"]  # the buffer, unsaved

    async def _permission(self, params: dict[str, Any]) -> dict[str, Any]:
        self.permissions.append(params)
        self.permission_asked.set()
        if self.permission_answer is None:
            self.release = asyncio.get_running_loop().create_future()
            return await self.release
        return {"outcome": {"outcome": "selected", "optionId": self.permission_answer}}

    def _terminal(self, method: str) -> Callable[[dict[str, Any]], Any]:
        async def handle(params: dict[str, Any]) -> Any:
            self.terminal_calls.append((method, params))
            async with self.changed:
                self.changed.notify_all()
            if method == "create":
                return {"terminalId": "term-1"}
            if method == "wait_for_exit":
                while self.terminal_hold:
                    await asyncio.sleep(0.05)
                return {"exitCode": 0, "signal": None}
            if method == "output":
                return {"output": self.terminal_output, "truncated": False,
                        "exitStatus": {"exitCode": 0}}
            return {}
        return handle


def settings_home(root: Path, settings: dict[str, Any]) -> dict[str, str]:
    """The environment of a server whose settings file holds ``settings``."""
    home = root.parent / f"home-{uuid.uuid4().hex[:6]}"
    config = home / ".config"
    (config / "lspilot").mkdir(parents=True)
    (config / "lspilot" / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(config),
            "XDG_CACHE_HOME": str(root.parent / "cache")}


@asynccontextmanager
async def acp_agent(upstream: FakeUpstream, root: Path, settings: dict[str, Any] | None = None,
                    ) -> AsyncIterator[AcpClient]:
    """``lspilot acp`` started, with the upstream and API key from the environment and
    the rest from the settings file; ended (and its stdout checked) afterwards."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": API_KEY,
           **settings_home(root, {"retryBaseSeconds": 0.05, **(settings or {})})}
    log = (root.parent / f"acp-{uuid.uuid4().hex[:6]}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lspilot", "--log-level", "DEBUG", "acp", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
        limit=64 * 1024 * 1024)
    client = AcpClient(process)
    try:
        yield client
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        client.reader.cancel()
        log.close()
    assert not client.not_protocol, client.not_protocol
