"""The key never shows, whatever form it takes: a malformed key (a trailing ``\\r``, a
non-ASCII character) in an error, a popup, progress or ``lspilot.status``; a key the model
echoes, split across stream deltas, in the answer, progress, ``lspilot/stream``, the
explanation file, an applied edit and the kept chat."""

from __future__ import annotations

import asyncio
from pathlib import Path
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


def files_under(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8", errors="replace")
            for path in folder.rglob("*") if path.is_file()]


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
        # A trailing \r is stripped when the key is read (it came from a CRLF file), so
        # that key works; a non-ASCII one is refused by what is wrong. Either way the
        # progress ended and no form of the key shows.
        if key.endswith("\r"):
            assert result["status"] == "done", result
            assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
        else:
            assert result["status"] == "failed", result
        assert any(getattr(p, "kind", None) == "end"
                   for p in editor.client.progress_reports["t1"])
        texts = [str(result), str(status), *everything_shown(editor)]
    captured = capfd.readouterr()
    texts += [captured.err, captured.out]
    core = API_KEY[:-1]  # every form of either key holds this unescaped
    assert not [t for t in texts if core in t]


ECHO = ["Your key is sk-test-0123", "456789abcdef; do not share it.\n",
        "```python\n", "KEY = 'sk-test-01", "23456789abcdef'\n", "```\n"]


async def test_a_key_the_model_echoes_is_masked_everywhere(upstream, workspace, capfd):
    upstream.enqueue(Reply.stream(ECHO), Reply.stream(ECHO), Reply.stream(ECHO),
                     Reply.stream(ECHO))
    cache = workspace.parent / "cache" / "lspilot"
    async with session(upstream, workspace, init_options={"explainShow": "document"}) as editor:
        uri = editor.open("calc.py", SOURCE)
        results = [
            await editor.run("lspilot.explain", uri, range_of(SOURCE, BODY), token="explain"),
            await editor.command("lspilot.chat", {"message": "what is my key?", "uri": uri}),
        ]
        text = editor.text(uri)
        results.append(await editor.run("lspilot.refactor", uri, range_of(text, BODY),
                                        token="refactor"))
        conversation = results[1]["conversation"]
        results.append(await editor.command("lspilot.chatList", {"conversation": conversation}))
        assert [r.get("status", "done") for r in results] == ["done"] * 4, results
        assert "Your key is ***; do not share it." in results[0]["text"]
        assert "KEY = '***'" in editor.text(uri)  # the edit made of the answer
        assert editor.shown_documents  # the explanation file was written and shown
        streamed = "".join(s["delta"] for s in editor.streams if s["token"] == "explain")
        assert streamed == results[0]["text"]
        texts = [str(r) for r in results] + everything_shown(editor) + [editor.text(uri)]
    texts += files_under(cache / "explanations") + files_under(cache / "chats")
    assert len(files_under(cache / "chats")) == 1
    captured = capfd.readouterr()
    texts += [captured.err, captured.out]
    assert not [t for t in texts if "0123456789abcdef" in t]


async def test_a_key_cut_between_two_network_reads_is_masked_in_progress(upstream, workspace):
    # Reads a moment apart: the first half is relayed before the second has arrived.
    upstream.enqueue(Reply.stream(["The key: sk-test-01234567", "89abcdef. Done."],
                                  delay=0.3))
    async with session(upstream, workspace, init_options={"explainShow": "none"}) as editor:
        uri = editor.open("calc.py", SOURCE)
        running = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, BODY), token="slow"))
        await editor.wait_for_stream()
        first = [s["delta"] for s in editor.streams if s["delta"]]
        assert first == ["The key: "]  # the key's beginning waits for the rest
        result = await running
        assert result["text"] == "The key: ***. Done."
        assert not [t for t in everything_shown(editor) if "sk-test-0" in t]
