"""``lspilot acp`` benchmarks: the first words of a turn and the start-up.

- **acp_first_chunk**: ``session/prompt`` written → first ``agent_message_chunk`` read,
  with an instant upstream (the whole answer in one write), lspilot's share only: the
  upstream's own time (request read → first content written) is taken out, so what is
  left is lspilot building the turn (settings, the workspace's file list, the request),
  sending it, and relaying the first text as ``session/update``.
- **acp_startup**: spawn → ``initialize`` answered, ``lspilot acp`` against the LSP
  server (``lspilot``, spawn → LSP ``initialize`` answered), alternating runs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.client import ServerProcess, clean_env, server_command
from benchmarks.scenarios import Config, Figure, fmt, ms, summary
from benchmarks.upstream import LoadUpstream, Script


class AcpProcess:
    """``lspilot acp`` on pipes; requests by id, updates by session."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0
        self.replies: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.first_chunk: asyncio.Future[float] | None = None
        self._ids = 0
        self._reader: asyncio.Task[None] | None = None

    async def spawn(self) -> None:
        log = self.log_path.open("ab")
        self.spawned_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *server_command(), "acp", env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=log, limit=16 * 1024 * 1024)
        log.close()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def request(self, method: str, params: dict[str, Any],
                ) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        assert self.process is not None and self.process.stdin is not None
        self._ids += 1
        future: asyncio.Future[tuple[float, dict[str, Any]]] = \
            asyncio.get_running_loop().create_future()
        self.replies[self._ids] = future
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self._ids,
                                             "method": method, "params": params}).encode()
                                 + b"\n")
        return future

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            now = time.perf_counter()
            message = json.loads(line)
            if message.get("method") == "session/update":
                kind = message["params"]["update"].get("sessionUpdate")
                if kind == "agent_message_chunk" and self.first_chunk is not None \
                        and not self.first_chunk.done():
                    self.first_chunk.set_result(now)
            elif "id" in message and message["id"] in self.replies:
                self.replies.pop(message["id"]).set_result((now, message))

    async def stop(self) -> None:
        if self.process is None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()


def _env(tmp: Path, upstream: LoadUpstream | None) -> dict[str, str]:
    env = clean_env(tmp / "cache")
    env["XDG_CONFIG_HOME"] = str(tmp / "config")  # no settings file but the benchmark's
    env["LSPILOT_API_KEY"] = "sk-bench"
    if upstream is not None:
        env["LSPILOT_BASE_URL"] = upstream.base_url
    return env


async def acp_first_chunk(config: Config) -> list[Figure]:
    count = config.n(200, 5)
    upstream = LoadUpstream(default=Script(["Hello", " from", " the", " model."],
                                           instant=True))
    await upstream.start()
    tmp = Path(tempfile.mkdtemp(prefix="lspilot-bench-acp-"))
    root = tmp / "workspace"
    (root / "src").mkdir(parents=True)
    for i in range(20):
        (root / "src" / f"module_{i}.py").write_text(f"VALUE = {i}\n")
    agent = AcpProcess(_env(tmp, upstream), config.results_dir / "server-acp.log")
    shares, wholes = [], []
    try:
        await agent.spawn()
        await agent.request("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
        for i in range(count + 5):  # five warm-up turns
            # A session per turn: the upstream finds the turn by the first bench-id in the
            # request, and a session's history would carry the earlier ones.
            _, new = await agent.request("session/new", {"cwd": str(root), "mcpServers": []})
            session = new["result"]["sessionId"]
            agent.first_chunk = asyncio.get_running_loop().create_future()
            sent = time.perf_counter()
            done = agent.request("session/prompt", {"sessionId": session, "prompt": [
                {"type": "text", "text": f"Say hello. bench-id:{i}"}]})
            first = await asyncio.wait_for(agent.first_chunk, 10)
            await asyncio.wait_for(done, 10)
            stamps = upstream.stamps[i]
            assert stamps.first_content is not None
            if i >= 5:
                upstream_own = stamps.first_content - stamps.received
                shares.append(first - sent - upstream_own)
                wholes.append(first - sent)
            await asyncio.sleep(0.01)  # one turn at a time, the loop idle in between
    finally:
        await agent.stop()
        await upstream.close()
        shutil.rmtree(tmp, ignore_errors=True)
    share, whole = summary(ms(shares)), summary(ms(wholes))
    return [Figure(
        "acp_first_chunk", "ACP: session/prompt → first agent_message_chunk (lspilot's share)",
        f"p50 {fmt(share['p50'])}, p99 {fmt(share['p99'])}", "p50 ≤ 5 ms",
        share["p50"] <= 5, {"lspilot_share_ms": share, "whole_ms": whole,
                            "upstream_requests": upstream.requests})]


async def acp_startup(config: Config) -> list[Figure]:
    runs = config.n(15, 2)
    acp_times: list[float] = []
    lsp_times: list[float] = []
    for i in range(runs + 1):  # the first round warms the page cache and is dropped
        tmp = Path(tempfile.mkdtemp(prefix="lspilot-bench-acp-startup-"))
        (tmp / "workspace").mkdir()
        try:
            agent = AcpProcess(_env(tmp, None), config.results_dir / "server-acp-startup.log")
            try:
                await agent.spawn()
                answered, reply = await agent.request(
                    "initialize", {"protocolVersion": 1, "clientCapabilities": {}})
                assert reply["result"]["protocolVersion"] == 1
                acp_time = answered - agent.spawned_at
            finally:
                await agent.stop()
            server = ServerProcess([*config.server_prefix, *server_command()],
                                   clean_env(tmp / "cache"),
                                   config.results_dir / "server-startup.log")
            try:
                await server.spawn()
                _, lsp_answered = await server.initialize(tmp / "workspace",
                                                          {"apiKey": "sk-bench"})
                lsp_time = lsp_answered - server.spawned_at
            finally:
                await server.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if i:
            acp_times.append(acp_time)
            lsp_times.append(lsp_time)
    a, lsp = summary(ms(acp_times)), summary(ms(lsp_times))
    return [Figure(
        "acp_startup", "ACP: spawn → initialize answered (lspilot acp vs the LSP server)",
        f"{fmt(a['p50'])} (LSP {fmt(lsp['p50'])}, {a['p50'] - lsp['p50']:+.0f} ms)",
        "no slower than the LSP server", a["p50"] <= lsp["p50"] * 1.1,
        {"acp_ms": a, "lsp_ms": lsp, "python": sys.version.split()[0]})]


ACP_BENCHMARKS = {"acp_first_chunk": acp_first_chunk, "acp_startup": acp_startup}
