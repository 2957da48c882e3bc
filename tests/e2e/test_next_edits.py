"""Next edit suggestions (textDocument/copilotInlineEdit) through the real server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from lsprotocol import types

from tests.e2e.harness import capabilities, plain, session
from tests.fake_upstream import Reply

METHOD = "textDocument/copilotInlineEdit"
SOURCE = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def report(width, height):\n"
    "    print(area(width, height))\n"
)
# The user renamed the first function's parameter `width` to `w` on line 0.
RENAMED_SIGNATURE = "def area(w, height):\n"
REWRITE = (
    "```python\n"
    "def area(w, height):\n"
    "    return w * height\n"
    "\n"
    "\n"
    "def report(width, height):\n"
    "    print(area(width, height))\n"
    "```\n"
)


def rename_first_parameter(editor: Any, uri: str) -> None:
    start, end = types.Position(0, 9), types.Position(0, 14)
    editor.change(uri, types.Range(start, end), "w")


async def ask(editor: Any, uri: str, line: int, character: int,
              version: int | None = None, msg_id: str | None = None) -> list[dict[str, Any]]:
    document = editor.documents[uri]
    params = {"textDocument": {"uri": uri, "version": document.version if version is None
                               else version},
              "position": {"line": line, "character": character}}
    if msg_id is not None:
        result = await editor.client.protocol.send_request_async(METHOD, params, msg_id=msg_id)
    else:
        result = await editor.client.protocol.send_request_async(METHOD, params)
    return plain(result)["edits"]


async def test_a_rename_on_one_line_is_offered_on_the_next(upstream, workspace):
    upstream.enqueue(Reply.stream([REWRITE]))
    async with session(upstream, workspace) as editor:
        assert editor.server_capabilities.experimental == {"copilotInlineEdit": True}
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        edits = await ask(editor, uri, 0, 10)
        assert edits == [{
            "text": "w", "newText": "w",
            "range": {"start": {"line": 1, "character": 11},
                      "end": {"line": 1, "character": 16}},
            "textDocument": {"uri": uri, "version": editor.documents[uri].version}}]
        prompt = upstream.requests[0].json["messages"][-1]["content"]
        assert "-def area(width, height):" in prompt and "+def area(w, height):" in prompt
        assert "<|editable_region_start|>" in prompt and "<|user_cursor_is_here|>" in prompt
        # Asked again at the same version: from the cache, no new request.
        assert await ask(editor, uri, 0, 10) == edits and len(upstream.requests) == 1
        status = await editor.command("lspilot.status")
        assert status["session"]["actions"]["nextEdit"]["requests"] == 1


async def test_an_answer_without_a_change_is_empty(upstream, workspace):
    unchanged = "```python\n" + RENAMED_SIGNATURE + SOURCE.split("\n", 1)[1] + "```\n"
    upstream.enqueue(Reply.stream([unchanged]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        assert await ask(editor, uri, 0, 10) == []


async def test_nothing_is_asked_without_edits_when_off_or_for_a_stale_version(
        upstream, workspace):
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       configuration={}) as editor:
        uri = editor.open("geometry.py", SOURCE)
        assert await ask(editor, uri, 0, 10) == []  # no edit yet
        rename_first_parameter(editor, uri)
        stale = editor.documents[uri].version - 1
        assert await ask(editor, uri, 0, 10, version=stale) == []
        editor.client.set_configuration({"nextEditSuggestions": False}, section="lspilot")
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None))
        assert await ask(editor, uri, 0, 10) == []
    assert upstream.requests == []


async def test_a_newer_request_supersedes_and_closes_the_older_upstream(upstream, workspace):
    upstream.enqueue(Reply.stream([REWRITE], delay=5.0), Reply.stream([REWRITE]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        first = asyncio.ensure_future(ask(editor, uri, 0, 10))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        second = asyncio.ensure_future(ask(editor, uri, 1, 4))
        assert await first == []  # superseded: empty at once
        assert await asyncio.to_thread(upstream.requests[0].client_closed.wait, 5)
        edits = await second
        assert edits and edits[0]["range"]["start"]["line"] == 1


async def test_an_answer_for_a_version_that_moved_on_is_empty(upstream, workspace):
    upstream.enqueue(Reply.stream([REWRITE], delay=0.5))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        pending = asyncio.ensure_future(ask(editor, uri, 0, 10))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.type_at(uri, types.Position(5, 0), "#")  # the user types on
        assert await pending == []


async def test_cancel_closes_the_upstream_request(upstream, workspace):
    upstream.enqueue(Reply.stream([REWRITE], delay=5.0))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        pending = asyncio.ensure_future(ask(editor, uri, 0, 10, msg_id="nes-1"))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.client.cancel_request(types.CancelParams(id="nes-1"))
        assert await asyncio.to_thread(upstream.requests[0].client_closed.wait, 5)
        # The request is answered (the cancel error, or no edits): waited for, not dropped,
        # so the client is not left with an answer to a future it threw away.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pending, 10)


async def test_suggestions_follow_the_users_edits_not_lspilots(upstream, workspace):
    refactored = "```python\ndef area(w, height):\n    return w * height\n```\n"
    upstream.enqueue(Reply.stream([refactored]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)  # the user's edit
        start, end = types.Position(0, 0), types.Position(2, 0)
        result = await editor.run("lspilot.refactor", uri, types.Range(start, end))
        assert result["status"] == "done"
        assert editor.text(uri).startswith("def area(w, height):\n    return w * height\n")
        # lspilot's refactor changed the document last: nothing is asked from that.
        assert await ask(editor, uri, 1, 4) == []
        assert len(upstream.requests) == 1  # the refactor's only
        # The user edits again: suggestions follow that edit.
        upstream.enqueue(Reply.stream([REWRITE]))
        editor.type_at(uri, types.Position(5, 4), "#")
        await ask(editor, uri, 5, 5)
        assert len(upstream.requests) == 2


async def test_an_accepted_suggestion_is_followed_by_the_next(upstream, workspace):
    # An accepted suggestion is the user's edit (the editor applies it), unlike lspilot's
    # own applyEdit: the next suggestion follows it, as a rename's other uses do.
    upstream.enqueue(Reply.stream([REWRITE]), Reply.stream([REWRITE]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("geometry.py", SOURCE)
        rename_first_parameter(editor, uri)
        (suggested,) = await ask(editor, uri, 0, 10)
        start, end = suggested["range"]["start"], suggested["range"]["end"]
        editor.change(uri, types.Range(types.Position(**start), types.Position(**end)),
                      suggested["newText"])  # the user accepts it: the editor applies it
        await ask(editor, uri, 1, 12)
        assert len(upstream.requests) == 2
        followed = upstream.requests[1].json["messages"][-1]["content"]
        assert "+    return w * height" in followed  # the accepted edit is in its history
