"""The key never shows, whatever form it takes: a malformed key (a trailing ``\\r``, a
non-ASCII character) in an error, a popup, progress or ``lspilot.status``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import API_KEY, range_of, session
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"
BODY = "    s = 0\n    for i in items:\n        s += i\n    return s\n"


def everything_shown(editor: Any) -> list[str]:
    """Every text the editor got: messages, logs, progress, stream notifications."""
    client = editor.client
    return ([m.message for m in client.messages] + [m.message for m in client.log_messages]
            + [str(p) for reports in client.progress_reports.values() for p in reports]
            + [str(s) for s in editor.streams])


@pytest.mark.parametrize("key", [API_KEY + "\r", API_KEY[:-1] + "é"],
                         ids=["trailing carriage return", "non-ASCII character"])
@pytest.mark.parametrize("source", ["initializationOptions", "environment"])
async def test_a_malformed_key_never_shows(upstream, workspace, capfd, key, source):
    upstream.enqueue(Reply.stream(["never asked"]))
    options: dict[str, Any] = {"maxRetries": 0, "explainShow": "none"}
    env: dict[str, str] = {}
    if source == "environment":
        options["apiKey"] = None
        env["OPENAI_API_KEY"] = key
    else:
        options["apiKey"] = key
    async with session(upstream, workspace, init_options=options, env=env) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, BODY), token="t1")
        status = await editor.command("lspilot.status")
        # Whatever stopped it (the key's check, or the request that could not be sent),
        # it was said, and the progress ended.
        assert result["status"] == "failed", result
        assert any(getattr(p, "kind", None) == "end"
                   for p in editor.client.progress_reports["t1"])
        texts = [str(result), str(status), *everything_shown(editor)]
    captured = capfd.readouterr()
    texts += [captured.err, captured.out]
    core = API_KEY[:-1]  # every form of either key holds this unescaped
    assert not [t for t in texts if core in t]

