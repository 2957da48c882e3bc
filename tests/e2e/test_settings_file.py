"""The user's settings file, $XDG_CONFIG_HOME/lspilot/settings.json: read by the server and
`lspilot check`, between the environment and initializationOptions; a bad file or key is
named and the rest still applies."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.harness import range_of, session
from tests.e2e.test_cli import run_lspilot
from tests.fake_upstream import Reply

SOURCE = "x = 1\n"


def write_settings(config: Path, text: str) -> None:
    (config / "lspilot").mkdir(parents=True, exist_ok=True)
    (config / "lspilot" / "settings.json").write_text(text)


async def test_the_server_reads_the_file_under_initialization_options(upstream, workspace):
    config = workspace.parent / "config"
    write_settings(config, json.dumps({"model": "from-file", "temperature": 0.3,
                                       "topP": 7}))
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace, init_options={"temperature": 0.9},
                       env={"XDG_CONFIG_HOME": str(config)}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
        sent = upstream.requests[0].json
        assert sent["model"] == "from-file" and sent["temperature"] == 0.9
        assert "top_p" not in sent  # refused by name, the rest applies
        warnings = [m.message for m in editor.messages]
        assert any("topP" in m and "settings file" in m for m in warnings), warnings


async def test_a_file_that_is_not_json_is_named_and_ignored(upstream, workspace):
    config = workspace.parent / "config"
    write_settings(config, '{"model": "half')
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace, env={"XDG_CONFIG_HOME": str(config)}) as editor:
        uri = editor.open("a.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done", result
        warnings = [m.message for m in editor.messages]
        assert any("settings.json is not valid JSON (line 1" in m for m in warnings), warnings


def test_check_uses_the_file(upstream, tmp_path):
    write_settings(tmp_path, json.dumps({"baseUrl": upstream.base_url, "apiKey": "sk-file",
                                         "model": "file-model"}))
    upstream.enqueue(Reply.stream(["ok"]))
    done = run_lspilot("check", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"model": "file-model"' in done.stdout and "sk-file" not in done.stdout
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-file"
