"""The load client: raw JSON-RPC over the pipes of a real ``lspilot`` process.

Raw frames rather than pygls's client: the client adds almost nothing to what it
measures, and every message is stamped (``time.perf_counter``) the moment its bytes are
read from the pipe. It answers the server's requests at once (``workspace/applyEdit``
is applied: "applied": true; progress creation is accepted), and calls ``on_stream`` /
``on_edit`` so that a benchmark can stamp what it waits for.

It also reads the server's CPU time and memory from ``/proc/<pid>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)

CAPABILITIES: dict[str, Any] = {
    "window": {"workDoneProgress": True, "showDocument": {"support": True}},
    "workspace": {
        "applyEdit": True,
        "workspaceEdit": {"documentChanges": True},
        "workspaceFolders": True,
    },
    "textDocument": {"synchronization": {"dynamicRegistration": False}},
    "general": {"positionEncodings": ["utf-16"]},
}


def server_command() -> list[str]:
    """The console script an editor runs, next to this interpreter (else ``-m lspilot``)."""
    script = Path(sys.executable).with_name("lspilot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lspilot"]


def clean_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LSPILOT_", "OPENAI_"))}
    env["XDG_CACHE_HOME"] = str(cache)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


class RpcError(Exception):
    pass


class ServerProcess:
    """One lspilot process and a client for it."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], float]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.on_stream: Callable[[dict[str, Any], float], None] | None = None
        self.on_edit: Callable[[str, dict[str, Any], float], None] | None = None
        # window/showMessageRequest's answer (None: dismissed); any other notification.
        self.on_ask: Callable[[dict[str, Any]], Any] | None = None
        self.on_notice: Callable[[str, Any], None] | None = None
        self.counts: dict[str, int] = {}
        self.closed = asyncio.Event()

    # -- process ------------------------------------------------------------------------
    async def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.spawned_at = time.perf_counter()
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
                start_new_session=True,  # its own process group: killed as one at the end
                limit=1 << 24,
            )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def initialize(self, root: Path, options: dict[str, Any]) -> tuple[float, float]:
        """initialize + initialized; returns (sent, answered) stamps of initialize."""
        root_uri = root.as_uri()
        _, sent, answered = await self.request("initialize", {
            "processId": os.getpid(),
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "bench"}],
            "capabilities": CAPABILITIES,
            "initializationOptions": options,
            "clientInfo": {"name": "lspilot-bench"},
        }, timeout=60)
        self.notify("initialized", {})
        return sent, answered

    async def stop(self) -> None:
        """shutdown + exit, then make sure the whole process group is gone."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.returncode is None and not self.closed.is_set():
                await self.request("shutdown", None, timeout=5)
                self.notify("exit", None)
                with contextlib.suppress(Exception):
                    proc.stdin.close()  # type: ignore[union-attr]
                await asyncio.wait_for(proc.wait(), 5)
        except (TimeoutError, RpcError, ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._reader

    # -- messages -----------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(frame(message))

    async def drain(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        await self.proc.stdin.drain()

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def start_request(
        self, method: str, params: Any
    ) -> tuple[float, asyncio.Future[tuple[dict[str, Any], float]]]:
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        sent = time.perf_counter()
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        return sent, future

    async def request(
        self, method: str, params: Any, timeout: float = 60
    ) -> tuple[Any, float, float]:
        """Returns (result, sent, received) stamps."""
        sent, future = self.start_request(method, params)
        await self.drain()
        message, received = await asyncio.wait_for(future, timeout)
        if "error" in message:
            raise RpcError(f"{method}: {message['error']}")
        return message.get("result"), sent, received

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        buffer = bytearray()
        try:
            while data := await stdout.read(1 << 20):
                now = time.perf_counter()  # every frame in this read arrived by now
                buffer += data
                while (end := buffer.find(b"\r\n\r\n")) != -1:
                    match = _LENGTH.search(buffer, 0, end)
                    if match is None:
                        raise RpcError(f"a frame without Content-Length: {bytes(buffer[:80])!r}")
                    length = int(match.group(1))
                    if len(buffer) < end + 4 + length:
                        break
                    body = bytes(buffer[end + 4 : end + 4 + length])
                    del buffer[: end + 4 + length]
                    self._dispatch(json.loads(body), now)
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the server closed its stdout"))

    def _dispatch(self, message: dict[str, Any], now: float) -> None:
        method = message.get("method")
        if method is None:  # a response to one of our requests
            future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result((message, now))
            return
        self.counts[method] = self.counts.get(method, 0) + 1
        params = message.get("params")
        if "id" in message:  # the server asks something: answer at once
            result: Any = None
            if method == "workspace/applyEdit":
                result = {"applied": True}
                if self.on_edit is not None:
                    self.on_edit(edit_uri(params["edit"]), params, now)
            elif method == "window/showDocument":
                result = {"success": True}
            elif method == "workspace/configuration":
                result = [None for _ in params.get("items", ())]
            elif method == "window/showMessageRequest" and self.on_ask is not None:
                result = self.on_ask(params)
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif method == "lspilot/stream" and self.on_stream is not None:
            self.on_stream(params, now)
        elif self.on_notice is not None:
            self.on_notice(method, params)

    # -- /proc --------------------------------------------------------------------------
    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kb(self.pid)


def edit_uri(edit: dict[str, Any]) -> str:
    for change in edit.get("documentChanges") or ():
        if "textDocument" in change:
            return str(change["textDocument"]["uri"])
    return next(iter(edit.get("changes") or {"": None}))


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the whole process (every thread, exited ones included).

    From ``/proc/<pid>/stat``, in clock ticks (usually 10 ms): measure over seconds.
    """
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in kB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values
