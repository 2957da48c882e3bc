"""``lspilot acp`` through a client speaking ACP to the real process, against the scripted
upstream: the stream, tool calls through the client's fs/* and terminal, permissions,
cancels, limits, and bad messages that leave the agent alive."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tests.e2e.acp_client import API_KEY, acp_agent
from tests.e2e.processes import ended, written_pid
from tests.e2e.test_agent import tool_reply
from tests.fake_upstream import Reply

FS = {"fs": {"readTextFile": True, "writeTextFile": True}}


def sent(upstream: Any, index: int) -> list[dict[str, Any]]:
    return list(upstream.requests[index].json["messages"])


async def test_initialize_new_session_and_a_streamed_answer(upstream, workspace):
    (workspace / "notes.md").write_text("# notes\n")
    upstream.enqueue(Reply.stream(["Hel", "lo ", "there."]))
    async with acp_agent(upstream, workspace) as client:
        init = await client.call("initialize", {"protocolVersion": 1,
                                                "clientCapabilities": {}})
        assert init["protocolVersion"] == 1 and init["authMethods"] == []
        assert init["agentCapabilities"]["promptCapabilities"]["embeddedContext"] is True
        new = await client.call("session/new", {"cwd": str(workspace), "mcpServers": [
            {"name": "docs", "command": "docs-mcp", "args": [], "env": []}]})
        assert new["modes"]["currentModeId"] == "agent"
        assert {m["id"] for m in new["modes"]["availableModes"]} == {"agent", "ask"}
        reply = await client.request("session/prompt", {
            "sessionId": new["sessionId"], "prompt": [
                {"type": "text", "text": "Summarise"},
                {"type": "resource", "resource": {"uri": f"file://{workspace}/a.py",
                                                  "text": "x = 1\n", "mimeType": "text/x-python"}},
                {"type": "resource_link", "uri": f"file://{workspace}/notes.md",
                 "name": "notes.md"}]})
        assert reply["result"]["stopReason"] == "end_turn", reply
        # The client's MCP server cannot start: said once, its tools left out, the turn on.
        assert client.text().endswith("Hello there.")
        assert "MCP server docs could not start" in client.text()
        assert reply["result"]["usage"] == {"inputTokens": 11, "outputTokens": 3,
                                            "totalTokens": 14}
        assert client.kinds("usage_update")[-1]["used"] == 11
        user = sent(upstream, 0)[-1]["content"]
        assert "Summarise" in user and "a.py:\n```\nx = 1\n```" in user and "notes.md" in user
        assert "notes.md" in sent(upstream, 0)[0]["content"]  # the workspace's files
        assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_read_and_edit_go_through_the_clients_buffers(upstream, workspace):
    util = workspace / "util.py"
    util.write_text("def add(a, b):\n    return a - b\n")
    unsaved = "def add(a, b):\n    return a - b  # unsaved\n"
    upstream.enqueue(
        tool_reply(("read_file", {"path": "util.py"})),
        tool_reply(("edit_file", {"path": "util.py", "old": "a - b  # unsaved",
                                  "new": "a + b"})),
        Reply.stream(["Fixed."]))
    async with acp_agent(upstream, workspace) as client:
        client.buffers[str(util)] = unsaved
        session = await client.start_session(workspace, FS)
        reply = await client.prompt(session, "fix add")
        assert reply["result"]["stopReason"] == "end_turn", reply
        # The model read the unsaved buffer, and the edit went to the editor, not the disk.
        assert "# unsaved" in sent(upstream, 1)[-1]["content"]
        assert client.writes == [(str(util), "def add(a, b):\n    return a + b\n")]
        assert util.read_text() == "def add(a, b):\n    return a - b\n"
        calls = client.kinds("tool_call")
        assert [(c["kind"], c["title"]) for c in calls] == [
            ("read", "Reading util.py"), ("edit", "Editing util.py")]
        assert calls[0]["locations"] == [{"path": str(util)}]
        done = [u for u in client.kinds("tool_call_update") if u["status"] == "completed"]
        assert len(done) == 2
        assert done[1]["content"] == [{"type": "diff", "path": str(util), "oldText": unsaved,
                                       "newText": "def add(a, b):\n    return a + b\n"}]
        # edit asks (agentApproval's default); read is auto.
        assert len(client.permissions) == 1
        asked = client.permissions[0]
        assert asked["toolCall"]["toolCallId"] == calls[1]["toolCallId"]
        assert [o["kind"] for o in asked["options"]] == ["allow_once", "allow_always",
                                                          "reject_once"]
        assert client.text() == "Fixed."


async def test_allow_always_is_not_asked_again_and_reject_refuses(upstream, workspace):
    (workspace / "a.py").write_text("a = 1\n")
    upstream.enqueue(
        tool_reply(("edit_file", {"path": "a.py", "old": "a = 1", "new": "a = 2"})),
        tool_reply(("edit_file", {"path": "a.py", "old": "a = 2", "new": "a = 3"})),
        Reply.stream(["Done."]),
        tool_reply(("create_file", {"path": "b.py", "content": "b = 1\n"})),
        Reply.stream(["Could not."]))
    async with acp_agent(upstream, workspace) as client:
        session = await client.start_session(workspace)  # no fs: lspilot writes itself
        client.permission_answer = "allow_always"
        reply = await client.prompt(session, "bump twice")
        assert reply["result"]["stopReason"] == "end_turn", reply
        assert (workspace / "a.py").read_text() == "a = 3\n"
        assert len(client.permissions) == 1  # the second edit was allowed already
        client.permission_answer = "reject"
        reply = await client.prompt(session, "create b")
        assert reply["result"]["stopReason"] == "end_turn", reply
        assert not (workspace / "b.py").exists()
        assert len(client.permissions) == 2
        assert client.kinds("tool_call_update")[-1]["status"] == "failed"
        assert sent(upstream, 4)[-1]["content"].startswith("Refused:")
        # The session kept the first turn: the second request carries it.
        assert any(m["role"] == "user" and m["content"] == "bump twice"
                   for m in sent(upstream, 3))


async def test_cancel_mid_stream_closes_the_upstream_and_answers_cancelled(upstream,
                                                                           workspace):
    upstream.enqueue(Reply.stream(["first ", "second"], hang_after=2))
    async with acp_agent(upstream, workspace) as client:
        session = await client.start_session(workspace)
        prompt = client.prompt(session, "talk")
        await client.wait_for(lambda: bool(client.kinds("agent_message_chunk")))
        client.notify("session/cancel", {"sessionId": session})
        reply = await asyncio.wait_for(prompt, 5)
        assert reply["result"]["stopReason"] == "cancelled"
        await asyncio.to_thread(upstream.requests[0].client_closed.wait, 5)
        assert upstream.requests[0].client_closed.is_set()
        # The session goes on.
        upstream.enqueue(Reply.stream(["again"]))
        reply = await client.prompt(session, "more")
        assert reply["result"]["stopReason"] == "end_turn"


async def test_cancel_mid_tool_kills_the_command(upstream, workspace):
    pid_file = workspace.parent / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
              "time.sleep(60)")
    upstream.enqueue(tool_reply(("run_command", {"argv": [sys.executable, "-c", script]})))
    async with acp_agent(upstream, workspace, {"agentApproval": {"run": "auto"}}) as client:
        session = await client.start_session(workspace)
        prompt = client.prompt(session, "sleep")
        pid = await written_pid(pid_file)
        client.notify("session/cancel", {"sessionId": session})
        reply = await asyncio.wait_for(prompt, 5)
        assert reply["result"]["stopReason"] == "cancelled"
        assert client.kinds("tool_call")[0]["kind"] == "execute"
        await ended(pid)


async def test_cancel_while_asking_and_in_the_clients_terminal(upstream, workspace):
    upstream.enqueue(tool_reply(("run_command", {"argv": ["make"]})),
                     tool_reply(("run_command", {"argv": ["make", "slow"]})))
    async with acp_agent(upstream, workspace) as client:
        session = await client.start_session(workspace, {"terminal": True})
        client.permission_answer = None  # hold the question
        prompt = client.prompt(session, "build")
        await asyncio.wait_for(client.permission_asked.wait(), 10)
        client.notify("session/cancel", {"sessionId": session})
        reply = await asyncio.wait_for(prompt, 5)
        assert reply["result"]["stopReason"] == "cancelled"
        assert client.release is not None
        client.release.set_result({"outcome": {"outcome": "cancelled"}})  # as ACP asks
        assert not client.terminal_calls  # nothing ran

        client.permission_answer = "allow"
        client.terminal_hold = True
        prompt = client.prompt(session, "build slowly")
        await client.wait_for(lambda: any(m == "wait_for_exit"
                                          for m, _ in client.terminal_calls))
        shown = [u for u in client.kinds("tool_call_update")
                 if u.get("content") == [{"type": "terminal", "terminalId": "term-1"}]]
        assert shown, client.kinds("tool_call_update")
        client.notify("session/cancel", {"sessionId": session})
        reply = await asyncio.wait_for(prompt, 5)
        assert reply["result"]["stopReason"] == "cancelled"
        await client.wait_for(lambda: [m for m, _ in client.terminal_calls][-2:] ==
                              ["kill", "release"])
        create = client.terminal_calls[0][1]
        assert (create["command"], create["args"], create["cwd"]) == (
            "make", ["slow"], str(workspace))


async def test_run_tests_in_the_clients_terminal(upstream, workspace):
    (workspace / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    upstream.enqueue(tool_reply(("run_tests", {})), Reply.stream(["Green."]))
    async with acp_agent(upstream, workspace, {"agentApproval": {"run": "auto"}}) as client:
        session = await client.start_session(workspace, {"terminal": True})
        reply = await client.prompt(session, "test")
        assert reply["result"]["stopReason"] == "end_turn", reply
        assert [m for m, _ in client.terminal_calls] == ["create", "wait_for_exit", "output",
                                                          "release"]
        assert "1 passed, 0 failed" in sent(upstream, 1)[-1]["content"]


async def test_agent_max_steps_is_max_turn_requests(upstream, workspace):
    (workspace / "a.py").write_text("a = 1\n")
    upstream.enqueue(tool_reply(("read_file", {"path": "a.py"})))
    async with acp_agent(upstream, workspace, {"agentMaxSteps": 1}) as client:
        session = await client.start_session(workspace)
        reply = await client.prompt(session, "read")
        assert reply["result"]["stopReason"] == "max_turn_requests", reply
        assert "agentMaxSteps" in client.text()


async def test_ask_mode_sends_no_tools(upstream, workspace):
    upstream.enqueue(Reply.stream(["Just words."]))
    async with acp_agent(upstream, workspace) as client:
        session = await client.start_session(workspace)
        assert await client.call("session/set_mode", {"sessionId": session,
                                                      "modeId": "ask"}) == {}
        reply = await client.prompt(session, "hi")
        assert reply["result"]["stopReason"] == "end_turn"
        assert "tools" not in upstream.requests[0].json


async def test_session_cost_limit_refuses_the_next_turn(upstream, workspace):
    upstream.enqueue(Reply.stream(["Expensive."]))
    settings = {"maxSessionCost": 0.000001,
                "prices": {"fake-model": {"input": 1000, "output": 1000}},
                "model": "fake-model"}
    async with acp_agent(upstream, workspace, settings) as client:
        session = await client.start_session(workspace)
        reply = await client.prompt(session, "one")
        assert reply["result"]["stopReason"] == "end_turn", reply
        assert reply["result"]["_meta"]["lspilot"]["cost"] > 0
        assert client.kinds("usage_update")[-1]["cost"]["currency"] == "USD"
        reply = await client.prompt(session, "two")
        assert reply["result"]["stopReason"] == "refusal", reply
        assert "maxSessionCost" in client.text()
        assert len(upstream.requests) == 1


async def test_malformed_messages_get_errors_and_the_agent_lives_on(upstream, workspace):
    async with acp_agent(upstream, workspace) as client:
        client.send_raw(b"this is not json\n")
        assert (await client.expect_reply(None))["error"]["code"] == -32700
        client.pending.pop(None)
        client.send_raw(b"[1, 2]\n")
        assert (await client.expect_reply(None))["error"]["code"] == -32600
        client.pending.pop(None)
        client.send({"jsonrpc": "2.0", "id": "x1", "method": "no/such"})
        assert (await client.expect_reply("x1"))["error"]["code"] == -32601
        bad = await client.request("initialize", {"protocolVersion": "one"})
        assert bad["error"]["code"] == -32602
        session = await client.start_session(workspace)
        for params in ({"sessionId": session}, {"sessionId": "nope", "prompt": []},
                       {"sessionId": session, "prompt": [{"type": "video"}]}, [1]):
            bad = await client.request("session/prompt", params)
            assert bad["error"]["code"] == -32602, (params, bad)
        client.send({"jsonrpc": "2.0", "method": "session/cancel", "params": {}})
        client.send_raw(b'{"jsonrpc": "2.0", "id": 99, "result": null}\n')  # no such call
        upstream.enqueue(Reply.stream(["Still here."]))
        reply = await client.prompt(session, "alive?")
        assert reply["result"]["stopReason"] == "end_turn"
        assert client.text() == "Still here."
        assert json.dumps(reply)  # a plain answer


async def test_the_clients_mcp_servers_are_used_with_permission(upstream, workspace):
    from tests.e2e.test_mcp import TIME_SERVER

    upstream.enqueue(tool_reply(("mcp__time__get_current_time", {"timezone": "UTC"})),
                     Reply.stream(["It is Friday."]))
    async with acp_agent(upstream, workspace) as client:
        await client.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
        new = await client.call("session/new", {"cwd": str(workspace), "mcpServers": [
            {"name": "time", "command": TIME_SERVER, "args": ["--local-timezone=UTC"],
             "env": [{"name": "TZ", "value": "UTC"}]}]})
        reply = await client.request("session/prompt", {
            "sessionId": new["sessionId"], "prompt": [{"type": "text", "text": "time?"}]})
        assert reply["result"]["stopReason"] == "end_turn", reply
        assert len(client.permissions) == 1
        assert "get_current_time" in json.dumps(client.permissions[0])
        assert "mcp__time__get_current_time" in {
            t["function"]["name"] for t in upstream.requests[0].json["tools"]}
        result = sent(upstream, 1)[-1]
        assert result["role"] == "tool" and '"day_of_week"' in result["content"]
        assert [c["kind"] for c in client.kinds("tool_call")] == ["fetch"]
