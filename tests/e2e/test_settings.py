"""Settings through the real server: precedence, re-reading, refusing bad values."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from tests.e2e.harness import API_KEY, capabilities, range_of, session
from tests.fake_upstream import Reply

SOURCE = "x = 1\ny = 2\n"


async def model_of_next_request(editor, uri) -> dict:
    count = len(editor.upstream.requests)
    editor.upstream.enqueue(Reply.stream(["ok"]))
    await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
    return editor.upstream.requests[count].json


async def test_workspace_settings_override_initialization_options(upstream, workspace):
    caps = capabilities(configuration=True)
    async with session(upstream, workspace, caps=caps,
                       init_options={"model": "from-init", "temperature": 0.5},
                       configuration={"model": "from-workspace"}) as editor:
        uri = editor.open("a.py", SOURCE)
        sent = await model_of_next_request(editor, uri)
        assert sent["model"] == "from-workspace"
        assert sent["temperature"] == 0.5


async def test_settings_are_re_read_on_did_change_configuration(upstream, workspace):
    caps = capabilities(configuration=True)
    async with session(upstream, workspace, caps=caps, configuration={"model": "first"}) as editor:
        uri = editor.open("a.py", SOURCE)
        assert (await model_of_next_request(editor, uri))["model"] == "first"
        editor.client.set_configuration({"model": "second", "topP": 0.9}, section="lspilot")
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None))
        assert (await model_of_next_request(editor, uri))["model"] == "second"


async def test_pushed_settings_apply_without_workspace_configuration(upstream, workspace):
    async with session(upstream, workspace) as editor:
        uri = editor.open("a.py", SOURCE)
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"lspilot": {"model": "pushed"}}))
        assert (await model_of_next_request(editor, uri))["model"] == "pushed"


async def test_a_bad_value_is_refused_by_name_and_the_previous_one_kept(upstream, workspace):
    caps = capabilities(configuration=True)
    async with session(upstream, workspace, caps=caps, init_options={"temperature": 0.5},
                       configuration={"temperature": 7, "maxTokens": "lots"}) as editor:
        uri = editor.open("a.py", SOURCE)
        sent = await model_of_next_request(editor, uri)
        assert sent["temperature"] == 0.5
        assert "max_tokens" not in sent
        warnings = " ".join(m.message for m in editor.client.messages
                            if m.type == types.MessageType.Warning)
        assert "'temperature'" in warnings and "0 to 2" in warnings
        assert "'maxTokens'" in warnings and "whole number" in warnings


async def test_environment_is_the_lowest_layer(upstream, workspace):
    async with session(upstream, workspace, env={"LSPILOT_MODEL": "from-env"}) as editor:
        uri = editor.open("a.py", SOURCE)
        assert (await model_of_next_request(editor, uri))["model"] == "from-env"
    async with session(upstream, workspace, env={"LSPILOT_MODEL": "from-env"},
                       init_options={"model": "from-init"}) as editor:
        uri = editor.open("a.py", SOURCE)
        assert (await model_of_next_request(editor, uri))["model"] == "from-init"


async def test_api_key_command_supplies_the_key(upstream, workspace):
    async with session(upstream, workspace,
                       init_options={"apiKey": None, "apiKeyCommand": ["printf", "sk-vault"]}
                       ) as editor:
        uri = editor.open("a.py", SOURCE)
        await model_of_next_request(editor, uri)
        assert upstream.requests[0].headers["authorization"] == "Bearer sk-vault"


async def test_api_key_command_is_asked_again_after_a_401(upstream, workspace):
    key_file = workspace.parent / "key.txt"
    key_file.write_text("sk-old\n")
    upstream.enqueue(Reply.stream(["first"]), Reply.error(401, "key revoked"),
                     Reply.stream(["fine"]))
    options = {"apiKey": None, "apiKeyCommand": ["cat", str(key_file)]}
    async with session(upstream, workspace, init_options=options) as editor:
        uri = editor.open("a.py", SOURCE)
        # An action waits for the first settings: once it is done, the key was read.
        first = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert first["status"] == "done", first
        key_file.write_text("sk-rotated\n")  # the secret manager has a new key by now
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
        assert [r.headers["authorization"] for r in upstream.requests] == [
            "Bearer sk-old", "Bearer sk-old", "Bearer sk-rotated"]


async def test_each_workspace_folder_gets_its_own_settings(upstream, workspace):
    """workspace/configuration is asked with each folder as scopeUri; an action uses the
    settings of the innermost folder that holds its document."""
    from pygls.uris import from_fs_path

    other = workspace / "other"
    other.mkdir()
    caps = capabilities(configuration=True)
    async with session(upstream, workspace, caps=caps,
                       configuration={"model": "for-everything"}) as editor:
        other_uri = from_fs_path(str(other)) or ""
        editor.client.set_configuration({"model": "for-other", "temperature": 0.1},
                                        section="lspilot", scope_uri=other_uri)
        editor.client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=other_uri, name="other")], removed=[])))
        # No didChangeConfiguration: a new folder is enough to ask for its settings.
        top = editor.open("a.py", SOURCE)
        inner = editor.open("other/b.py", SOURCE)
        sent_inner = await model_of_next_request(editor, inner)
        assert sent_inner["model"] == "for-other" and sent_inner["temperature"] == 0.1
        sent_top = await model_of_next_request(editor, top)
        assert sent_top["model"] == "for-everything" and "temperature" not in sent_top


async def _session_answering(upstream, workspace, answer, questions):
    """A session whose key and baseUrl come from initializationOptions, while the workspace
    settings point baseUrl at ``upstream``: the key would move to another host."""
    caps = capabilities(configuration=True)
    context = session(upstream, workspace, caps=caps,
                      init_options={"baseUrl": "https://api.example.invalid/v1"},
                      configuration={"baseUrl": upstream.base_url})
    editor = await context.__aenter__()

    @editor.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def ask(params: types.ShowMessageRequestParams):
        questions.append(params.message)
        titles = [a.title for a in params.actions or []]
        return types.MessageActionItem(title=next(t for t in titles if t.startswith(answer)))

    return context, editor


async def test_a_workspace_cannot_move_the_key_to_another_host_unasked(upstream, workspace):
    host = "http://" + upstream.base_url.split("//")[1].split("/")[0]  # the origin
    questions: list[str] = []
    context, editor = await _session_answering(upstream, workspace, "Don't", questions)
    try:
        uri = editor.open("a.py", SOURCE)
        for _ in range(2):  # asked once; the second action is refused without asking
            result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
            assert result["status"] == "failed" and result["error"]["type"] == "no_api_key"
            assert f"not sent to {host}" in result["error"]["message"]
        assert len(questions) == 1, questions
        assert host in questions[0] and "api.example.invalid" in questions[0]
        assert upstream.requests == []  # the key never went there
    finally:
        await context.__aexit__(None, None, None)

    questions.clear()
    context, editor = await _session_answering(upstream, workspace, "Send", questions)
    try:
        uri = editor.open("a.py", SOURCE)
        upstream.enqueue(Reply.stream(["allowed"]))
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
        assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
        assert len(questions) == 1
    finally:
        await context.__aexit__(None, None, None)

    # Remembered across restarts (owner-only): not asked again.
    allowed = workspace.parent / "cache" / "lspilot" / "allowed-key-hosts.json"
    assert (allowed.stat().st_mode & 0o777) == 0o600 and host in allowed.read_text()
    questions.clear()
    context, editor = await _session_answering(upstream, workspace, "Don't", questions)
    try:
        uri = editor.open("a.py", SOURCE)
        upstream.enqueue(Reply.stream(["still allowed"]))
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done" and questions == []
    finally:
        await context.__aexit__(None, None, None)


async def test_an_action_does_not_wait_long_for_a_reload_the_editor_is_slow_to_answer(
        upstream, workspace):
    # Under load eglot answered a reload's workspace/configuration after its own 10 s
    # timeout on the action: the action runs on the settings it had after a short wait.
    caps = capabilities(configuration=True)
    async with session(upstream, workspace, caps=caps, configuration={"model": "first"}) as editor:
        uri = editor.open("a.py", SOURCE)
        assert (await model_of_next_request(editor, uri))["model"] == "first"
        release = editor.hold_configuration = asyncio.Event()
        editor.configuration_asked.clear()
        editor.client.set_configuration({"model": "second"}, section="lspilot")
        editor.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None))
        await asyncio.wait_for(editor.configuration_asked.wait(), 5)
        # Runs before the answer (well inside the 10 s lspilot gives the editor to answer),
        # on the settings it had.
        sent = await asyncio.wait_for(model_of_next_request(editor, uri), 8)
        assert sent["model"] == "first" and not release.is_set()
        release.set()
        # Once the answer is read the reload ends, and the next action waits for it.
        assert (await model_of_next_request(editor, uri))["model"] == "second"
