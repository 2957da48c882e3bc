"""Failures on lspilot's and the editor's side: conflicts, answers without code, refused
edits, live mode, bad client input: clear errors, nothing lost. (What the upstream does
wrong is in test_faults.py.)"""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from tests.e2e.harness import capabilities, range_of, session
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"
BODY = "    s = 0\n    for i in items:\n        s += i\n    return s\n"
GOOD = ["```python\n", "    return sum(items)\n", "```\n"]


async def assert_next_action_works(editor, uri) -> None:
    editor.upstream.enqueue(Reply.stream(["Fine again."]))
    result = await editor.run("lspilot.explain", uri, range_of(editor.text(uri), "def total"))
    assert result["status"] == "done" and result["text"] == "Fine again."







async def test_a_selection_over_the_budget_fails_at_once(upstream, workspace):
    big = "x = 1\n" * 100
    async with session(upstream, workspace, init_options={"contextBudgetChars": 300}) as editor:
        uri = editor.open("big.py", big)
        result = await editor.run("lspilot.refactor", uri, range_of(big, big))
        assert result["status"] == "failed"
        assert result["error"]["type"] == "selection_too_large"
        assert "contextBudgetChars" in result["error"]["message"]
        assert not upstream.requests


async def test_document_changed_while_streaming_is_a_conflict(upstream, workspace):
    upstream.enqueue(Reply.stream(GOOD, delay=0.2))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        task = asyncio.ensure_future(editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY)))
        await editor.wait_for_stream()
        editor.change(uri, types.Range(types.Position(0, 0), types.Position(0, 0)), "# edited\n")
        result = await asyncio.wait_for(task, 5)
        assert result["status"] == "failed" and result["error"]["type"] == "conflict"
        assert "changed" in result["error"]["message"]
        assert editor.text(uri) == "# edited\n" + SOURCE and not editor.edits


async def test_an_answer_without_code_changes_nothing(upstream, workspace):
    upstream.enqueue(Reply.stream([""], finish_reason="stop"))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed" and result["error"]["type"] == "no_code"
        assert editor.text(uri) == SOURCE and not editor.edits


async def test_an_edit_the_editor_refuses_is_reported(upstream, workspace):
    upstream.enqueue(Reply.stream(GOOD))
    async with session(upstream, workspace) as editor:
        editor.apply_mode = "reject"
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed" and result["error"]["type"] == "edit_rejected"
        assert "user said no" in result["error"]["message"]


async def test_an_edit_answered_with_an_error_is_a_refusal_not_a_crash(upstream, workspace):
    upstream.enqueue(Reply.stream(GOOD))
    async with session(upstream, workspace) as editor:
        editor.apply_mode = "error"
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed", result
        assert result["error"]["type"] == "edit_rejected", result
        assert "User cancelled server edit" in result["error"]["message"]
        assert editor.text(uri) == SOURCE
        logged = " ".join(m.message for m in editor.client.log_messages)
        assert "Traceback" not in logged and "crashed" not in logged, logged
        # Nothing is lost: the next action works.
        editor.apply_mode = "apply"
        upstream.enqueue(Reply.stream(GOOD))
        again = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert again["status"] == "done", again


async def test_confirm_edits_asks_for_a_preview(upstream, workspace):
    upstream.enqueue(Reply.stream(GOOD))
    caps = capabilities(annotations=True)
    async with session(upstream, workspace, caps=caps,
                       init_options={"confirmEdits": True}) as editor:
        uri = editor.open("calc.py", SOURCE)
        await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        edit = editor.edits[0].edit
        (annotation,) = edit.change_annotations.values()
        assert annotation.needs_confirmation is True
        assert isinstance(edit.document_changes[0].edits[0], types.AnnotatedTextEdit)


LIVE_ANSWER = ["```python\n", "    total = 0\n", "    for i in items:\n", "        total += i\n",
               "    return total\n", "```\n"]


async def test_live_mode_rewrites_as_it_streams(upstream, workspace):
    upstream.enqueue(Reply.stream(LIVE_ANSWER, delay=0.12))
    async with session(upstream, workspace, init_options={"liveRefactor": True}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "done", result
        assert len(editor.edits) >= 3  # line by line, then the final text
        assert editor.text(uri) == "def total(items):\n" + "".join(LIVE_ANSWER[1:-1])


async def test_live_mode_restores_the_original_on_cancel(upstream, workspace):
    upstream.enqueue(Reply.stream(LIVE_ANSWER[:4] + ["    pass\n"] * 100, delay=0.1))
    async with session(upstream, workspace, init_options={"liveRefactor": True}) as editor:
        uri = editor.open("calc.py", SOURCE)
        task = asyncio.ensure_future(
            editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY), token="live"))
        for _ in range(100):
            if editor.text(uri) != SOURCE:
                break
            await asyncio.sleep(0.05)
        assert editor.text(uri) != SOURCE  # it was being rewritten
        editor.client.window_work_done_progress_cancel(
            types.WorkDoneProgressCancelParams(token="live"))
        result = await asyncio.wait_for(task, 5)
        assert result["status"] == "cancelled"
        assert editor.text(uri) == SOURCE


async def test_live_mode_restores_the_original_on_failure(upstream, workspace):
    upstream.enqueue(Reply.stream(LIVE_ANSWER[:4] + ["x\n"] * 5, delay=0.1, cut_after=6))
    async with session(upstream, workspace, init_options={"liveRefactor": True}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed"
        assert len(editor.edits) >= 2
        assert editor.text(uri) == SOURCE


BAD_ARGUMENTS = [
    ("lspilot.refactor", [], "takes one argument object"),
    ("lspilot.refactor", ["not an object"], "takes one argument object"),
    ("lspilot.refactor", [{"range": None}], "'uri'"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": 1}}], "'range'"),
    ("lspilot.refactor", [{"uri": "URI", "range": "RANGE", "instruction": 5}], "'instruction'"),
    ("lspilot.refactor", [{"uri": "file:///nowhere/missing.py", "range": "RANGE"}], "not open"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 50, "character": 0},
                                                  "end": {"line": 60, "character": 0}}}],
     "outside the document"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 1, "character": 0},
                                                  "end": {"line": 1, "character": 0}}}],
     "empty"),
    ("lspilot.run", [{"uri": "URI", "range": "RANGE", "action": "nope"}], "Unknown action"),
    ("lspilot.run", [{"uri": "URI", "range": "RANGE"}], "needs an 'action'"),
    ("lspilot.nonsense", [{"uri": "URI", "range": "RANGE"}], "Unknown command"),
    # A token is a string or an integer; {} used to fail as -32603 (unhashable).
    ("lspilot.cancel", [{"token": {}}], "'token' must be a progress token"),
    ("lspilot.cancel", [{"token": [1]}], "'token' must be a progress token"),
    ("lspilot.cancel", [{"token": True}], "'token' must be a progress token"),
    ("lspilot.cancel", [{"token": 1.5}], "'token' must be a progress token"),
    ("lspilot.cancel", ["all"], "takes one object"),
    # Whole numbers only: cattrs would take 1.5 as line 1, true as 1.
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 1.5, "character": 0},
                                                  "end": {"line": 3, "character": 0}}}],
     "'range.start.line' must be a whole number"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 1, "character": 0},
                                                  "end": {"line": 3, "character": True}}}],
     "'range.end.character' must be a whole number"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 1, "character": 0},
                                                  "end": {"line": 2**31, "character": 0}}}],
     "'range.end.line' must be a whole number"),
    ("lspilot.refactor", [{"uri": "URI", "range": {"start": {"line": 3, "character": 0},
                                                  "end": {"line": 1, "character": 0}}}],
     "'range' ends before it starts"),
    ("lspilot.chat", [{"message": "hi", "uri": "URI",
                       "range": {"start": {"line": "1", "character": 0},
                                 "end": {"line": 3, "character": 0}}}],
     "'range.start.line' must be a whole number"),
    ("lspilot.chat", [{"message": "hi", "uri": "URI",
                       "range": {"start": {"line": 0, "character": 0},
                                 "end": {"line": 40, "character": 0}}}],
     "'range.end' (line 40, character 0) is outside the document"),
    ("lspilot.chat", [{"message": "hi", "conversation": 7}], "'conversation'"),
    ("lspilot.chat", [{"message": "hi", "uri": 7}], "'uri'"),
    ("lspilot.chatReset", [{"conversation": {"id": 1}}], "'conversation' must be"),
    ("lspilot.chatList", [{"conversation": 1}], "'conversation' must be"),
]


async def test_bad_input_gets_json_rpc_errors_and_the_server_lives_on(upstream, workspace):
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        good_range = editor.client.protocol._converter.unstructure(range_of(SOURCE, BODY))
        for command, arguments, expected in BAD_ARGUMENTS:
            arguments = [
                {k: (uri if v == "URI" else good_range if v == "RANGE" else v)
                 for k, v in a.items()} if isinstance(a, dict) else a
                for a in arguments
            ]
            with pytest.raises(JsonRpcInvalidParams) as caught:
                await editor.client.workspace_execute_command_async(
                    types.ExecuteCommandParams(command=command, arguments=arguments))
            assert expected in str(caught.value), (command, arguments, caught.value)
        assert not upstream.requests
        await assert_next_action_works(editor, uri)



@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
async def test_live_mode_tracks_non_ascii_text_in_each_encoding(upstream, workspace, encoding):
    source = 'def greet():\n    return "héllo 🌍"\n\nprint(greet())\n'
    body = '    return "héllo 🌍"\n'
    answer = ["```python\n", '    text = "wörld 😀 数据"\n', "    return text\n", "```\n"]
    upstream.enqueue(Reply.stream(answer, delay=0.12))
    async with session(upstream, workspace, caps=capabilities(encodings=[encoding]),
                       init_options={"liveRefactor": True}) as editor:
        uri = editor.open("greet.py", source)
        result = await editor.run("lspilot.refactor", uri, range_of(source, body, encoding))
        assert result["status"] == "done", result
        assert len(editor.edits) >= 3
        assert editor.text(uri) == source.replace(body, "".join(answer[1:-1]))
