"""Usage and cost through the real server: priced and estimated usage, the session's
totals, maxSessionCost, and lspilot.status."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from tests.e2e.harness import API_KEY, range_of, session
from tests.fake_upstream import Reply

SOURCE = "def total(items):\n    s = 0\n    for i in items:\n        s += i\n    return s\n"


async def test_a_known_model_is_priced_and_the_end_says_so(upstream, workspace):
    upstream.enqueue(Reply.stream(["It ", "adds."], usage={
        "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="t1")
        assert result["usage"]["cost"] == pytest.approx((1000 * 0.15 + 200 * 0.90) / 1e6)
        assert "estimated" not in result["usage"]
        end = editor.progress("t1")[-1]
        assert "1,000 tokens in, 200 out, $0.0003," in end.message


async def test_an_unknown_model_has_tokens_but_no_cost_until_priced(upstream, workspace):
    upstream.enqueue(Reply.stream(["ok"]), Reply.stream(["ok"]))
    async with session(upstream, workspace, init_options={"model": "house-model"}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["usage"]["promptTokens"] == 11 and "cost" not in result["usage"]
    async with session(upstream, workspace, init_options={
            "model": "house-model",
            "prices": {"house-model": {"input": 1000, "output": 0}}}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["usage"]["cost"] == pytest.approx(11 * 1000 / 1e6)


async def test_a_cut_stream_still_costs_an_estimate(upstream, workspace):
    upstream.enqueue(Reply.stream(["x" * 400, "y" * 400, "never"], usage=False, cut_after=3))
    async with session(upstream, workspace, init_options={"maxRetries": 0}) as editor:
        uri = editor.open("calc.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert result["status"] == "failed" and result["error"]["type"] == "stream"
        usage = result["usage"]
        assert usage["estimated"] is True
        assert usage["completionTokens"] == 200  # 800 characters arrived
        assert usage["promptTokens"] > len(SOURCE) // 4  # the prompt held the code
        assert usage["cost"] > 0


async def test_a_cancelled_run_counts_what_arrived(upstream, workspace):
    upstream.enqueue(Reply.stream([f"word{i} " for i in range(200)], delay=0.05, usage=False))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        running = asyncio.ensure_future(
            editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE), token="c1"))
        await editor.wait_for_stream()
        assert (await editor.command("lspilot.cancel", {"token": "c1"}))["cancelled"] == ["c1"]
        result = await running
        assert result["status"] == "cancelled"
        assert result["usage"]["estimated"] is True and result["usage"]["completionTokens"] > 0
        status = await editor.command("lspilot.status")
        assert status["session"]["completionTokens"] == result["usage"]["completionTokens"]


async def test_the_session_adds_up_and_status_never_holds_the_key(upstream, workspace):
    upstream.enqueue(Reply.stream(["a"]), Reply.stream(["b", "c"]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        first = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        second = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        status = await editor.command("lspilot.status")
        session_ = status["session"]
        assert session_["requests"] == 2
        assert session_["completionTokens"] == 1 + 2
        assert session_["cost"] == pytest.approx(first["usage"]["cost"] + second["usage"]["cost"])
        assert session_["models"]["gpt-5-4-mini"]["requests"] == 2
        assert status["apiKeySet"] is True and status["model"] == "gpt-5-4-mini"
        assert status["upstream"]["reachable"] is True and status["running"] == []
        assert API_KEY not in str(status)


async def test_status_splits_actions_chat_ghost_text_and_next_edits(upstream, workspace):
    def used(prompt: int, completion: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    upstream.enqueue(Reply.stream(["It adds."], usage=used(1000, 100)),
                     Reply.stream(["Hello."], usage=used(2000, 200)),
                     Reply.stream(["1, 2"], usage=used(300, 3)))
    async with session(upstream, workspace, init_options={"completionDebounceMs": 0}) as editor:
        before = (await editor.command("lspilot.status"))["session"]
        nothing = {"requests": 0, "promptTokens": 0, "completionTokens": 0, "cost": 0.0}
        assert before["groups"] == {"actions": nothing, "chat": nothing,
                                    "ghostText": nothing, "nextEdits": nothing}
        assert before["cost"] == 0.0  # priced, nothing asked yet: not "unknown"
        uri = editor.open("calc.py", SOURCE)
        await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        await editor.command("lspilot.chat", {"message": "hi"})
        call = editor.open("call.py", "total = add()\n")
        assert await editor.complete(call, types.Position(0, len("total = add("))) == ["1, 2"]
        groups = (await editor.command("lspilot.status"))["session"]["groups"]
        assert groups["actions"] == {"requests": 1, "promptTokens": 1000,
                                     "completionTokens": 100,
                                     "cost": pytest.approx((1000 * 0.15 + 100 * 0.9) / 1e6)}
        assert groups["chat"]["requests"] == 1 and groups["chat"]["promptTokens"] == 2000
        assert groups["ghostText"]["requests"] == 1 and groups["ghostText"]["promptTokens"] == 300
        assert groups["nextEdits"] == nothing


async def test_an_unpriced_model_has_no_cost_in_its_groups(upstream, workspace):
    async with session(upstream, workspace, init_options={"model": "house-model"}) as editor:
        status = (await editor.command("lspilot.status"))["session"]
        assert status["cost"] is None
        assert {group["cost"] for group in status["groups"].values()} == {None}


async def test_status_lists_what_runs(upstream, workspace):
    upstream.enqueue(Reply.stream([f"w{i} " for i in range(100)], delay=0.05))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", SOURCE)
        running = asyncio.ensure_future(
            editor.run("lspilot.refactor", uri, range_of(SOURCE, SOURCE), token="r1"))
        await editor.wait_for_stream()
        status = await editor.command("lspilot.status")
        assert status["running"] == [{"token": "r1", "action": "refactor", "uri": uri}]
        await editor.command("lspilot.cancel", {})
        assert (await running)["status"] == "cancelled"


async def test_past_max_session_cost_new_requests_are_refused(upstream, workspace):
    upstream.enqueue(Reply.stream(["ok"], usage={
        "prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000}))
    async with session(upstream, workspace, init_options={"maxSessionCost": 0.1}) as editor:
        uri = editor.open("calc.py", SOURCE)
        first = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert first["status"] == "done" and first["usage"]["cost"] == pytest.approx(0.15)
        refused = await editor.run("lspilot.explain", uri, range_of(SOURCE, SOURCE))
        assert refused["status"] == "failed" and refused["error"]["type"] == "cost_limit"
        assert "has cost $0.1500, past maxSessionCost ($0.1000)" in refused["error"]["message"]
        assert len(upstream.requests) == 1
