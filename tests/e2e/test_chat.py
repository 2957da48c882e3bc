"""Chat through the real server: turns with history, reset, restart, the budget, #file:,
cancel, a failure keeping its text, and applying an answer's code block."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from tests.e2e.harness import plain, range_of, session
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"


async def chat(editor: Any, message: str, **extra: Any) -> dict[str, Any]:
    return await editor.command("lspilot.chat", {"message": message, **extra})


def sent(request: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.json["messages"]]


async def test_a_second_turn_has_the_first_as_history(upstream, workspace):
    upstream.enqueue(Reply.stream(["It sums ", "the items."]), Reply.stream(["Use sum()."]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        first = await chat(editor, "What does this do?", uri=uri,
                           range=editor.client.protocol._converter.unstructure(
                               range_of(SOURCE, SOURCE)))
        assert first["status"] == "done" and first["text"] == "It sums the items."
        assert first["droppedTurns"] == 0
        conversation = first["conversation"]
        assert conversation.startswith("chat-")
        second = await chat(editor, "How would you shorten it?", conversation=conversation)
        assert second["conversation"] == conversation and second["text"] == "Use sum()."
        roles = sent(upstream.requests[1])
        assert [r for r, _ in roles] == ["system", "user", "assistant", "user"]
        assert "What does this do?" in roles[1][1] and "def total" in roles[1][1]
        assert roles[2][1] == "It sums the items."
        assert {s.get("conversation") for s in editor.streams} == {conversation}
        assert second["usage"]["promptTokens"] == 11


async def test_after_a_reset_the_conversation_is_unknown(upstream, workspace):
    upstream.enqueue(Reply.stream(["hi"]))
    async with session(upstream, workspace) as editor:
        first = await chat(editor, "hello")
        forgotten = await editor.command("lspilot.chatReset",
                                         {"conversation": first["conversation"]})
        assert forgotten == {"forgotten": [first["conversation"]]}
        with pytest.raises(JsonRpcInvalidParams, match="does not know the conversation"):
            await chat(editor, "again", conversation=first["conversation"])
        assert len(upstream.requests) == 1


async def test_a_conversation_survives_a_restart(upstream, workspace):
    upstream.enqueue(Reply.stream(["first answer"]), Reply.stream(["second answer"]))
    async with session(upstream, workspace) as editor:
        conversation = (await chat(editor, "remember me"))["conversation"]
    async with session(upstream, workspace) as editor:
        second = await chat(editor, "do you?", conversation=conversation)
        assert second["status"] == "done"
        assert ("assistant", "first answer") in sent(upstream.requests[1])
    files = list((workspace.parent / "cache" / "lspilot" / "chats").iterdir())
    assert [oct(f.stat().st_mode & 0o777) for f in files] == ["0o600"]


async def test_kept_conversations_are_listed_newest_first_and_reopen_as_typed(upstream,
                                                                               workspace):
    upstream.enqueue(Reply.stream(["It sums."]), Reply.stream(["Use sum()."]),
                     Reply.stream(["Hello."]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        older = (await chat(editor, "What does\nthis do?", uri=uri))["conversation"]
        await chat(editor, "Shorter?", conversation=older)
        newer = (await chat(editor, "hi there"))["conversation"]
    async with session(upstream, workspace) as editor:  # kept across a restart
        listed = await editor.command("lspilot.chatList", {})
        assert [(c["conversation"], c["title"], c["turns"])
                for c in listed["conversations"]] == [
            (newer, "hi there", 2), (older, "What does this do?", 4)]
        shown = await editor.command("lspilot.chatList", {"conversation": older})
        # The user's turns as typed: the document's code went to the model, not the view.
        assert shown["turns"] == [
            {"role": "user", "text": "What does\nthis do?"},
            {"role": "assistant", "text": "It sums."},
            {"role": "user", "text": "Shorter?"},
            {"role": "assistant", "text": "Use sum()."}]
        await editor.command("lspilot.chatReset", {})
        assert await editor.command("lspilot.chatList", {}) == {"conversations": []}
        with pytest.raises(JsonRpcInvalidParams, match="does not know the conversation"):
            await editor.command("lspilot.chatList", {"conversation": older})


async def test_old_turns_are_dropped_to_fit_the_budget(upstream, workspace):
    upstream.enqueue(Reply.stream(["x" * 2000]), Reply.stream(["ok"]))
    async with session(upstream, workspace,
                       init_options={"contextBudgetChars": 1500}) as editor:
        conversation = (await chat(editor, "say a lot"))["conversation"]
        second = await editor.command("lspilot.chat", {"message": "and now?",
                                                       "conversation": conversation})
        assert second["status"] == "done" and second["droppedTurns"] == 2
        assert [r for r, _ in sent(upstream.requests[1])] == ["system", "user"]
        reports = [p.message for reports in editor.client.progress_reports.values()
                   for p in reports if getattr(p, "message", None)]
        assert any("2 earlier turn(s) left out" in m for m in reports)


async def test_a_named_file_is_included_and_one_outside_is_refused(upstream, workspace):
    upstream.enqueue(Reply.stream(["seen"]))
    (workspace / "util.py").write_text("def helper():\n    return 42\n")
    (workspace.parent / "secret.txt").write_text("top secret")
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        ok = await chat(editor, "Compare with #file:util.py please", uri=uri)
        assert ok["status"] == "done"
        assert "def helper()" in sent(upstream.requests[0])[-1][1]
        refused = await chat(editor, "read #file:../secret.txt", uri=uri)
        assert refused["status"] == "failed"
        assert refused["error"]["type"] == "outside_workspace"
        message = refused["error"]["message"]
        assert message.startswith("#file:../secret.txt is outside") and "secret.txt" in message
        assert "tests" not in message and "outside the workspace folder" in message
        assert len(upstream.requests) == 1


async def test_cancel_stops_a_turn(upstream, workspace):
    upstream.enqueue(Reply.stream([f"w{i} " for i in range(200)], delay=0.05))
    async with session(upstream, workspace) as editor:
        editor.client.progress_reports.setdefault("chat-1", [])  # a client-made token
        running = asyncio.ensure_future(editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lspilot.chat",
                                       arguments=[{"message": "talk"}],
                                       work_done_token="chat-1")))
        await editor.wait_for_stream()
        assert (await editor.command("lspilot.cancel", {"token": "chat-1"}))["cancelled"]
        result = plain(await running)
        assert result["status"] == "cancelled" and result["conversation"].startswith("chat-")
        assert upstream.requests[0].client_closed.wait(2)


async def test_a_failure_mid_stream_keeps_the_text(upstream, workspace):
    upstream.enqueue(Reply.stream(["partial ", "answer", "never"], cut_after=3))
    async with session(upstream, workspace, init_options={"maxRetries": 0}) as editor:
        result = await chat(editor, "go")
        assert result["status"] == "failed" and result["text"] == "partial answer"
        assert result["conversation"].startswith("chat-")


async def test_a_code_block_is_applied_and_a_stale_version_is_not(upstream, workspace):
    answer = "Shorter:\n\n```python\ndef total(items):\n    return sum(items)\n```\n"
    upstream.enqueue(Reply.stream([answer]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        conversation = (await chat(editor, "shorten", uri=uri))["conversation"]
        whole = editor.client.protocol._converter.unstructure(range_of(SOURCE, SOURCE))
        stale = await editor.command("lspilot.chatApply", {
            "conversation": conversation, "block": 0, "uri": uri, "range": whole,
            "version": 0})
        assert stale["status"] == "failed" and stale["error"]["type"] == "conflict"
        assert editor.text(uri) == SOURCE
        applied = await editor.command("lspilot.chatApply", {
            "conversation": conversation, "block": 0, "uri": uri, "range": whole,
            "version": 1})
        assert applied == {"status": "done", "error": None}
        assert editor.text(uri) == "def total(items):\n    return sum(items)\n"
        with pytest.raises(JsonRpcInvalidParams, match="1 code block"):
            await editor.command("lspilot.chatApply", {
                "conversation": conversation, "block": 1, "uri": uri, "range": whole})


async def test_a_named_file_larger_than_the_budget_is_refused_before_asking(upstream,
                                                                            workspace):
    upstream.enqueue(Reply.stream(["seen"]))
    (workspace / "big.txt").write_text("x" * 2_000_000)
    (workspace / "small.py").write_text("def helper():\n    return 42\n")
    async with session(upstream, workspace,
                       init_options={"contextBudgetChars": 5000}) as editor:
        refused = await chat(editor, "read #file:big.txt")
        assert refused["status"] == "failed", refused
        assert refused["error"]["type"] == "context_too_large"
        assert "contextBudgetChars" in refused["error"]["message"]
        # Files share the budget: two that fit alone do not fit together.
        (workspace / "half.txt").write_text("y" * 3000)
        both = await chat(editor, "read #file:half.txt and #file:half.txt")
        assert both["error"]["type"] == "context_too_large"
        assert upstream.requests == []
        ok = await chat(editor, "and #file:small.py?")
        assert ok["status"] == "done"
        assert len(upstream.requests[0].body) < 5000 * 2
    kept = "".join(f.read_text() for f in
                   (workspace.parent / "cache" / "lspilot" / "chats").iterdir())
    assert "xxxxxxxxxx" not in kept and "def helper()" in kept


async def test_from_an_untitled_buffer_a_named_file_comes_from_the_workspace_folder(
        upstream, workspace):
    upstream.enqueue(Reply.stream(["seen"]))
    (workspace / "util.py").write_text("def helper():\n    return 42\n")
    assert (Path.cwd() / "README.md").is_file()  # the server's working directory has one
    async with session(upstream, workspace) as editor:
        editor.open_document("untitled:Untitled-1", "print('draft')\n", "python")
        refused = await chat(editor, "read #file:README.md", uri="untitled:Untitled-1")
        assert refused["status"] == "failed" and refused["error"]["type"] == "no_file"
        ok = await chat(editor, "compare #file:util.py", uri="untitled:Untitled-1")
        assert ok["status"] == "done"
        assert "def helper()" in sent(upstream.requests[0])[-1][1]
        assert len(upstream.requests) == 1


async def test_without_a_workspace_folder_a_named_file_is_refused(upstream, workspace):
    async with session(upstream, workspace, folders=False) as editor:
        editor.open_document("untitled:Untitled-1", "print('draft')\n", "python")
        refused = await chat(editor, "read #file:README.md", uri="untitled:Untitled-1")
        assert refused["status"] == "failed" and refused["error"]["type"] == "no_file"
        assert "workspace folder" in refused["error"]["message"]
        no_document = await chat(editor, "read #file:README.md")
        assert no_document["error"]["type"] == "no_file"
        assert upstream.requests == []


async def test_a_named_fifo_is_refused_and_the_server_keeps_answering(upstream, workspace):
    os.mkfifo(workspace / "pipe")
    (workspace / "data.bin").write_bytes(b"\xff\xfe\x00binary")
    async with session(upstream, workspace) as editor:
        try:
            refused = await asyncio.wait_for(chat(editor, "read #file:pipe"), 10)
        except TimeoutError:
            # Let the stuck server go (a writer comes and goes), so the test can end.
            os.close(os.open(workspace / "pipe", os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("the server hung on a FIFO named by #file:")
        assert refused["status"] == "failed" and refused["error"]["type"] == "no_file"
        assert "not a regular file" in refused["error"]["message"]
        binary = await asyncio.wait_for(chat(editor, "read #file:data.bin"), 10)
        assert binary["error"]["type"] == "no_file" and "UTF-8" in binary["error"]["message"]
        status = await asyncio.wait_for(editor.command("lspilot.status"), 10)
        assert status["running"] == []
        assert upstream.requests == []


async def test_apply_refuses_a_reversed_or_outside_range_and_sends_no_edit(upstream,
                                                                          workspace):
    upstream.enqueue(Reply.stream(["```python\nreturn sum(items)\n```\n"]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        conversation = (await chat(editor, "shorten", uri=uri))["conversation"]

        def at(line: int, character: int) -> dict[str, int]:
            return {"line": line, "character": character}

        refused = [
            ({"start": at(4, 0), "end": at(1, 0)}, "'range' ends before it starts"),
            ({"start": at(1, 0), "end": at(9, 0)}, "'range.end' (line 9, character 0) is "
                                                  "outside the document, which has 5 lines"),
            ({"start": at(5, 3), "end": at(5, 3)}, "'range.start' (line 5, character 3)"),
            ({"start": at(1.5, 0), "end": at(2, 0)}, "'range.start.line' must be a whole"),
        ]
        for range_, message in refused:
            with pytest.raises(JsonRpcInvalidParams, match="lspilot.chatApply: " + message
                               .replace("(", r"\(").replace(")", r"\)")):
                await editor.command("lspilot.chatApply", {
                    "conversation": conversation, "uri": uri, "range": range_})
        for bad in ({"block": True}, {"version": "1"}, {"turn": 0.0}):
            with pytest.raises(JsonRpcInvalidParams, match=f"'{next(iter(bad))}'"):
                await editor.command("lspilot.chatApply", {
                    "conversation": conversation, "uri": uri,
                    "range": {"start": at(1, 0), "end": at(2, 0)}, **bad})
        assert not editor.edits and editor.text(uri) == SOURCE
        # The document's end (after its last line end) and a character past a line's end
        # (that line's end, as LSP says) are inside.
        done = await editor.command("lspilot.chatApply", {
            "conversation": conversation, "uri": uri,
            "range": {"start": at(5, 0), "end": at(5, 0)}})
        assert done == {"status": "done", "error": None}
        assert editor.text(uri) == SOURCE + "return sum(items)\n"
