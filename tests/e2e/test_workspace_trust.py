"""What a project's settings cannot do: take the user's key elsewhere (by an invalid or
unused key setting beside a baseUrl, by https -> http, from a folder's own section), run a
command the user did not approve (a workspace apiKeyCommand, after a 401 or at all; a test
command chosen after an "Always")."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path

from tests.e2e.harness import capabilities, position_of, range_of, session
from tests.fake_upstream import Reply

SOURCE = "x = 1\ny = 2\n"
USERS_KEY = "sk-users-own-key-0123456789"
# The user's own setup: the key in the environment, baseUrl in initializationOptions.
USER_OPTIONS: dict[str, Any] = {"apiKey": None, "baseUrl": "https://api.example.invalid/v1"}
USER_ENV = {"LSPILOT_API_KEY": USERS_KEY}


def answering(editor: Any, answer: str) -> list[str]:
    """Answer every question from now on with the action starting with ``answer``; the
    questions asked from now on."""
    questions: list[str] = []
    first = not hasattr(editor, "answer_with")
    editor.answer_with = (answer, questions)
    if first:
        @editor.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem:
            prefix, asked = editor.answer_with
            asked.append(params.message)
            titles = [a.title for a in params.actions or []]
            return types.MessageActionItem(title=next(t for t in titles
                                                      if t.startswith(prefix)))

    return questions


def bearers(upstream: Any) -> list[str]:
    return [r.headers.get("authorization", "") for r in upstream.requests]


@pytest.mark.parametrize("bogus", [
    {"apiKey": False}, {"apiKey": 123}, {"apiKey": []}, {"apiKeyCommand": 5},
    {"apiKeyCommand": []}, {"apiKey": "  "},
])
async def test_an_invalid_key_setting_beside_a_workspace_base_url_does_not_send_the_users_key(
        upstream, workspace, bogus):
    configuration = {"baseUrl": upstream.base_url, "inlineCompletions": True, **bogus}
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options=USER_OPTIONS, configuration=configuration,
                       env=USER_ENV) as editor:
        uri = editor.open("a.py", SOURCE)
        # Ghost text on the first keystroke: never asks, so it must not send.
        assert await editor.complete(uri, position_of(SOURCE, SOURCE.index("y = ") + 4)) == []
        questions = answering(editor, "Don't")
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "failed" and result["error"]["type"] == "no_api_key", result
        assert len(questions) == 1 and "Send your key" in questions[0]
    assert upstream.requests == []


async def test_the_workspaces_own_key_goes_where_the_workspace_says(upstream, workspace):
    configuration = {"baseUrl": upstream.base_url, "apiKey": "true"}
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options=USER_OPTIONS, configuration=configuration,
                       env=USER_ENV) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
    assert bearers(upstream) == ["Bearer true"]  # its own key, never the user's


async def test_a_folders_own_section_cannot_move_the_key_either(upstream, workspace):
    inner = workspace / "inner"
    inner.mkdir()
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options=USER_OPTIONS, configuration={}, env=USER_ENV) as editor:
        inner_uri = from_fs_path(str(inner)) or ""
        editor.client.set_configuration({"baseUrl": upstream.base_url, "apiKey": False},
                                        section="lspilot", scope_uri=inner_uri)
        editor.client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=inner_uri, name="inner")], removed=[])))
        uri = editor.open("inner/a.py", SOURCE)
        questions = answering(editor, "Don't")
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "failed" and result["error"]["type"] == "no_api_key", result
        assert len(questions) == 1
    assert upstream.requests == []


async def test_https_to_http_on_the_same_host_is_asked_about(upstream, workspace):
    # The user's key is for https://127.0.0.1:PORT; the workspace says http:// (the fake
    # upstream's own scheme): the key would cross the network in clear.
    secure = upstream.base_url.replace("http://", "https://")
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={**USER_OPTIONS, "baseUrl": secure},
                       configuration={"baseUrl": upstream.base_url}, env=USER_ENV) as editor:
        uri = editor.open("a.py", SOURCE)
        questions = answering(editor, "Don't")
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["error"]["type"] == "no_api_key", result
        assert len(questions) == 1 and "http://127.0.0.1" in questions[0]
        assert "https://127.0.0.1" in questions[0]
    assert upstream.requests == []


async def test_a_userinfo_url_is_shown_by_its_real_host(upstream, workspace):
    tricky = upstream.base_url.replace("http://", "http://api.openai.com@")
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options=USER_OPTIONS, configuration={"baseUrl": tricky},
                       env=USER_ENV) as editor:
        uri = editor.open("a.py", SOURCE)
        questions = answering(editor, "Don't")
        await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert len(questions) == 1
        assert "api.openai.com" not in questions[0] and "http://127.0.0.1" in questions[0]
    assert upstream.requests == []


async def test_a_workspace_key_command_does_not_run_after_a_401_on_the_users_key(
        upstream, workspace):
    marker = workspace.parent / "ran"
    command = ["sh", "-c", f"touch {marker}; echo sk-from-workspace"]
    upstream.enqueue(Reply.error(401, "bad key"))
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={"apiKey": None}, env=USER_ENV,
                       configuration={"apiKeyCommand": command}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "failed" and result["error"]["type"] == "authentication", result
    assert bearers(upstream) == [f"Bearer {USERS_KEY}"]
    assert not marker.exists()


async def test_a_workspace_key_command_runs_only_once_allowed_with_its_command_line(
        upstream, workspace):
    marker = workspace.parent / "ran"
    command = ["sh", "-c", f"touch {marker}; echo sk-from-workspace"]
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={"apiKey": None},
                       configuration={"apiKeyCommand": command}) as editor:
        uri = editor.open("a.py", SOURCE)
        questions = answering(editor, "Don't")
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["error"]["type"] == "no_api_key", result
        assert len(questions) == 1 and f"touch {marker}" in questions[0]
        assert not marker.exists() and upstream.requests == []
        questions = answering(editor, "Don't")
        await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert questions == []  # refused this session: not asked again
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={"apiKey": None},
                       configuration={"apiKeyCommand": command}) as editor:
        uri = editor.open("a.py", SOURCE)
        questions = answering(editor, "Run it")
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
        assert marker.exists() and bearers(upstream) == ["Bearer sk-from-workspace"]


async def test_a_key_with_a_carriage_return_is_stripped_and_a_non_ascii_one_refused(
        upstream, workspace):
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace, init_options={"apiKey": None},
                       env={"LSPILOT_API_KEY": USERS_KEY + "\r"}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
    assert bearers(upstream) == [f"Bearer {USERS_KEY}"]
    bad = "sk-caf\u00e9-secret-value"
    async with session(upstream, workspace, init_options={"apiKey": bad}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "failed", result
        status = await editor.command("lspilot.status")
        messages = [m.message for m in editor.messages]
        shown = json.dumps([result, status, messages], ensure_ascii=False, default=str)
        assert "caf" not in shown and "secret-value" not in shown
        assert any("apiKey" in m and "non-ASCII" in m for m in messages), messages


PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"]
TESTS = "```python\nfrom calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n```\n"
CALC = "def add(a, b):\n    return a + b\n"


async def test_always_approves_the_command_shown_not_one_the_workspace_chose_later(
        upstream, workspace):
    marker = workspace.parent / "pwned"
    async with session(upstream, workspace, caps=capabilities(configuration=True),
                       init_options={"testCommand": {"python": PYTEST}},
                       configuration={}) as editor:
        questions = answering(editor, "Always")
        upstream.enqueue(Reply.stream([TESTS]))
        uri = editor.open("calc.py", CALC)
        result = await editor.run("lspilot.writeTests", uri, range_of(CALC, CALC))
        assert result["tests"]["passed"] == 1 and len(questions) == 1, result
        # The project now chooses its own command: asked again, with that command.
        evil = ["sh", "-c", f"touch {marker}"]
        editor.client.set_configuration({"testCommand": {"python": evil}}, section="lspilot")
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None))
        questions = answering(editor, "Not now")
        upstream.enqueue(Reply.stream([TESTS]))
        (workspace / "test_calc.py").unlink()
        result = await editor.run("lspilot.writeTests", uri, range_of(CALC, CALC))
        assert result["status"] == "done" and "tests" not in result, result
        assert len(questions) == 1 and f"touch {marker}" in questions[0]
    assert not marker.exists()
