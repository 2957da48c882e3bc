"""Typing simulation: an editor types real code at 8 keys/s and asks for ghost text.

The real ``lspilot`` over stdio; the document is the standard library's ``textwrap.py``
with the function ``indent`` (its docstring left out) removed, and the editor types it
back keystroke by keystroke: for each key an incremental ``textDocument/didChange``, a
``$/cancelRequest`` for the previous inline request if it is still open (as VS Code does
when the user types on), and a ``textDocument/inlineCompletion`` (triggerKind 2,
Automatic). It pauses (1.2 s) before the first non-blank character of each line.

The upstream (:class:`TypingUpstream`) finds the cursor by the ``<CURSOR>`` marker in the
chat prompt, so it knows what comes next in the text being typed: after 300 ms it streams
either the actual rest of the line (typing through it is exercised) or a wrong guess,
50/50 by a seeded draw per position. Usage is realistic (prompt chars / 4, text chars / 4),
so ``lspilot.status``'s session cost is what the model would charge.

``typing_tail`` is the same typing against an upstream whose time to first token is
long-tailed (p50 400 ms, p95 2 s, p99 5 s; a seeded draw per request): does one stalled
request hold up the ghost text of the keys after it?

``typing_local`` runs a shorter typing against the bundled local model (``baseUrl:
local``, fill-in-the-middle through llama.cpp): keystroke → ghost text and tokens/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import random
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.scenarios import Config, Figure, Session, fmt
from benchmarks.upstream import _HEAD, DONE, LoopbackUpstream, chunked, event, stream_tail

FIRST_TOKEN_S = 0.300  # the upstream's time to first token
CHUNK_CHARS = 4  # a token's worth of text per content chunk
CHUNKS_PER_S = 100.0  # the model's pace after the first token
KEYS_PER_S = 8.0
PAUSE_S = 1.2
# The local model takes seconds per prompt on 2 cores: longer pauses, every 10 keys.
LOCAL_PAUSE_S = 10.0
LOCAL_PAUSE_EVERY = 10
LOCAL_IDLE_KEYS = 2
LOCAL_IDLE_PAUSE_S = 25.0
SEED = 14
# The long-tailed time to first token: (quantile, seconds), log-linear in between.
TAIL_KNOTS = ((0.0, 0.15), (0.5, 0.4), (0.95, 2.0), (0.99, 5.0), (1.0, 6.0))
TAIL_SEED = 21
PRICE_IN, PRICE_OUT = 0.15, 0.90  # gpt-5-4-mini, $ per 1M tokens (lspilot's built-in)
MODEL = "gpt-5-4-mini"
CURSOR = "<CURSOR>"
WRONG = ("result = None", "pass")


def sample() -> tuple[str, str, str]:
    """(head, target, tail): ``textwrap.py`` is head + target + tail, target ``indent``."""
    source = Path(textwrap.__file__).read_text()
    start = source.index("def indent(")
    end = source.index("\n\n\nif __name__")
    function = source[start:end]
    doc_start = function.index('    """')
    doc_end = function.index('"""\n', doc_start + 7) + 4
    target = function[:doc_start] + function[doc_end:]
    return source[:start], target, source[end:]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def tail_first_token(rng: random.Random) -> float:
    """A time to first token from ``TAIL_KNOTS`` (p50 400 ms, p95 2 s, p99 5 s)."""
    u = rng.random()
    for (q0, t0), (q1, t1) in itertools.pairwise(TAIL_KNOTS):
        if u <= q1:
            return float(t0 * (t1 / t0) ** ((u - q0) / (q1 - q0)))
    return TAIL_KNOTS[-1][1]


def fms(value: float | None) -> str:
    return "n/a" if value is None else fmt(value)


# -- the upstream ---------------------------------------------------------------------------
@dataclass
class Asked:
    received: float
    position: int | None  # characters of the target typed when the prompt was made
    correct: bool
    answer: str
    first_content: float | None = None
    done: float | None = None
    closed_early: bool = False
    closed_at: float | None = None  # when the client's close was seen
    first_token_s: float = FIRST_TOKEN_S  # this answer's time to first token
    prompt_tokens: int = 0  # prompt chars / 4, as the usage the upstream reports


@dataclass
class TypingUpstream(LoopbackUpstream):
    """Chat Completions on 127.0.0.1 that knows the text being typed."""

    head: str
    target: str
    seed: int = SEED
    asked: list[Asked] = field(default_factory=list)
    # Set: each request's time to first token is drawn from TAIL_KNOTS with it.
    tail: random.Random | None = None

    def position(self, before: str) -> int | None:
        """How much of the target the text before the cursor holds (it may be cut)."""
        for k in range(len(self.target), -1, -1):
            if (self.head + self.target[:k]).endswith(before):
                return k
        return None

    def answer(self, k: int | None) -> tuple[str, bool]:
        if k is None:
            return WRONG[0], False
        rest = self.target[k:]
        right = rest.split("\n", 1)[0]
        if not right.strip():  # at a line's end: the next line
            lines = rest.split("\n")
            right = "\n".join(lines[:2]) if len(lines) > 1 else ""
        if right.strip() and random.Random(self.seed * 100_003 + k).random() < 0.5:
            return right, True
        wrong = next(w for w in WRONG if not rest.startswith(w[0]))
        return wrong, False

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        received = time.perf_counter()
        request = json.loads(body)
        messages = request.get("messages") or [{"content": request.get("prompt", "")}]
        user = str(messages[-1].get("content") or "")
        before = user.split(CURSOR, 1)[0] if CURSOR in user else ""
        # The prompt's own lines come first: match on the code's end only.
        k = self.position(before[-1500:]) if before else None
        text, correct = self.answer(k)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        asked = Asked(received, k, correct, text, prompt_tokens=max(1, prompt_chars // 4))
        if self.tail is not None:
            asked.first_token_s = tail_first_token(self.tail)
        self.asked.append(asked)
        return await self._stream(reader, writer, asked, prompt_chars)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      asked: Asked, prompt_chars: int) -> bool:
        """Stream one answer; False when the client closed the connection first."""
        eof = asyncio.get_running_loop().create_task(reader.read(1))  # b"": closed early
        try:
            writer.write(_HEAD + chunked(event("", role="assistant")))
            await writer.drain()
            chunks = [asked.answer[i:i + CHUNK_CHARS]
                      for i in range(0, len(asked.answer), CHUNK_CHARS)]
            start = time.perf_counter() + asked.first_token_s
            for i, piece in enumerate(chunks):
                delay = start + i / CHUNKS_PER_S - time.perf_counter()
                if delay > 0:
                    await asyncio.wait([eof], timeout=delay)
                if eof.done():
                    asked.closed_early, asked.closed_at = True, time.perf_counter()
                    return False
                writer.write(chunked(event(piece)))
                await writer.drain()
                if i == 0:
                    asked.first_content = time.perf_counter()
            writer.write(stream_tail(max(1, prompt_chars // 4), max(1, len(asked.answer) // 4))
                         + DONE)
            await writer.drain()
            asked.done = time.perf_counter()
            await asyncio.sleep(0)
            return not eof.done()
        except ConnectionError:
            asked.closed_early, asked.closed_at = True, time.perf_counter()
            return False
        finally:
            if not eof.done():
                eof.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await eof


# -- the editor -----------------------------------------------------------------------------
@dataclass
class Key:
    index: int  # the key typed is target[index]; afterwards index + 1 characters are typed
    char: str
    sent: float
    ghost_before: str | None  # the ghost text shown when this key was typed
    answer: str | None = None  # non-empty answer while this request was the latest
    answered: float | None = None
    outcome: str = "open"  # shown, empty, cancelled, error, open


@dataclass
class Typed:
    keys: list[Key]
    pauses: list[tuple[float, float]]  # (after the last key before it, the next key)
    end: float


async def type_text(session: Session, uri: str, line: int, target: str, count: int,
                    pause_s: float = PAUSE_S, settle_s: float = 1.5, *,
                    cancel_first: bool = True, pause_every: int | None = None) -> Typed:
    """Type ``target[:count]`` at (line, 0); one inline request per key, the previous one
    cancelled when it is still open (``$/cancelRequest`` before the new request, as VS
    Code's client sends them; ``cancel_first=False``: after it). Pauses before the first
    non-blank character of each line, or every ``pause_every`` keys."""
    server = session.server
    loop = asyncio.get_running_loop()
    keys: list[Key] = []
    pauses: list[tuple[float, float]] = []
    col = 0
    ghost: str | None = None  # what the editor shows now
    open_id: int | None = None
    at = time.perf_counter() + 0.2
    for i, char in enumerate(target[:count]):
        first_text = char not in " \n" and target[target.rfind("\n", 0, i) + 1:i].strip() == ""
        if i > 0 and (first_text if pause_every is None else i % pause_every == 0):
            last = keys[-1].sent if keys else at
            at = max(at, last + pause_s)
            pauses.append((last, at))
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        at += 1 / KEYS_PER_S
        # The shown ghost text after this key: the rest of it, if the key was its start.
        key = Key(i, char, 0.0, ghost)
        ghost = None
        version = session._version[uri] = session._version[uri] + 1
        position = {"line": line, "character": col}
        previous = open_id
        if previous is not None and cancel_first:
            server.notify("$/cancelRequest", {"id": previous})
        server.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": position, "end": position}, "text": char}]})
        key.sent = time.perf_counter()
        if char == "\n":
            line, col = line + 1, 0
        else:
            col += 1
        ident = next(server._ids)
        future: asyncio.Future[tuple[dict[str, Any], float]] = loop.create_future()
        server._pending[ident] = future
        server.send({"jsonrpc": "2.0", "id": ident, "method": "textDocument/inlineCompletion",
                     "params": {"textDocument": {"uri": uri},
                                "position": {"line": line, "character": col},
                                "context": {"triggerKind": 2}}})
        if previous is not None and not cancel_first:
            server.notify("$/cancelRequest", {"id": previous})
        await server.drain()
        open_id = ident
        keys.append(key)

        def answered(done: asyncio.Future[tuple[dict[str, Any], float]], key: Key = key,
                     ident: int = ident) -> None:
            nonlocal ghost, open_id
            if done.cancelled() or done.exception() is not None:
                key.outcome = "error"
                return
            message, now = done.result()
            if open_id == ident:
                open_id = None
            if "error" in message:
                key.outcome = "cancelled" if message["error"].get("code") == -32800 else "error"
                return
            result = message.get("result") or {}
            items = result.get("items") if isinstance(result, dict) else result
            text = items[0].get("insertText") if items else None
            if isinstance(text, dict):
                text = text.get("value")
            latest = keys[-1] is key
            if text and latest:
                key.answer, key.answered, key.outcome = text, now, "shown"
                ghost = text
            else:
                key.outcome = "empty" if latest else "superseded"

        future.add_done_callback(answered)
    await asyncio.sleep(settle_s)
    return Typed(keys, pauses, time.perf_counter())


def analyse(typed: Typed, asked: list[Asked], target: str) -> dict[str, Any]:
    keys = typed.keys
    t0 = keys[0].sent if keys else 0.0
    up_at = {a.position for a in asked}
    shown = [k for k in keys if k.outcome == "shown"]
    latency = [(k.answered - k.sent) * 1000 for k in shown if k.answered is not None]
    own, cache, waited = [], [], []
    for k in shown:
        ms_ = (k.answered - k.sent) * 1000 if k.answered is not None else 0.0
        if k.index + 1 in up_at:
            own.append(ms_)
        elif ms_ < 30:
            cache.append(ms_)
        else:
            waited.append(ms_)
    # typing through: the key typed is the first character of the ghost text shown
    through = [k for k in keys if k.ghost_before and k.ghost_before.startswith(k.char)]
    through_cached = [k for k in through if k.outcome == "shown" and k.index + 1 not in up_at]
    through_asked = [a for a in asked if a.position is not None and a.position > 0
                     and any(k.index == a.position - 1 for k in through)]
    in_pause = [a for a in asked if any(s < a.received < e for s, e in typed.pauses)]
    # The key that ends a suggestion (its last character) leaves nothing to show: not
    # "through" it, a new place.
    inside = {k.index for k in through if len(k.ghost_before or "") > 1}
    through_asked_inside = [a for a in asked if a.position is not None
                            and a.position - 1 in inside]
    correct_shown = [k for k in shown if k.answer is not None
                     and target[k.index + 1:].startswith(k.answer.rstrip())]
    pauses = len(typed.pauses)
    per_pause = []
    for s, e in typed.pauses:
        per_pause.append(sum(1 for a in asked if s < a.received < e))
    outcomes: dict[str, int] = {}
    for k in keys:
        outcomes[k.outcome] = outcomes.get(k.outcome, 0) + 1
    firsts = [a.first_token_s * 1000 for a in asked]
    # From each key to the next ghost text on screen, whichever key it answered: how long
    # the user goes without a suggestion after typing (None: none came before the end).
    waits: list[float] = []
    upcoming: float | None = None
    for k in reversed(keys):
        if k.outcome == "shown" and k.answered is not None:
            upcoming = k.answered
        if upcoming is not None:
            waits.append((upcoming - k.sent) * 1000)
    return {
        "keystrokes": len(keys),
        "upstream_requests": len(asked),
        "closed_early": sum(a.closed_early for a in asked),
        "completed": sum(a.done is not None for a in asked),
        "right_guesses_sent": sum(a.correct for a in asked),
        "unparsed_prompts": sum(a.position is None for a in asked),
        "pauses": pauses,
        "requests_in_pauses": len(in_pause),
        "requests_per_pause": len(in_pause) / pauses if pauses else None,
        "requests_per_pause_max": max(per_pause) if per_pause else None,
        "pauses_with_more_than_one": sum(n > 1 for n in per_pause),
        "requests_while_typing": len(asked) - len(in_pause),
        "first_token_values_ms": [round(f, 1) for f in firsts],
        "suggestions_shown": len(shown),
        "shown_correct": len(correct_shown),
        "latency_ms": {"n": len(latency), "p50": percentile(latency, 0.5),
                       "p90": percentile(latency, 0.9), "p99": percentile(latency, 0.99),
                       "min": min(latency, default=None), "max": max(latency, default=None)},
        "latency_own_request_ms": {"n": len(own), "p50": percentile(own, 0.5),
                                   "p90": percentile(own, 0.9)},
        "next_ghost_ms": {"n": len(waits), "p50": percentile(waits, 0.5),
                          "p90": percentile(waits, 0.9), "p99": percentile(waits, 0.99),
                          "max": max(waits, default=None)},
        "next_ghost_values_ms": [round(w, 1) for w in reversed(waits)],
        "latency_values_ms": [round(v, 1) for v in latency],
        "shown_from_cache": len(cache),
        "shown_after_waiting_on_request_in_flight": len(waited),
        "typed_through_keys": len(through),
        "typed_through_answered_from_cache": len(through_cached),
        "requests_while_typing_through": len(through_asked),
        "requests_while_typing_through_inside": len(through_asked_inside),
        "closed_after_ms": {"p50": percentile([(a.closed_at - a.received) * 1000 for a in asked
                                               if a.closed_at is not None], 0.5),
                            "max": max(((a.closed_at - a.received) * 1000 for a in asked
                                        if a.closed_at is not None), default=None)},
        "prompt_tokens_all_requests": sum(a.prompt_tokens for a in asked),
        "billed_if_prompts_count_usd": (sum(a.prompt_tokens for a in asked) * PRICE_IN
                                        + sum(len(a.answer) // 4 for a in asked
                                              if a.done is not None) * PRICE_OUT) / 1e6,
        "keys": [[k.index, k.char, round((k.sent - t0) * 1000, 1), k.outcome,
                  None if k.answered is None else round((k.answered - k.sent) * 1000, 1),
                  k.answer] for k in keys],
        "asked": [[a.position, round((a.received - t0) * 1000, 1), a.correct,
                   a.closed_early, a.done is not None] for a in asked],
        "pause_windows_ms": [[round((s - t0) * 1000, 1), round((e - t0) * 1000, 1)]
                             for s, e in typed.pauses],
        "outcomes": outcomes,
    }


def _cost(status: dict[str, Any]) -> dict[str, Any]:
    session = status.get("session") or {}
    return {"prompt_tokens": session.get("promptTokens"),
            "completion_tokens": session.get("completionTokens"),
            "cost": session.get("cost"), "estimated": session.get("estimated", False)}


async def one_run(config: Config, name: str, count: int, debounce_ms: int | None,
                  cancel_first: bool = True, tail_seed: int | None = None,
                  settle_s: float = 1.5) -> dict[str, Any]:
    head, target, tail = sample()
    upstream = TypingUpstream(head, target,
                              tail=None if tail_seed is None else random.Random(tail_seed))
    await upstream.start()
    # The Session's own load upstream stays idle: lspilot is pointed at this one.
    options: dict[str, Any] = {"model": MODEL, "baseUrl": upstream.base_url}
    if debounce_ms is not None:
        options["completionDebounceMs"] = debounce_ms
    try:
        async with Session(config, name, options) as session:
            uri = await session.open("textwrap.py", head + "\n" + tail)
            await session.probe(uri)
            typed = await type_text(session, uri, head.count("\n"), target, count,
                                    cancel_first=cancel_first, settle_s=settle_s)
            status, _, _ = await session.server.request("workspace/executeCommand", {
                "command": "lspilot.status", "arguments": []})
    finally:
        await upstream.close()
    result = analyse(typed, upstream.asked, target)
    cost = _cost(status or {})
    if cost["cost"] is not None:
        cost["per_1000_keystrokes"] = cost["cost"] * 1000 / max(1, result["keystrokes"])
    cost["billed_if_prompts_count_per_1000_keystrokes"] = (
        result["billed_if_prompts_count_usd"] * 1000 / max(1, result["keystrokes"]))
    result["cost"] = cost
    result["debounce_ms"] = debounce_ms if debounce_ms is not None else "default"
    result["typing_s"] = typed.keys[-1].sent - typed.keys[0].sent if typed.keys else 0
    return result


def describe(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    cost = r["cost"].get("per_1000_keystrokes")
    inside = r["requests_while_typing_through_inside"]
    return (f"{r['keystrokes']} keys, {r['upstream_requests']} upstream requests "
            f"({r['closed_early']} closed early), {r['pauses']} pauses: "
            f"{r['requests_per_pause'] or 0:.2f}/pause (max {r['requests_per_pause_max']}), "
            f"{r['requests_while_typing']} while typing "
            f"({inside} while typing through a suggestion, "
            f"{r['requests_while_typing_through'] - inside} as its last character was typed); "
            f"{r['suggestions_shown']} shown ({r['shown_correct']} right); "
            f"key → ghost p50 {fms(lat['p50'])}, p90 {fms(lat['p90'])}; "
            f"typed through {r['typed_through_keys']} keys, "
            f"{r['typed_through_answered_from_cache']} from the cache; "
            f"${cost if cost is not None else float('nan'):.4f} per 1,000 keys by lspilot.status "
            f"(${r['cost']['billed_if_prompts_count_per_1000_keystrokes']:.4f} if every "
            f"request opened paid its prompt)")


async def typing(config: Config) -> list[Figure]:
    count = config.n(200, 50)
    default = await one_run(config, "typing", count, None)
    off = await one_run(config, "typing-nodebounce", count, 0)
    met = (default["pauses_with_more_than_one"] == 0
           and default["requests_while_typing_through_inside"] == 0)
    figures = [
        Figure("typing", "typing: 8 keys/s, upstream 300 ms to first token (default debounce)",
               describe(default),
               "≤ 1 upstream request per pause; 0 while typing through", met,
               {"run": default, "first_token_s": FIRST_TOKEN_S, "keys_per_s": KEYS_PER_S,
                "pause_s": PAUSE_S, "price_per_1m": {"in": PRICE_IN, "out": PRICE_OUT}}),
        Figure("typing_nodebounce", "typing: the same with completionDebounceMs 0",
               describe(off), "(for comparison)", None, {"run": off}),
    ]
    if not config.smoke:  # the editor's $/cancelRequest after the new request instead
        after = await one_run(config, "typing-cancel-after", count, None, cancel_first=False)
        figures.append(Figure(
            "typing_cancel_after", "typing: default debounce, $/cancelRequest sent after "
            "the next key's request", describe(after), "(for comparison)", None,
            {"run": after}))
    return figures


# -- the local model ---------------------------------------------------------------------------
_TPS = re.compile(r"eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) (?:runs|tokens)")


def local_speed(llama_log: Path) -> dict[str, Any]:
    """Tokens/s from llama.cpp's own timings (its log, rewritten at each start; the first
    request, the warm-up, included)."""
    out: dict[str, Any] = {"llama_log": str(llama_log)}
    if not llama_log.exists():
        return out
    evals = []
    prompts = []
    for line in llama_log.read_text(errors="replace").splitlines():
        found = _TPS.search(line)
        if found is None:
            continue
        (prompts if "prompt eval" in line else evals).append(
            (float(found.group(1)), int(found.group(2))))
    if evals:
        ms_, n = sum(e[0] for e in evals), sum(e[1] for e in evals)
        out.update(generated_tokens=n, eval_ms=ms_, tokens_per_s=n * 1000 / ms_ if ms_ else None,
                   completions=len(evals))
    if prompts:
        ms_, n = sum(p[0] for p in prompts), sum(p[1] for p in prompts)
        out.update(prompt_tokens=n, prompt_ms=ms_, prompts=len(prompts),
                   prompt_ms_each=[p[0] for p in prompts],
                   prompt_tokens_each=[p[1] for p in prompts],
                   prompt_tokens_per_s=n * 1000 / ms_ if ms_ else None)
    return out


async def typing_local(config: Config) -> list[Figure]:
    if importlib.util.find_spec("llama_cpp") is None:
        return [Figure("typing_local", "typing, local model", "skipped: llama_cpp is not "
                       "importable (pip install 'lspilot[local]')", "(informational)", None, {})]
    count = config.n(40, 12)
    head, target, tail = sample()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    options = {"baseUrl": "local", "temperature": 0.2}
    session = Session(config, "typing-local", options, env={"XDG_CACHE_HOME": str(cache)})
    async with session:
        uri = await session.open("textwrap.py", head + "\n" + tail)
        await session.probe(uri)
        line = head.count("\n")
        started = time.perf_counter()
        # Warm-up: the first request starts llama.cpp (and assembles the model once).
        warm, _, _ = await session.server.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": 0},
            "context": {"triggerKind": 1}}, timeout=300)
        warm_s = time.perf_counter() - started
        # One key at a time on an idle model (another copy of the file, closed after): what
        # a pause long enough for the model gives.
        idle_uri = await session.open("textwrap_idle.py", head + "\n" + tail)
        idle = await type_text(session, idle_uri, line, target, LOCAL_IDLE_KEYS,
                               pause_s=LOCAL_IDLE_PAUSE_S, settle_s=LOCAL_IDLE_PAUSE_S,
                               pause_every=1)
        session.server.notify("textDocument/didClose", {"textDocument": {"uri": idle_uri}})
        typed = await type_text(session, uri, line, target, count, pause_s=LOCAL_PAUSE_S,
                                settle_s=LOCAL_PAUSE_S, pause_every=LOCAL_PAUSE_EVERY)
        status, _, _ = await session.server.request("workspace/executeCommand", {
            "command": "lspilot.status", "arguments": []})
    result = analyse(typed, [], target)
    idle_result = analyse(idle, [], target)
    result["idle"] = {k: idle_result[k] for k in ("keystrokes", "suggestions_shown",
                                                  "latency_ms", "outcomes", "keys")}
    speed = local_speed(cache / "lspilot" / "local" / "llama-server.log")
    result.update(speed=speed, warm_up_s=warm_s, status_session=(status or {}).get("session"),
                  warm_answer=warm)
    lat = result["latency_ms"]
    log_text = (cache / "lspilot" / "local" / "llama-server.log").read_text(errors="replace")
    result["llama_posts"] = log_text.count('"POST /v1/completions')
    tps = speed.get("tokens_per_s")
    return [Figure(
        "typing_local", "typing, local model (Qwen2.5-Coder 0.5B, FIM), 8 keys/s",
        f"{result['keystrokes']} keys, {result['pauses']} pauses of {LOCAL_PAUSE_S:.0f} s, "
        f"{result['suggestions_shown']} shown; {result['llama_posts']} requests reached "
        f"llama.cpp; idle model, one key then {LOCAL_IDLE_PAUSE_S:.0f} s: "
        f"{result['idle']['suggestions_shown']}/{result['idle']['keystrokes']} shown, "
        f"key → ghost {', '.join(fms(x[4]) for x in result['idle']['keys'])}; "
        f"typing: key → ghost p50 "
        f"{fms(lat['p50'])}, p90 {fms(lat['p90'])}; "
        f"{'n/a' if tps is None else f'{tps:.1f}'} tokens/s generated "
        f"(prompt {speed.get('prompt_tokens_per_s') or 0:.0f} tokens/s, "
        f"{speed.get('prompts', 0)} prompts evaluated); first request "
        f"(start) {warm_s:.1f} s", "(informational)", None, result)]


def _quantiles(values: list[float]) -> dict[str, float | None]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p90": percentile(values, 0.9),
            "p99": percentile(values, 0.99), "max": max(values, default=None)}


def describe_tail(r: dict[str, Any]) -> str:
    lat, wait, drawn = r["latency_ms"], r["next_ghost_ms"], r["first_token_ms"]
    return (f"{r['keystrokes']} keys in {r['runs']} runs, {r['upstream_requests']} upstream "
            f"requests ({r['closed_early']} closed early; their first token p50 "
            f"{fms(drawn['p50'])}, p99 {fms(drawn['p99'])}, max {fms(drawn['max'])}), "
            f"{r['suggestions_shown']} shown; key → its ghost text p50 {fms(lat['p50'])}, "
            f"p90 {fms(lat['p90'])}, p99 {fms(lat['p99'])}; key → next ghost text (any key's) "
            f"p50 {fms(wait['p50'])}, p90 {fms(wait['p90'])}, p99 {fms(wait['p99'])}")


async def typing_tail(config: Config) -> list[Figure]:
    """The typing benchmark's typing, ``runs`` times (one seed each: the tail needs many
    requests to show), against the long-tailed upstream."""
    runs = []
    for i in range(config.n(4, 1)):
        runs.append(await one_run(config, f"typing-tail-{i}", config.n(200, 30), None,
                                  tail_seed=TAIL_SEED + i,
                                  settle_s=config.n(TAIL_KNOTS[-1][1] + 1, 1.5)))
    firsts = [f for r in runs for f in r["first_token_values_ms"]]
    total: dict[str, Any] = {
        "runs": len(runs),
        **{k: sum(r[k] for r in runs) for k in ("keystrokes", "upstream_requests",
                                                   "closed_early", "suggestions_shown",
                                                   "shown_correct")},
        "latency_ms": _quantiles([v for r in runs for v in r["latency_values_ms"]]),
        "next_ghost_ms": _quantiles([v for r in runs for v in r["next_ghost_values_ms"]]),
        "first_token_ms": _quantiles(firsts),
    }
    limit = 5000 + 100  # the upstream's own p99 plus the default completionDebounceMs
    p99 = total["next_ghost_ms"]["p99"]
    return [Figure(
        "typing_tail", "typing: 8 keys/s, upstream first token long-tailed (p50 400 ms, "
        "p95 2 s, p99 5 s)", describe_tail(total),
        f"key → next ghost text p99 ≤ {limit / 1000:g} s (the upstream's p99 + the debounce)",
        p99 is not None and p99 <= limit,
        {**total, "runs_data": runs, "knots": TAIL_KNOTS, "seed": TAIL_SEED})]


TYPING_BENCHMARKS = {"typing": typing, "typing_tail": typing_tail}
LOCAL_BENCHMARKS = {"typing_local": typing_local}
