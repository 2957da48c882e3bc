"""Upstream faults through the real server: a clear failure (the setting to fix named),
retries where they help, nothing half-done applied, live mode's original text restored,
the server up, and the very next action working. (Failures on lspilot's and the editor's
side are in test_failures.py.)"""

from __future__ import annotations

import asyncio
import socket

import pytest
from lsprotocol import types

from tests.e2e.harness import API_KEY, range_of, session
from tests.e2e.test_failures import assert_next_action_works
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"
BODY = "    s = 0\n    for i in items:\n        s += i\n    return s\n"
CODE = ["```python\n", "    return sum(items)\n", "    # more\n", "    # lines\n", "```\n"]
GOOD = ["```python\n", "    return sum(items)\n", "```\n"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trickle() -> Reply:
    body = b'data: {"choices": [{"delta": {"content": "never finished"}}]}\n\n'
    return Reply.sse([body[i : i + 1] for i in range(len(body))], delay=0.1)


FAULTS = [
    # name, replies, extra settings, expected error type (None: succeeds), live mode
    ("dropped mid-stream", [Reply.stream(CODE, delay=0.05, cut_after=3)], {}, "stream", True),
    ("silent upstream", [Reply.stream(CODE, delay=0.05, hang_after=3)],
     {"idleTimeout": 0.6}, "timeout", True),
    ("html page", [Reply.body("<html><body><h1>Welcome to nginx!</h1></body></html>")], {},
     "invalid_response", False),
    ("invalid json event", [Reply.sse(["data: {not json\n\n"])], {}, "invalid_response", False),
    ("answer too large", [Reply.stream(["x" * 40] * 20, delay=0.01)],
     {"maxResponseChars": 300}, "response_too_large", False),
    ("one byte at a time", [trickle()], {"idleTimeout": 0.5, "maxRetries": 0}, "timeout", False),
    ("429 many times with Retry-After",
     [Reply.error(429, "slow", headers={"retry-after": "0.1"})] * 3 + [Reply.stream(CODE)],
     {"maxRetries": 3}, None, False),
    ("429 without Retry-After", [Reply.error(429, "slow")] * 2 + [Reply.stream(CODE)],
     {}, None, False),
    ("500 then success", [Reply.error(500, "oops"), Reply.stream(CODE)], {}, None, True),
    ("refused connection", [], {"baseUrl": f"http://127.0.0.1:{closed_port()}/v1",
                                "maxRetries": 1}, "connection", False),
    ("unresolvable host", [], {"baseUrl": "http://lspilot-no-such-host.invalid/v1",
                               "maxRetries": 0}, "connection", False),
]


@pytest.mark.parametrize(("name", "replies", "options", "expected", "live"), FAULTS,
                         ids=[f[0] for f in FAULTS])
async def test_upstream_fault(upstream, workspace, name, replies, options, expected, live):
    upstream.enqueue(*replies)
    settings = {"liveRefactor": live, **options}
    async with session(upstream, workspace, init_options=settings) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await asyncio.wait_for(
            editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY)), 30)
        if expected is None:
            assert result["status"] == "done", result
            assert "sum(items)" in editor.text(uri)
        else:
            assert result["status"] == "failed", result
            assert result["error"]["type"] == expected
            assert len(result["error"]["message"]) > 20  # says what happened
            assert editor.text(uri) == SOURCE  # nothing half-done; live mode restored
            assert editor.client.messages, "the user was told"
        if "baseUrl" in options:
            return
        editor.upstream.enqueue(Reply.stream(["next one works"]))
        text = editor.text(uri)
        follow_up = await editor.run("lspilot.explain", uri, range_of(text, text.split("\n")[0]))
        assert follow_up["status"] == "done" and follow_up["text"] == "next one works"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_many_actions_in_a_row_and_at_once(upstream, workspace):
    """Correctness under load (speed is the benchmarks' job): none lost or duplicated."""
    upstream.default = Reply.stream(["```python\n", "x = 1\n", "```\n"])
    async with session(upstream, workspace, init_options={"maxConcurrentRequests": 64,
                                                          "explainShow": "none"}) as editor:
        uri = editor.open("calc.py", SOURCE)
        range_ = range_of(SOURCE, BODY)
        pid = editor.client._server.pid
        for _ in range(50):  # warm up caches and pools before measuring memory
            await editor.run("lspilot.explain", uri, range_)
        before = rss_kb(pid)
        for index in range(1000):
            result = await editor.run("lspilot.explain", uri, range_, token=f"seq-{index}")
            assert result["status"] == "done"
        growth_mb = (rss_kb(pid) - before) / 1024
        tokens = [f"par-{i}" for i in range(64)]
        results = await asyncio.gather(*(
            editor.run("lspilot.explain", uri, range_, token=t) for t in tokens))
        assert [r["status"] for r in results] == ["done"] * 64
        assert len(upstream.requests) == 50 + 1000 + 64
        done = [s["token"] for s in editor.streams if s["done"]]
        assert len(done) == len(set(done)) == 50 + 1000 + 64  # each ended exactly once
        assert set(tokens) | {f"seq-{i}" for i in range(1000)} <= set(done)
        assert growth_mb < 10, f"RSS grew {growth_mb:.1f} MB over 1,000 actions"


async def test_no_key_appears_anywhere_in_a_full_session(upstream, workspace, capfd):
    upstream.enqueue(
        Reply.error(401, f"Incorrect API key provided: {API_KEY}"),
        Reply.stream(["```python\n", "    return sum(items)\n", "```\n"]),
        Reply.sse([f'data: {{"error": {{"message": "bad key {API_KEY}"}}}}\n\n']),
    )
    async with session(upstream, workspace, init_options={"temperature": 9}) as editor:
        uri = editor.open("calc.py", SOURCE)
        texts = []
        for command in ("lspilot.explain", "lspilot.refactor", "lspilot.explain"):
            text = editor.text(uri)
            texts.append(str(await editor.run(command, uri, range_of(text, text.split("\n")[0]),
                                              token=command + str(len(texts)))))
        texts += [m.message for m in editor.client.messages]
        texts += [m.message for m in editor.client.log_messages]
        texts += [str(p) for reports in editor.client.progress_reports.values() for p in reports]
        texts += [str(s) for s in editor.streams]
    captured = capfd.readouterr()
    texts += [captured.err, captured.out]
    assert len(texts) > 10
    assert not [t for t in texts if API_KEY in t]


async def test_401_names_the_setting_to_fix(upstream, workspace):
    upstream.enqueue(Reply.error(401, "Incorrect API key provided", type="invalid_api_key"))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY), token="t401")
        assert result["status"] == "failed"
        assert result["error"]["type"] == "authentication"
        assert "Incorrect API key provided" in result["error"]["message"]
        assert "apiKey" in result["error"]["message"]
        assert "LSPILOT_API_KEY" in result["error"]["message"]
        assert len(upstream.requests) == 1  # never retried
        (message,) = editor.client.messages
        assert message.type == types.MessageType.Error and "apiKey" in message.message
        # The editor's own prefix goes first; the server's message has none.
        assert message.message.startswith("Refactor failed: ")
        hint = message.message
        assert hint.index('"lspilot: Set API key" command') < hint.index("LSPILOT_API_KEY") \
            < hint.index("the setting apiKey")
        end = editor.progress("t401")[-1]
        assert isinstance(end, types.WorkDoneProgressEnd) and end.message.startswith("Failed")
        assert editor.text(uri) == SOURCE
        await assert_next_action_works(editor, uri)


async def test_missing_key_fails_without_a_request(upstream, workspace):
    async with session(upstream, workspace, init_options={"apiKey": None}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed" and result["error"]["type"] == "no_api_key"
        assert result["error"]["message"] == (
            'No API key is set. Set one with the editor\'s "lspilot: Set API key" command, the '
            "environment variable LSPILOT_API_KEY (or OPENAI_API_KEY), or the setting apiKey. "
            "Local servers that need no key accept any value.")
        assert not upstream.requests
        assert [m.message for m in editor.client.messages] == [
            f"Explain failed: {result['error']['message']}"]


async def test_rate_limits_are_retried_then_succeed(upstream, workspace):
    upstream.enqueue(
        Reply.error(429, "slow down", headers={"retry-after": "0"}),
        Reply.error(429, "slow down"),
        Reply.stream(GOOD),
    )
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY), token="t429")
        assert result["status"] == "done", result
        assert len(upstream.requests) == 3
        reports = [p.message for p in editor.progress("t429")
                   if isinstance(p, types.WorkDoneProgressReport)]
        assert any("Retrying" in m for m in reports)
        assert "sum(items)" in editor.text(uri)


async def test_server_errors_fail_after_the_retries(upstream, workspace):
    upstream.default = Reply.error(503, "overloaded")
    async with session(upstream, workspace, init_options={"maxRetries": 2}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed" and result["error"]["type"] == "server_error"
        assert "overloaded" in result["error"]["message"]
        assert len(upstream.requests) == 3
        assert editor.text(uri) == SOURCE


async def test_a_stream_cut_mid_answer_applies_nothing(upstream, workspace):
    upstream.enqueue(Reply.stream(GOOD + ["more\n"] * 5, cut_after=3))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, BODY))
        assert result["status"] == "failed" and result["error"]["type"] == "stream"
        assert result["text"] == "".join(GOOD[:2])  # the partial answer is kept
        assert editor.text(uri) == SOURCE and not editor.edits
        await assert_next_action_works(editor, uri)
