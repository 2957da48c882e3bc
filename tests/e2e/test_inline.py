"""Inline completions through the real server: asking less, answering without asking,
clean suggestions of the right shape, both prompt styles, the completion-item fallback,
and quiet failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

from lsprotocol import types

from lspilot.scripted_editor import capabilities, plain
from tests.e2e.harness import position_of, session
from tests.fake_upstream import Reply

CALL = "total = add()\n"  # the cursor goes between the parentheses
AFTER_PAREN = types.Position(0, len("total = add("))
FUNCTION = "def add(a, b):\n\n\nprint(add(1, 2))\n"
QUICK = {"completionDebounceMs": 0}
STALL = 5.0  # seconds an upstream takes to its first token in the stall tests


def completion_chunks(*texts: str) -> Reply:
    """A legacy /completions stream (fill-in-the-middle servers answer so)."""
    events = [f"data: {json.dumps({'choices': [{'index': 0, 'text': t}]})}\n\n" for t in texts]
    finish = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
    events.append(f"data: {json.dumps(finish)}\n\n")
    events.append("data: [DONE]\n\n")
    return Reply.sse(events)


async def test_the_capability_is_advertised_and_a_chat_answer_is_cleaned(upstream, workspace):
    upstream.enqueue(Reply.stream(["```python\n", "total = add(1, 2)", "\n```"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        assert editor.server_capabilities.inline_completion_provider is not None
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        (request,) = upstream.requests
        assert request.path.endswith("/chat/completions")
        body = request.json
        user = body["messages"][-1]["content"]
        assert "total = add(<CURSOR>)" in user and "calc.py" in user
        assert body["stop"] == ["\n```"] and body["max_tokens"] <= 48


async def test_a_request_typed_over_during_the_debounce_is_never_sent(upstream, workspace):
    upstream.enqueue(Reply.stream([", 2)"]))
    async with session(upstream, workspace,
                       init_options={"completionDebounceMs": 400}) as editor:
        uri = editor.open("calc.py", CALL)
        first = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN))
        await asyncio.sleep(0.05)  # the first request is waiting out its debounce
        end = editor.type_at(uri, AFTER_PAREN, "1")
        second = await editor.complete(uri, end)
        assert await first == []  # superseded: answered empty
        assert second == [", 2"]
        assert len(upstream.requests) == 1
        assert "add(1<CURSOR>)" in upstream.requests[0].json["messages"][-1]["content"]


async def test_a_newer_request_closes_the_one_in_flight(upstream, workspace):
    upstream.enqueue(Reply.stream([f"w{i} " for i in range(100)], delay=0.05),
                     Reply.stream(["x = 1"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL + "\n")
        first = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        second = await editor.complete(uri, types.Position(2, 0))
        assert await first == []
        assert second == ["x = 1"]
        assert upstream.requests[0].client_closed.wait(2)


async def test_cancel_request_closes_the_upstream_request(upstream, workspace):
    upstream.enqueue(Reply.stream([f"w{i} " for i in range(100)], delay=0.05))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        pending = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN, msg_id="inline-1"))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.client.cancel_request(types.CancelParams(id="inline-1"))
        assert upstream.requests[0].client_closed.wait(2)
        try:
            assert await pending == []
        except Exception as exc:  # or the cancel error: never a stale item
            assert "cancel" in str(exc).lower()


async def test_asking_again_and_typing_through_are_answered_from_the_cache(upstream, workspace):
    upstream.enqueue(Reply.stream(["1, 2)"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        end = editor.type_at(uri, AFTER_PAREN, "1,")
        assert await editor.complete(uri, end) == [" 2"]
        # backspace back to where it was: the first suggestion again
        editor.change(uri, types.Range(AFTER_PAREN, end), "")
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        assert len(upstream.requests) == 1


async def test_typing_what_the_model_is_writing_waits_for_it(upstream, workspace):
    upstream.enqueue(Reply.stream(["return", " a", " + b"], delay=0.3))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", FUNCTION)
        cursor = types.Position(1, 4)
        editor.type_at(uri, types.Position(1, 0), "    ")
        first = asyncio.ensure_future(editor.complete(uri, cursor))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        await asyncio.sleep(0.45)  # "return" has arrived; the rest has not
        end = editor.type_at(uri, cursor, "ret")
        assert await editor.complete(uri, end) == ["urn a + b"]
        assert await first == []  # superseded: never the item for the version before "ret"
        assert len(upstream.requests) == 1


async def test_a_block_ends_where_the_indentation_falls_back(upstream, workspace):
    upstream.enqueue(Reply.stream(["\n    total = a + b\n    return total\nprint(3)\n"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", FUNCTION)
        (suggestion,) = await editor.complete(uri, types.Position(0, len("def add(a, b):")))
        assert suggestion == "\n    total = a + b\n    return total"
        assert "Write the block" in upstream.requests[0].json["messages"][-1]["content"]


async def test_mid_line_before_code_nothing_is_asked(upstream, workspace):
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", "total = add(a, b)\n")
        assert await editor.complete(uri, types.Position(0, len("total = "))) == []
        status = await editor.command("lspilot.status")
        assert status["session"]["requests"] == 0 and upstream.requests == []


async def test_a_suggestion_that_repeats_the_next_line_is_dropped(upstream, workspace):
    upstream.enqueue(Reply.stream(["print(add(1, 2))"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", "x = 1\n\nprint(add(1, 2))\n")
        assert await editor.complete(uri, types.Position(1, 0)) == []
        assert len(upstream.requests) == 1


async def test_fill_in_the_middle_style_posts_prompt_and_suffix(upstream, workspace):
    upstream.enqueue(completion_chunks("1, ", "2"))
    async with session(upstream, workspace,
                       init_options={**QUICK, "completionStyle": "fim"}) as editor:
        uri = editor.open("calc.py", CALL)
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        (request,) = upstream.requests
        assert request.path.endswith("/completions") and "/chat/" not in request.path
        assert request.json["prompt"].endswith("total = add(")
        assert request.json["suffix"].startswith(")\n") and request.json["stop"] == ["\n"]


async def test_completion_items_offer_the_same_suggestion(upstream, workspace):
    upstream.enqueue(Reply.stream(["1, 2"]))
    async with session(upstream, workspace,
                       init_options={**QUICK, "completionItems": True}) as editor:
        uri = editor.open("calc.py", CALL)
        result = await editor.client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=AFTER_PAREN))
        (item,) = result.items
        assert item.text_edit.new_text == "1, 2"
        assert item.text_edit.range == types.Range(AFTER_PAREN, AFTER_PAREN)


async def test_completion_items_are_off_by_default(upstream, workspace):
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        result = await editor.client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=AFTER_PAREN))
        assert list(result.items) == [] and upstream.requests == []


async def test_turned_off_nothing_is_asked(upstream, workspace):
    async with session(upstream, workspace,
                       init_options={**QUICK, "inlineCompletions": False}) as editor:
        uri = editor.open("calc.py", CALL)
        assert await editor.complete(uri, AFTER_PAREN) == []
        assert upstream.requests == []


async def test_a_refused_key_is_quiet_and_said_once(upstream, workspace):
    upstream.enqueue(Reply.error(401, "bad key"), Reply.error(401, "bad key"))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL + "\n")
        assert await editor.complete(uri, AFTER_PAREN) == []
        assert await editor.complete(uri, types.Position(2, 0)) == []
        assert len(upstream.requests) == 2
        shown = [m.message for m in editor.client.messages if "Completions" in m.message]
        assert len(shown) == 1 and "refused the API key" in shown[0]
        status = await editor.command("lspilot.status")
        assert status["upstream"]["reachable"] is False
        assert status["upstream"]["error"]["type"] == "authentication"


async def test_completions_count_in_the_session(upstream, workspace):
    upstream.enqueue(Reply.stream(["1, 2"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        status = await editor.command("lspilot.status")
        assert status["session"]["requests"] == 1
        assert status["session"]["promptTokens"] == 11  # as the fake upstream reports
        assert status["session"]["cost"] > 0


async def test_other_open_files_lend_their_code(upstream, workspace):
    upstream.enqueue(Reply.stream(["compute_invoice_total(order)"]))
    helper = "def compute_invoice_total(order):\n    return sum(line.price for line in order)\n"
    async with session(upstream, workspace, init_options=QUICK) as editor:
        editor.open("billing.py", helper)
        source = "def invoice(order):\n    total = \n"
        uri = editor.open("calc.py", source)
        cursor = position_of(source, source.index("total = ") + len("total = "))
        assert await editor.complete(uri, cursor) == ["compute_invoice_total(order)"]
        user = upstream.requests[0].json["messages"][-1]["content"]
        assert "billing.py" in user and "def compute_invoice_total" in user


async def test_a_request_cancelled_as_the_next_key_comes_lets_the_next_one_join(
        upstream, workspace):
    # VS Code cancels the previous request just before it asks again for the next key.
    upstream.enqueue(Reply.stream(["return", " a", " + b"], delay=0.3))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", FUNCTION)
        cursor = types.Position(1, 4)
        editor.type_at(uri, types.Position(1, 0), "    ")
        first = asyncio.ensure_future(editor.complete(uri, cursor, msg_id="key-1"))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.client.cancel_request(types.CancelParams(id="key-1"))
        end = editor.type_at(uri, cursor, "r")
        assert await editor.complete(uri, end) == ["eturn a + b"]
        assert len(upstream.requests) == 1 and not upstream.requests[0].client_closed.is_set()
        with contextlib.suppress(Exception):
            await first


async def test_a_request_closed_before_its_first_token_still_counts_its_prompt(
        upstream, workspace):
    upstream.enqueue(Reply.stream(["late"], delay=2.0, usage=False))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        pending = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN, msg_id="gone"))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.client.cancel_request(types.CancelParams(id="gone"))
        assert await asyncio.to_thread(upstream.requests[0].client_closed.wait, 3)
        with contextlib.suppress(Exception):
            await pending
        status = await editor.command("lspilot.status")
        assert status["session"]["requests"] == 1
        assert status["session"]["promptTokens"] > 100  # the prompt, estimated
        assert status["session"]["completionTokens"] == 0


async def test_a_stalled_request_is_closed_and_asked_afresh_after_a_cancel(upstream, workspace):
    # The model has sent nothing for the first key; the user types on, and the editor
    # cancels that request and asks again (as VS Code does). The new request may join the
    # stalled stream only while it is expected to answer soon, not for the whole stall.
    upstream.enqueue(Reply.stream(["return a + b"], stall=STALL), Reply.stream(["eturn a + b"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", FUNCTION)
        cursor = types.Position(1, 4)
        editor.type_at(uri, types.Position(1, 0), "    ")
        first = asyncio.ensure_future(editor.complete(uri, cursor, msg_id="key-1"))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.client.cancel_request(types.CancelParams(id="key-1"))
        end = editor.type_at(uri, cursor, "r")
        second = asyncio.ensure_future(editor.complete(uri, end))
        # The fresh request reaches the upstream before the stall would have ended ...
        stalled, fresh = await asyncio.to_thread(upstream.wait_for_requests, 2, STALL - 1)
        assert fresh.received_at < stalled.received_at + STALL
        assert "    r<CURSOR>" in fresh.json["messages"][-1]["content"]
        # ... and the stalled one is closed, not left to run on.
        assert await asyncio.to_thread(stalled.client_closed.wait, 2)
        assert await second == ["eturn a + b"]
        with contextlib.suppress(Exception):
            await first


async def test_a_superseded_request_answers_empty_at_once_not_the_stale_item(
        upstream, workspace):
    # The same typing without the editor's cancel: the first request is superseded by the
    # second, so it answers empty at once, never its item for the version before "r".
    upstream.enqueue(Reply.stream(["return a + b"], stall=STALL), Reply.stream(["eturn a + b"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", FUNCTION)
        cursor = types.Position(1, 4)
        editor.type_at(uri, types.Position(1, 0), "    ")
        first = asyncio.ensure_future(editor.complete(uri, cursor))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        end = editor.type_at(uri, cursor, "r")
        second = asyncio.ensure_future(editor.complete(uri, end))
        assert await first == []
        stalled, _ = await asyncio.to_thread(upstream.wait_for_requests, 2, STALL - 1)
        assert await asyncio.to_thread(stalled.client_closed.wait, 2)
        assert await second == ["eturn a + b"]


async def test_an_answer_for_a_version_since_changed_is_not_given(upstream, workspace):
    # No newer request came, but the document changed while the model was answering: the
    # item would be for text that is no longer there.
    gate = threading.Event()
    upstream.enqueue(Reply.stream(["1, 2"], gate=gate))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        first = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        editor.type_at(uri, AFTER_PAREN, "1")
        await editor.command("lspilot.status")  # answered after the change was read
        gate.set()
        assert await first == []
        # The answer is still kept for the place it was made: backspacing shows it.
        editor.change(uri, types.Range(AFTER_PAREN, types.Position(0, AFTER_PAREN.character + 1)),
                      "")
        assert await editor.complete(uri, AFTER_PAREN) == ["1, 2"]
        assert len(upstream.requests) == 1


async def test_typing_mid_line_what_the_model_is_writing_waits_for_it(upstream, workspace):
    # Within a line the stream's text so far is compared as a line, not as a block whose
    # body would start on the next line.
    upstream.enqueue(Reply.stream(["1", ", 2"], delay=0.3))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        uri = editor.open("calc.py", CALL)
        first = asyncio.ensure_future(editor.complete(uri, AFTER_PAREN))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        await asyncio.sleep(0.45)  # "1" has arrived; the rest has not
        end = editor.type_at(uri, AFTER_PAREN, "1")
        assert await editor.complete(uri, end) == [", 2"]
        assert await first == []
        assert len(upstream.requests) == 1


LINES = "lspilot/inlineCompletionLines"
BLOCK_AT = types.Position(0, len("def add(a, b):"))


def _lines_capabilities() -> types.ClientCapabilities:
    caps = capabilities()
    caps.experimental = {"lspilotInlineCompletionLines": True}
    return caps


def _recording(editor: Any) -> tuple[list[dict[str, Any]], asyncio.Event]:
    seen: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    @editor.client.feature(LINES)
    def lines(params: Any) -> None:
        seen.append(plain(params))
        arrived.set()

    return seen, arrived


async def test_a_blocks_complete_lines_arrive_while_it_streams(upstream, workspace):
    # The model writes the first line and part of the second, then stalls for good.
    upstream.enqueue(Reply.stream(["\n    total = a + b\n", "    ret"], hang_after=3),
                     Reply.stream(["x = 1"]))
    async with session(upstream, workspace, init_options=QUICK,
                       caps=_lines_capabilities()) as editor:
        seen, arrived = _recording(editor)
        uri = editor.open("calc.py", FUNCTION)
        request = asyncio.ensure_future(editor.complete(uri, BLOCK_AT))
        await asyncio.wait_for(arrived.wait(), 10)
        # Before any answer: the complete line, cleaned, not the one in progress.
        assert not request.done()
        assert seen == [{"textDocument": {"uri": uri, "version": 1},  # as opened
                         "position": {"line": 0, "character": BLOCK_AT.character},
                         "text": "\n    total = a + b"}]
        # A newer request supersedes it: answered empty, its stalled stream closed.
        assert await editor.complete(uri, types.Position(4, 0)) == ["x = 1"]
        assert await request == []
        assert upstream.requests[0].client_closed.wait(5)
        assert len(seen) == 1


async def test_without_asking_no_lines_are_sent(upstream, workspace):
    upstream.enqueue(Reply.stream(["\n    total = a + b\n", "    return total\n", "print(3)\n"]))
    async with session(upstream, workspace, init_options=QUICK) as editor:
        seen, _ = _recording(editor)
        uri = editor.open("calc.py", FUNCTION)
        assert await editor.complete(uri, BLOCK_AT) == ["\n    total = a + b\n    return total"]
        # Anything sent for the request came before its answer, on the same pipe.
        assert seen == []
