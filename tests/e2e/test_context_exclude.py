"""contextExclude keeps a file from the model by every path: actions, ghost text (the
document and its neighbours), chat's document context, next edit suggestions."""

from __future__ import annotations

import json

from lsprotocol import types

from tests.e2e.harness import position_of, range_of, session
from tests.fake_upstream import Reply

SECRET = "API_TOKEN = 'hunter2-do-not-send'\n"


async def test_an_action_on_an_excluded_file_is_refused_without_a_request(upstream, workspace):
    async with session(upstream, workspace) as editor:
        uri = editor.open(".env", SECRET, "dotenv")
        result = await editor.run("lspilot.explain", uri, range_of(SECRET, SECRET))
        assert result["status"] == "failed" and result["error"]["type"] == "excluded"
        assert ".env is excluded by contextExclude" in result["error"]["message"]
    assert upstream.requests == []


async def test_your_own_globs_add_to_the_defaults(upstream, workspace):
    async with session(upstream, workspace,
                       init_options={"contextExclude": ["config/*.yaml"]}) as editor:
        for name in ("config/prod.yaml", "keys/server.pem"):
            uri = editor.open(name, SECRET, "yaml")
            result = await editor.run("lspilot.explain", uri, range_of(SECRET, SECRET))
            assert result["error"]["type"] == "excluded", (name, result)
    assert upstream.requests == []


async def test_ghost_text_skips_an_excluded_document_and_keeps_it_out_of_neighbours(
        upstream, workspace):
    code = "import settings\n\nvalue = \n"
    upstream.enqueue(Reply.stream(["42"]))
    async with session(upstream, workspace, init_options={
            "completionDebounceMs": 0, "contextExclude": ["settings.py"]}) as editor:
        excluded = editor.open("settings.py", SECRET)
        assert await editor.complete(excluded, position_of(SECRET, len(SECRET) - 1)) == []
        uri = editor.open("app.py", code)
        await editor.complete(uri, position_of(code, code.index("value = ") + 8))
    assert len(upstream.requests) == 1
    assert "hunter2" not in json.dumps(upstream.requests[0].json)


async def test_chat_sends_only_a_note_for_an_excluded_open_document(upstream, workspace):
    upstream.enqueue(Reply.stream(["I cannot see it."]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n", "text")
        result = await editor.command("lspilot.chat", {"message": "what is this?", "uri": uri})
        assert result["status"] == "done", result
    sent = json.dumps(upstream.requests[0].json)
    assert "PRIVATE KEY" not in sent and "excluded by contextExclude" in sent


async def test_next_edit_suggestions_ask_nothing_for_an_excluded_file(upstream, workspace):
    async with session(upstream, workspace) as editor:
        uri = editor.open("prod.pem", "a\nb\n", "text")
        editor.change(uri, types.Range(types.Position(0, 0), types.Position(0, 1)), "c")
        params = {"textDocument": {"uri": uri, "version": editor.documents[uri].version},
                  "position": {"line": 0, "character": 1}}
        result = await editor.client.protocol.send_request_async(
            "textDocument/copilotInlineEdit", params)
        assert list(result.edits) == []
    assert upstream.requests == []


async def test_a_file_reference_to_an_excluded_file_is_refused(upstream, workspace):
    (workspace / ".env").write_text(SECRET)
    async with session(upstream, workspace) as editor:
        result = await editor.command("lspilot.chat", {"message": "what is in #file:.env ?"})
        assert result["status"] == "failed" and result["error"]["type"] == "excluded"
    assert upstream.requests == []
