"""Agent mode through the real server: the model's tool calls run inside the workspace
with the user's approval, each step is reported, the conversation keeps the exchange."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from lsprotocol import types

from tests.e2e.harness import API_KEY, capabilities, plain, session
from tests.e2e.processes import ended, written_pid
from tests.fake_upstream import Reply

UTIL = "def add(a, b):\n    return a - b\n"


def tool_reply(*calls: tuple[str, Any], text: str = "", split: int = 3) -> Reply:
    """An answer that calls tools, each call's arguments split over ``split`` deltas."""
    events = []
    if text:
        events.append({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                          "content": text}}]})
    for index, (name, args) in enumerate(calls):
        raw = args if isinstance(args, str) else json.dumps(args)
        step = max(1, len(raw) // split)
        pieces = [raw[i:i + step] for i in range(0, len(raw), step)] or [""]
        first = {"index": index, "id": f"call_{index}", "type": "function",
                 "function": {"name": name, "arguments": pieces[0]}}
        events.append({"choices": [{"index": 0, "delta": {"tool_calls": [first]}}]})
        for piece in pieces[1:]:
            events.append({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": index, "function": {"arguments": piece}}]}}]})
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20,
                                            "total_tokens": 120}})
    return Reply.sse([f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"])


class Agent:
    """An editor session that answers approvals and records lspilot/toolCall."""

    def __init__(self, editor: Any, answer: str = "Allow") -> None:
        self.editor = editor
        self.answer = answer
        self.questions: list[str] = []
        self.steps: list[dict[str, Any]] = []
        # At each question: the newest progress of every token.
        self.progress_when_asked: list[dict[Any, Any]] = []

        @editor.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
            self.questions.append(params.message)
            self.progress_when_asked.append(
                {token: reports[-1] for token, reports in editor.progress_reports.items()
                 if reports})
            titles = [a.title for a in params.actions or []]
            assert titles == ["Allow", "Allow for this conversation", "Deny"], titles
            return types.MessageActionItem(title=self.answer)

        @editor.client.feature("lspilot/toolCall")
        def tool_call(params: Any) -> None:
            self.steps.append(plain(params))

    async def chat(self, message: str, **extra: Any) -> dict[str, Any]:
        return await self.editor.command("lspilot.chat", {"message": message,
                                                          "mode": "agent", **extra})


def sent_messages(upstream: Any, index: int) -> list[dict[str, Any]]:
    return upstream.requests[index].json["messages"]


async def test_read_then_edit_with_approval_and_the_exchange_is_kept(upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    upstream.enqueue(
        tool_reply(("read_file", {"path": "util.py"}), text="Let me look."),
        tool_reply(("edit_file", {"path": "util.py", "old": "return a - b",
                                  "new": "return a + b"})),
        Reply.stream(["Fixed add: it subtracted."]))
    async with session(upstream, workspace) as editor:
        agent = Agent(editor)
        uri = editor.open("util.py", UTIL)
        result = await agent.chat("fix add", uri=uri)
        assert result["status"] == "done", result
        assert result["text"] == "Let me look.Fixed add: it subtracted."
        assert [(s["name"], s["status"]) for s in result["steps"]] == [
            ("read_file", "done"), ("edit_file", "done")]
        assert result["stopReason"] == "end_turn" and result["usage"]["totalTokens"] > 0
        assert editor.documents[uri].text == "def add(a, b):\n    return a + b\n"
        edit = editor.edits[-1].edit
        assert edit.document_changes[0].text_document.version is not None  # versioned
        # Reads are automatic; the edit was asked about, naming the file and line.
        assert len(agent.questions) == 1 and "util.py line 2" in agent.questions[0]
        assert "-return a - b\n+return a + b" in agent.questions[0]
        assert [(s["name"], s["status"]) for s in agent.steps] == [
            ("read_file", "running"), ("read_file", "done"),
            ("edit_file", "running"), ("edit_file", "done")]
        assert all(s["conversation"] == result["conversation"] for s in agent.steps)
        # The request carried the tools; the next one the call and its result.
        first = upstream.requests[0].json
        assert {t["function"]["name"] for t in first["tools"]} >= {
            "read_file", "list_files", "search", "edit_file", "create_file", "run_tests"}
        assert first["tool_choice"] == "auto"
        second = sent_messages(upstream, 1)
        assert second[-2]["tool_calls"][0]["function"]["name"] == "read_file"
        assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_0"
        assert "2: " in second[-1]["content"] and "return a - b" in second[-1]["content"]
        # A later turn carries the whole exchange.
        upstream.enqueue(Reply.stream(["ok"]))
        await agent.chat("thanks", conversation=result["conversation"])
        later = sent_messages(upstream, 3)
        assert [m["role"] for m in later[1:]] == [
            "user", "assistant", "tool", "assistant", "tool", "assistant", "user"]


async def test_a_denied_edit_is_a_refused_step_and_the_file_is_untouched(upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    call = ("edit_file", {"path": "util.py", "old": "a - b", "new": "a + b"})
    upstream.enqueue(tool_reply(call), tool_reply(call), Reply.stream(["I will not."]))
    async with session(upstream, workspace) as editor:
        agent = Agent(editor, answer="Deny")
        result = await agent.chat("fix add")
        assert [s["status"] for s in result["steps"]] == ["refused", "refused"]
        assert len(agent.questions) == 1  # the same call again is refused unasked
        told = sent_messages(upstream, 1)[-1]
        assert told["role"] == "tool" and "refused" in told["content"]
        assert editor.edits == [] and (workspace / "util.py").read_text() == UTIL


async def test_paths_outside_excluded_files_bad_arguments_and_unknown_tools_fail_the_step(
        upstream, workspace):
    (workspace / ".env").write_text("SECRET=hunter2\n")
    outside = workspace.parent / "outside.txt"
    outside.write_text("private\n")
    (workspace / "link.txt").symlink_to(outside)
    upstream.enqueue(
        tool_reply(("read_file", {"path": "../outside.txt"}), ("read_file", {"path": "link.txt"}),
                   ("read_file", {"path": ".env"}), ("read_file", "{not json"),
                   ("read_file", {"path": 5}), ("delete_everything", {})),
        Reply.stream(["done"]))
    async with session(upstream, workspace) as editor:
        agent = Agent(editor)
        result = await agent.chat("read things")
        assert [s["status"] for s in result["steps"]] == ["failed"] * 6
        results = [m["content"] for m in sent_messages(upstream, 1) if m["role"] == "tool"]
        assert "outside the workspace" in results[0] and "outside the workspace" in results[1]
        assert "excluded" in results[2] and "not JSON" in results[3]
        assert "'path' must be a string" in results[4] and "no tool named" in results[5]
        everything = json.dumps(upstream.requests[1].json)
        assert "hunter2" not in everything and "private" not in everything


async def test_an_edit_outside_the_workspace_fails_without_asking(upstream, workspace):
    outside = workspace.parent / "outside.txt"
    outside.write_text("hello\n")
    (workspace / ".env").write_text("SECRET=1\n")
    upstream.enqueue(
        tool_reply(("edit_file", {"path": "../outside.txt", "old": "hello", "new": "bye"}),
                   ("create_file", {"path": "../new.txt", "content": "x"}),
                   ("edit_file", {"path": ".env", "old": "1", "new": "2"}),
                   ("run_tests", {"path": "../t.py"})),
        Reply.stream(["I cannot."]))
    async with session(upstream, workspace) as editor:
        agent = Agent(editor)  # it would Allow: nothing may be asked
        result = await agent.chat("edit outside")
        assert [s["status"] for s in result["steps"]] == ["failed"] * 4
        assert agent.questions == []
        results = [m["content"] for m in sent_messages(upstream, 1) if m["role"] == "tool"]
        assert "outside the workspace" in results[0] and "outside the workspace" in results[1]
        assert "excluded" in results[2] and "outside the workspace" in results[3]
        assert outside.read_text() == "hello\n" and not (workspace.parent / "new.txt").exists()
        assert (workspace / ".env").read_text() == "SECRET=1\n" and editor.edits == []


async def test_list_and_search_honour_gitignore_and_exclusions(upstream, workspace):
    (workspace / ".gitignore").write_text("build/\n*.log\n")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.py").write_text("needle = 1\n")
    (workspace / "app.log").write_text("needle\n")
    (workspace / "secrets").mkdir()
    (workspace / "secrets" / "k.py").write_text("needle = 'secret'\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("x = 1\nneedle = 2\n")
    upstream.enqueue(tool_reply(("list_files", {}), ("search", {"pattern": "needle"})),
                     Reply.stream(["ok"]))
    async with session(upstream, workspace) as editor:
        result = await Agent(editor).chat("where is needle?")
        assert [s["status"] for s in result["steps"]] == ["done", "done"]
        listed, found = [m["content"] for m in sent_messages(upstream, 1) if m["role"] == "tool"]
        assert "src/main.py" in listed and "build/out.py" not in listed
        assert "app.log" not in listed and "secrets/k.py" not in listed
        assert found.strip() == "src/main.py:2: needle = 2"


async def test_a_workspace_cannot_loosen_approval_and_never_removes_run_command(
        upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    upstream.enqueue(tool_reply(("edit_file", {"path": "util.py", "old": "a - b",
                                               "new": "a + b"})), Reply.stream(["ok"]))
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={"agentApproval": {"run": "never"}},
                       configuration={"agentApproval": {"edit": "auto", "run": "auto"}}
                       ) as editor:
        agent = Agent(editor, answer="Deny")
        result = await agent.chat("fix")
        assert result["steps"][0]["status"] == "refused" and len(agent.questions) == 1
        names = {t["function"]["name"] for t in upstream.requests[0].json["tools"]}
        assert "run_command" not in names and "run_tests" in names


async def test_max_steps_ends_the_turn_with_what_was_done(upstream, workspace):
    (workspace / "a.py").write_text("x = 1\n")
    upstream.enqueue(*[tool_reply(("read_file", {"path": "a.py"})) for _ in range(3)])
    async with session(upstream, workspace, init_options={"agentMaxSteps": 2}) as editor:
        result = await Agent(editor).chat("loop")
        assert result["status"] == "done" and result["stopReason"] == "max_steps"
        assert len(upstream.requests) == 2 and len(result["steps"]) == 2


async def test_run_command_runs_without_a_shell_or_the_key(upstream, workspace):
    script = ("import os; print(sorted(v for v in os.environ.values() if 'sk-' in v)); "
              "print('$HOME')")
    upstream.enqueue(tool_reply(("run_command", {"argv": [sys.executable, "-c", script]})),
                     Reply.stream(["ran"]))
    async with session(upstream, workspace, env={"OPENAI_API_KEY": API_KEY,
                                                 "LSPILOT_X": f"prefix-{API_KEY}"}) as editor:
        agent = Agent(editor, answer="Allow")
        result = await agent.chat("run it")
        assert result["steps"][0]["status"] == "done", result
        assert sys.executable in agent.questions[0]
        output = sent_messages(upstream, 1)[-1]["content"]
        assert "exit 0" in output and "[]" in output and "$HOME" in output  # no shell
        assert API_KEY not in json.dumps(upstream.requests[1].json)


async def test_cancel_during_a_tool_ends_its_process_group(upstream, workspace):
    pid_file = workspace.parent / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
              "time.sleep(60)")
    upstream.enqueue(tool_reply(("run_command", {"argv": [sys.executable, "-c", script]})))
    async with session(upstream, workspace,
                       init_options={"agentApproval": {"run": "auto"}}) as editor:
        Agent(editor)
        params = types.ExecuteCommandParams(command="lspilot.chat", arguments=[
            {"message": "sleep", "mode": "agent"}], work_done_token="agent-1")
        editor.expect_progress("agent-1")
        running = asyncio.ensure_future(editor.client.workspace_execute_command_async(params))
        pid = await written_pid(pid_file)
        await editor.command("lspilot.cancel", {"token": "agent-1"})
        result = await running
        assert result["status"] == "cancelled"
        await ended(pid)


async def test_run_tests_runs_the_test_command_and_counts(upstream, workspace):
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (workspace / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]
    upstream.enqueue(tool_reply(("run_tests", {"path": "test_calc.py"})),
                     Reply.stream(["1 passed"]))
    async with session(upstream, workspace,
                       init_options={"testCommand": {"python": pytest_argv},
                                     "agentApproval": {"run": "auto"}}) as editor:
        agent = Agent(editor)
        result = await agent.chat("run the tests")
        assert result["steps"][0]["status"] == "done" and agent.questions == []
        done = next(s for s in agent.steps if s["status"] == "done")
        assert done["summary"] == "1 passed, 0 failed"
        assert "1 passed" in sent_messages(upstream, 1)[-1]["content"]


async def agent_turn(editor: Any, message: str, token: str) -> asyncio.Future[Any]:
    params = types.ExecuteCommandParams(command="lspilot.chat", arguments=[
        {"message": message, "mode": "agent"}], work_done_token=token)
    editor.expect_progress(token)
    return asyncio.ensure_future(editor.client.workspace_execute_command_async(params))


async def test_an_edit_declined_in_the_editor_is_a_refused_step(upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    upstream.enqueue(tool_reply(("edit_file", {"path": "util.py", "old": "a - b",
                                               "new": "a + b"})),
                     Reply.stream(["Left as it is."]))
    async with session(upstream, workspace,
                       init_options={"agentApproval": {"edit": "auto"}}) as editor:
        editor.apply_mode = "decline"  # an editor that previews the edit; the user said no
        result = await Agent(editor).chat("fix add")
        assert result["status"] == "done"
        assert [s["status"] for s in result["steps"]] == ["refused"]
        told = sent_messages(upstream, 1)[-1]
        assert told["role"] == "tool" and "the user declined this edit" in told["content"]
        assert (workspace / "util.py").read_text() == UTIL


async def test_while_a_call_waits_for_approval_the_progress_has_no_cancel(upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    upstream.enqueue(tool_reply(("edit_file", {"path": "util.py", "old": "a - b",
                                               "new": "a + b"})),
                     Reply.stream(["Fixed."]))
    async with session(upstream, workspace) as editor:
        agent = Agent(editor)
        result = await (await agent_turn(editor, "fix add", "q1"))
        assert result["status"] == "done"
        (at_question,) = agent.progress_when_asked
        waiting = at_question["q1"]
        assert waiting.message == "Waiting for your review…" and waiting.cancellable is False
        reports = [p for p in editor.progress("q1") if p.kind == "report"]
        after = reports.index(waiting) + 1
        assert reports[after].cancellable is True


async def test_a_turn_cancelled_after_an_edit_says_the_edit_stays(upstream, workspace):
    (workspace / "util.py").write_text(UTIL)
    pid_file = workspace.parent / "pid"
    script = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
              "time.sleep(60)")
    upstream.enqueue(tool_reply(("edit_file", {"path": "util.py", "old": "a - b",
                                               "new": "a + b"})),
                     tool_reply(("run_command", {"argv": [sys.executable, "-c", script]})))
    async with session(upstream, workspace, init_options={
            "agentApproval": {"edit": "auto", "run": "auto"}}) as editor:
        Agent(editor)
        running = await agent_turn(editor, "fix and check", "agent-2")
        await written_pid(pid_file)
        await editor.command("lspilot.cancel", {"token": "agent-2"})
        assert (await running)["status"] == "cancelled"
        assert editor.progress("agent-2")[-1].message == \
            "Cancelled; the edits already applied stay (undo reverts them)."
        assert "a + b" in (workspace / "util.py").read_text()
