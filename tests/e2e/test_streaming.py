"""Progress, lspilot/stream notifications, cancellation and concurrency."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tests.e2e.harness import capabilities, plain, range_of, session
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"
CODE_LINES = ["```python\n", "def total(items):\n", "    return sum(items)\n", "```\n"]


def slow(count: int = 200, delay: float = 0.05) -> Reply:
    return Reply.stream([f"word{i} " for i in range(count)], delay=delay)


async def test_client_token_carries_progress_and_stream(upstream, workspace):
    upstream.enqueue(Reply.stream(["line one\n", "line two\n", "last line"], delay=0.06))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE),
                                  token="client-token-1")
        assert result["status"] == "done"
        kinds = [type(p).__name__ for p in editor.progress("client-token-1")]
        assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
        assert "WorkDoneProgressReport" in kinds
        begin = editor.progress("client-token-1")[0]
        assert begin.cancellable is True and begin.title == "lspilot: Explain"
        last_report = [p for p in editor.progress("client-token-1")
                       if isinstance(p, types.WorkDoneProgressReport)][-1]
        # The step and its progress, never fragments of the answer.
        assert last_report.message == "Writing the answer… 27 chars"
        assert not [p for p in editor.progress("client-token-1") if "line" in (p.message or "")]
        end = editor.progress("client-token-1")[-1]
        assert end.message.startswith("Done:") and "tokens in" in end.message
        assert {s["token"] for s in editor.streams} == {"client-token-1"}
        assert editor.streams[-1]["done"] is True
        assert editor.stream_text("client-token-1") == "line one\nline two\nlast line"


async def test_server_creates_a_token_when_the_client_sends_none(upstream, workspace):
    upstream.enqueue(Reply.stream(["ok"]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        (token,) = editor.client.progress_reports
        assert str(token).startswith("lspilot-")
        assert isinstance(editor.progress(token)[0], types.WorkDoneProgressBegin)
        assert isinstance(editor.progress(token)[-1], types.WorkDoneProgressEnd)
        assert editor.streams[0]["token"] == token


async def test_without_progress_support_the_stream_still_flows(upstream, workspace):
    upstream.enqueue(Reply.stream(["still ", "streams"]))
    async with session(upstream, workspace, caps=capabilities(progress=False)) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done"
        assert not editor.client.progress_reports
        assert editor.stream_text() == "still streams"


async def test_notifications_are_coalesced_and_lose_nothing(upstream, workspace):
    chunks = [f"t{i} " for i in range(300)]
    upstream.enqueue(Reply.stream(chunks, delay=0.002))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        started = time.monotonic()
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE),
                                  token="burst")
        elapsed = time.monotonic() - started
        text_notes = [s for s in editor.streams if not s["done"]]
        # The first words go out alone, at once; after that at most one per 50 ms.
        assert text_notes[0]["delta"] == "t0 "
        assert len(text_notes) <= elapsed / 0.05 + 3
        assert len(text_notes) < len(chunks) / 4
        assert editor.stream_text() == "".join(chunks) == result["text"]
        reports = [p for p in editor.progress("burst")
                   if isinstance(p, types.WorkDoneProgressReport)]
        assert len(reports) <= elapsed / 0.05 + 3


async def _start_slow_action(editor, uri, token=None, msg_id=None):
    task = asyncio.ensure_future(
        editor.run("lspilot.refactor", uri, range_of(SOURCE, SOURCE), token=token, msg_id=msg_id)
    )
    await editor.wait_for_stream()
    return task


async def test_cancel_request_stops_the_upstream_and_applies_nothing(upstream, workspace):
    upstream.enqueue(slow())
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        task = await _start_slow_action(editor, uri, msg_id="refactor-1")
        cancelled_at = time.monotonic()
        editor.client.cancel_request(types.CancelParams(id="refactor-1"))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(task, 5)
        request = upstream.requests[0]
        assert request.client_closed.wait(2)
        assert request.client_closed_at - cancelled_at < 1.0
        await asyncio.sleep(0.3)
        assert editor.text(uri) == SOURCE and not editor.edits
        # The server is fine: the next action works.
        upstream.enqueue(Reply.stream(CODE_LINES))
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "done"
        assert "sum(items)" in editor.text(uri)


async def test_progress_cancel_stops_the_action(upstream, workspace):
    upstream.enqueue(slow())
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        task = await _start_slow_action(editor, uri, token="tok-cancel")
        editor.client.window_work_done_progress_cancel(
            types.WorkDoneProgressCancelParams(token="tok-cancel")
        )
        result = await asyncio.wait_for(task, 5)
        assert result["status"] == "cancelled"
        assert result["text"].startswith("word0 ")
        assert upstream.requests[0].client_closed.wait(2)
        assert editor.text(uri) == SOURCE and not editor.edits
        end = editor.progress("tok-cancel")[-1]
        assert isinstance(end, types.WorkDoneProgressEnd) and "Cancelled" in end.message


async def test_cancel_command_stops_one_or_all(upstream, workspace):
    upstream.enqueue(slow(), slow(), slow())
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        first = await _start_slow_action(editor, uri, token="one")
        answer = await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lspilot.cancel", arguments=[{"token": "one"}])
        )
        assert plain(answer) == {"cancelled": ["one"]}
        assert (await asyncio.wait_for(first, 5))["status"] == "cancelled"

        second = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="two"))
        third = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="three"))
        await asyncio.to_thread(upstream.wait_for_requests, 3, 5)
        await asyncio.sleep(0.1)
        await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lspilot.cancel", arguments=[{}]))
        results = await asyncio.wait_for(asyncio.gather(second, third), 5)
        assert [r["status"] for r in results] == ["cancelled", "cancelled"]
        assert all(r.client_closed.wait(2) for r in upstream.requests)
        assert editor.text(uri) == SOURCE


async def test_concurrency_limit_queues_and_says_so(upstream, workspace):
    upstream.enqueue(Reply.stream(["a"] * 5, delay=0.1), Reply.stream(["b"]))
    async with session(upstream, workspace, init_options={"maxConcurrentRequests": 1}) as editor:
        uri = editor.open("calc.py", SOURCE)
        first = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="first"))
        await editor.wait_for_stream()
        second = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="second"))
        results = await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert [r["text"] for r in results] == ["aaaaa", "b"]
        waiting = [p.message for p in editor.progress("second")
                   if isinstance(p, types.WorkDoneProgressReport)]
        assert any("Waiting for a free slot" in m for m in waiting)
        first_request, second_request = upstream.requests
        # The second request went upstream only once the first had finished.
        assert second_request.received_at > first_request.received_at + 0.35
