"""MCP servers in agent mode, against real servers nobody on the team wrote: PyPI's
mcp-server-time (stdio) and npm's @modelcontextprotocol/server-everything (stdio)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import API_KEY, capabilities, session
from tests.e2e.test_agent import Agent, sent_messages, tool_reply
from tests.fake_upstream import Reply

TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
EVERYTHING_VERSION = "2026.8.31"
EVERYTHING_HOME = Path(os.environ.get("LSPILOT_MCP_E2E_HOME")
                       or Path.home() / ".cache" / "lspilot" / "mcp-e2e")


def time_server(mark: str) -> dict[str, Any]:
    assert TIME_SERVER, "mcp-server-time is in the dev extra"
    return {"command": TIME_SERVER, "args": ["--local-timezone=UTC"],
            "env": {"LSPILOT_TEST_MARK": mark}}


def processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (the servers lspilot started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"LSPILOT_TEST_MARK={mark}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_a_servers_tools_reach_the_model_and_a_call_gets_its_real_result(
        upstream, workspace):
    mark = uuid.uuid4().hex
    upstream.enqueue(tool_reply(("mcp__time__get_current_time", {"timezone": "UTC"})),
                     Reply.stream(["It is Friday."]))
    async with session(upstream, workspace,
                       init_options={"mcpServers": {"time": time_server(mark)}}) as editor:
        agent = Agent(editor, answer="Allow")
        result = await agent.chat("what time is it?")
        assert result["steps"][0]["status"] == "done", result
        tools = {t["function"]["name"]: t["function"] for t in upstream.requests[0].json["tools"]}
        assert "timezone" in json.dumps(tools["mcp__time__get_current_time"]["parameters"])
        assert "mcp__time__convert_time" in tools
        assert len(agent.questions) == 1 and "get_current_time" in agent.questions[0]
        answer = sent_messages(upstream, 1)[-1]["content"]
        assert '"timezone": "UTC"' in answer and '"day_of_week"' in answer
        status = await editor.command("lspilot.status")
        assert status["mcpServers"] == [{"name": "time", "state": "running", "tools": 2}]
        assert processes_marked(mark)
    # Stopped with lspilot: no process is left.
    assert processes_marked(mark) == []


async def test_a_denied_mcp_call_does_not_reach_the_server(upstream, workspace):
    upstream.enqueue(tool_reply(("mcp__time__get_current_time", {"timezone": "UTC"})),
                     Reply.stream(["ok"]))
    async with session(upstream, workspace, init_options={
            "mcpServers": {"time": time_server(uuid.uuid4().hex)}}) as editor:
        agent = Agent(editor, answer="Deny")
        result = await agent.chat("time?")
        assert result["steps"][0]["status"] == "refused"
        assert "day_of_week" not in json.dumps(upstream.requests[1].json)


async def test_a_workspace_named_server_is_asked_about_first_and_not_started_when_refused(
        upstream, workspace):
    mark = uuid.uuid4().hex
    upstream.enqueue(Reply.stream(["no tools"]))
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       configuration={"mcpServers": {"time": time_server(mark)}}) as editor:
        agent = Agent(editor, answer="Deny")
        agent.answer = "Don't start"
        questions = agent.questions
        result = await editor.command("lspilot.chat", {"message": "hi", "mode": "agent"})
        assert result["status"] == "done", result
        assert len(questions) == 1 and TIME_SERVER in questions[0]
        assert "--local-timezone=UTC" in questions[0]
        names = {t["function"]["name"] for t in upstream.requests[0].json["tools"]}
        assert not any(n.startswith("mcp__") for n in names)
        status = await editor.command("lspilot.status")
        assert status["mcpServers"][0]["state"] == "refused"
        assert processes_marked(mark) == []


async def test_a_server_that_cannot_start_is_left_out_with_one_message(upstream, workspace):
    upstream.enqueue(Reply.stream(["ok"]))
    broken = {"command": sys.executable, "args": ["-c", "import sys; sys.stderr.write("
                                                         "'boom: no config\\n'); sys.exit(3)"]}
    async with session(upstream, workspace,
                       init_options={"mcpServers": {"broken": broken}}) as editor:
        result = await Agent(editor).chat("hi")
        assert result["status"] == "done", result
        warnings = [m.message for m in editor.messages if "MCP server broken" in m.message]
        assert len(warnings) == 1 and "boom: no config" in warnings[0]


CRASHING_SERVER = """
import os
from mcp.server.mcpserver import MCPServer
server = MCPServer("crash")

@server.tool()
def crash(reason: str) -> str:
    '''Exits the process mid-call.'''
    os._exit(7)

server.run()
"""


async def test_a_server_that_crashes_mid_call_fails_the_step_and_the_turn_goes_on(
        upstream, workspace):
    script = workspace.parent / "crash_server.py"
    script.write_text(CRASHING_SERVER)
    upstream.enqueue(tool_reply(("mcp__crash__crash", {"reason": "test"})),
                     Reply.stream(["it crashed"]))
    async with session(upstream, workspace, init_options={
            "agentApproval": {"mcp": "auto"},
            "mcpServers": {"crash": {"command": sys.executable, "args": [str(script)]}}},
    ) as editor:
        result = await Agent(editor).chat("crash it")
        assert result["status"] == "done" and result["steps"][0]["status"] == "failed"
        told = sent_messages(upstream, 1)[-1]["content"]
        assert "crash" in told and "MCP server" in told


@pytest.fixture(scope="session")
def everything_server() -> Path:
    """npm's @modelcontextprotocol/server-everything, installed once into a cache."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            raise AssertionError("npm is needed for the MCP e2e test")
        pytest.skip("npm is not installed (./dev/test has it)")
    entry = EVERYTHING_HOME / "node_modules" / "@modelcontextprotocol" / \
        "server-everything" / "dist" / "index.js"
    if not entry.exists():
        EVERYTHING_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix",
                        str(EVERYTHING_HOME),
                        f"@modelcontextprotocol/server-everything@{EVERYTHING_VERSION}"],
                       check=True, capture_output=True, timeout=300)
    assert entry.exists(), f"server-everything has no {entry}"
    return entry


async def test_server_everything_over_stdio_and_the_key_stays_out_of_its_environment(
        upstream, workspace, everything_server):
    node = shutil.which("node")
    assert node is not None
    upstream.enqueue(tool_reply(("mcp__everything__echo", {"message": "hello from lspilot"})),
                     Reply.stream(["echoed"]))
    mark = uuid.uuid4().hex
    servers = {"everything": {"command": node, "args": [str(everything_server), "stdio"],
                              "env": {"LSPILOT_TEST_MARK": mark, "LEAK": f"x{API_KEY}x"}}}
    async with session(upstream, workspace, env={"OPENAI_API_KEY": API_KEY}, init_options={
            "agentApproval": {"mcp": "auto"}, "mcpServers": servers}) as editor:
        result = await Agent(editor).chat("echo")
        assert result["steps"][0]["status"] == "done", result
        assert "hello from lspilot" in sent_messages(upstream, 1)[-1]["content"]
        pids = processes_marked(mark)
        assert pids
        for pid in pids:
            environ = (Path("/proc") / str(pid) / "environ").read_bytes()
            assert API_KEY.encode() not in environ
    assert processes_marked(mark) == []


LINGERING_SERVER = """
import threading, time
from mcp.server.mcpserver import MCPServer
server = MCPServer("linger")

@server.tool()
def ping() -> str:
    '''Answers pong.'''
    return "pong"

# Outlives its stdin: a server that does not exit when lspilot's pipe closes.
threading.Thread(target=time.sleep, args=(600,)).start()
server.run()
"""


async def test_servers_die_with_lspilot_even_on_kill_9(upstream, workspace):
    import asyncio
    import signal

    mark = uuid.uuid4().hex
    script = workspace.parent / "linger_server.py"
    script.write_text(LINGERING_SERVER)
    upstream.enqueue(tool_reply(("mcp__linger__ping", {})), Reply.stream(["ok"]))
    context = session(upstream, workspace, init_options={
        "agentApproval": {"mcp": "auto"}, "mcpServers": {"linger": {
            "command": sys.executable, "args": [str(script)],
            "env": {"LSPILOT_TEST_MARK": mark}}}})
    editor = await context.__aenter__()
    try:
        await Agent(editor).chat("time?")
        assert processes_marked(mark)
        server = editor.client._server
        assert server is not None
        os.kill(server.pid, signal.SIGKILL)
        await server.wait()
        for _ in range(100):  # the kernel signals the orphan; wait for it to go
            if not processes_marked(mark):
                break
            await asyncio.sleep(0.05)
        assert processes_marked(mark) == []
    finally:
        await editor.client.stop()


# Express listens on every interface; the tests' servers listen on 127.0.0.1 only.
LOOPBACK_ONLY = """
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" || typeof port === "string") {
    const callback = rest.find((a) => typeof a === "function");
    return listen.call(this, Number(port), "127.0.0.1", callback);
  }
  return listen.call(this, port, ...rest);
};
"""


async def test_server_everything_over_streamable_http(upstream, workspace, everything_server):
    import asyncio
    import socket

    node = shutil.which("node")
    assert node is not None
    preload = workspace.parent / "loopback_only.cjs"
    preload.write_text(LOOPBACK_ONLY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        node, "--require", str(preload), str(everything_server), "streamableHttp",
        env={"PATH": os.environ.get("PATH", ""), "PORT": str(port)},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        while b"listening on port" not in await asyncio.wait_for(process.stderr.readline(), 30):
            pass
        upstream.enqueue(tool_reply(("mcp__web__echo", {"message": "over http"})),
                         Reply.stream(["echoed"]))
        servers = {"web": {"url": f"http://127.0.0.1:{port}/mcp"}}
        async with session(upstream, workspace, init_options={
                "agentApproval": {"mcp": "auto"}, "mcpServers": servers}) as editor:
            result = await Agent(editor).chat("echo over http")
            assert result["steps"][0]["status"] == "done", result
            assert "over http" in sent_messages(upstream, 1)[-1]["content"]
    finally:
        process.kill()
        await process.wait()
