"""Next edit suggestions: scripted edit sessions on real code (issue 26).

Each session opens a standard-library module (its real source, copied into the workspace
as ``NN_module.py``), types one edit keystroke by keystroke at 8 keys/s — a rename, an
added parameter, or a fix — and, as Copilot-style clients do, sends
``textDocument/copilotInlineEdit`` after every keystroke (the previous one cancelled with
``$/cancelRequest`` while it is open). When a suggestion is shown the user reads it
(``READ_S``) and accepts it (its edits as one ``didChange``, the cursor after the last
edit); the editor asks again at once, up to ``MAX_SUGGESTIONS`` suggestions, until the
answer is empty.

The upstream (:class:`NesUpstream`) parses the editable region out of the prompt (between
``<|editable_region_start|>`` and ``<|editable_region_end|>``, the cursor marker removed),
knows the session from the prompt's ``File:`` line, and after 300 ms answers the region
with the session's next edit applied everywhere in it (a regular expression per session:
the other uses of a renamed name, the calls given the new argument, the twin of the fix),
or the region unchanged when nothing is left. The editor checks every suggestion on its
own copy of the text: applying the answer's LSP edits must give exactly the document with
the region rewritten so.

``nes`` runs the sessions against lspilot and against the floor server
(``floor_server.py``: bare pygls + httpx doing the same request), session by session,
alternating which goes first, and reports lspilot's own overhead per upstream request:
inbound (the request, or the 250 ms debounce after the last change if that ends later →
the upstream received the request) plus outbound (the upstream wrote ``[DONE]`` → the
editor received the answer). Both include the pipes, JSON-RPC and loopback HTTP, which
the floor has too; the ratio and the difference are what lspilot adds.

``nes_local`` types the same sessions against the bundled local model (one suggestion per
session, no accept chain) and grades what it suggests.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.floor import FLOOR_COMMAND, _floor_env
from benchmarks.scenarios import Config, Figure, Session, fmt
from benchmarks.typing_sim import local_speed, percentile
from benchmarks.upstream import _HEAD, DONE, LoopbackUpstream, chunked, event, stream_tail
from lspilot.next_edits.prompt import (
    CURSOR,
    EDITABLE_AFTER,
    EDITABLE_BEFORE,
    REGION_END,
    REGION_START,
)

METHOD = "textDocument/copilotInlineEdit"
DEBOUNCE_S = 0.25  # lspilot's (features/next_edits.py DEBOUNCE) and the floor's
FIRST_TOKEN_S = 0.300  # the scripted upstream's think time
CHUNK_CHARS = 4  # a token's worth of text per content chunk (all written at once)
KEYS_PER_S = 8.0
READ_S = 0.3  # the user looks at a suggestion before Tab
MAX_SUGGESTIONS = 3  # accepted suggestions per session, at most
ANSWER_TIMEOUT_S = 10.0
LOCAL_ANSWER_TIMEOUT_S = 180.0


# -- the sessions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    kind: str  # rename, parameter, fix
    module: str
    function: str  # "Class.method" or "function"
    old: str  # typed: the first ``old`` in the function (after its docstring) becomes ``new``
    new: str
    pattern: str  # the next edit: re.sub(pattern, repl) over the editable region
    repl: str

    def expected(self, region: str) -> str:
        return re.sub(self.pattern, self.repl, region)


def _rename(module: str, function: str, old: str, new: str) -> Spec:
    return Spec("rename", module, function, old, new, rf"\b{old}\b", new)


SPECS: tuple[Spec, ...] = (
    _rename("textwrap", "TextWrapper._split", "chunks", "parts"),
    Spec("parameter", "gettext", "NullTranslations.gettext", "message):",
         "message, context=None):", r"(\._fallback\.gettext\(message)\)", r"\1, context)"),
    Spec("fix", "fractions", "Fraction.__copy__", "type(self) == Fraction",
         "type(self) is Fraction", r"type\(self\) == Fraction", "type(self) is Fraction"),
    _rename("ftplib", "FTP.retrlines", "line", "text"),
    _rename("ftplib", "FTP.storlines", "buf", "block"),
    _rename("difflib", "SequenceMatcher.get_grouped_opcodes", "codes", "ops"),
    _rename("statistics", "quantiles", "result", "cuts"),
    _rename("shlex", "split", "lex", "lexer"),
    _rename("ftplib", "FTP.getmultiline", "line", "reply"),
    _rename("difflib", "Differ.compare", "tag", "op"),
    _rename("fractions", "Fraction.from_decimal", "dec", "value"),
    _rename("statistics", "_sum", "partials", "parts"),
    Spec("parameter", "gettext", "NullTranslations.ngettext", "n):", "n, context=None):",
         r"(\._fallback\.ngettext\(msgid1, msgid2, n)\)", r"\1, context)"),
    Spec("parameter", "calendar", "LocaleTextCalendar.formatweekday", "width):",
         "width, upper=False):", r"(super\(\)\.formatweekday\(day, width)\)", r"\1, upper)"),
    Spec("parameter", "calendar", "LocaleTextCalendar.formatmonthname", "withyear=True):",
         "withyear=True, short=False):",
         r"(super\(\)\.formatmonthname\(theyear, themonth, width, withyear)\)", r"\1, short)"),
    Spec("parameter", "csv", "DictWriter.writerow", "rowdict):", "rowdict, strict=False):",
         r"(self\._dict_to_list\(rowdict)\)", r"\1, strict)"),
    Spec("fix", "calendar", "LocaleTextCalendar.__init__", "self.locale", "self._locale",
         r"\bself\.locale\b", "self._locale"),
    Spec("fix", "tarfile", "TarInfo.frombuf", "nts(buf[0:100], encoding, errors)",
         'nts(buf[0:100], encoding or "utf-8", errors)', r"(nts\(buf\[\d+:\d+\], encoding),",
         r'\1 or "utf-8",'),
    Spec("fix", "tarfile", "TarInfo._create_header", 'info.get("uid", 0)',
         'info.get("uid") or 0', r'info\.get\(("\w+"), 0\)(?! &)', r"info.get(\1) or 0"),
    Spec("fix", "ipaddress", "_BaseNetwork.subnets", "raise ValueError(",
         "raise NetmaskValueError(", r"\braise ValueError\(", "raise NetmaskValueError("),
)


@dataclass
class Plan:
    """A session made concrete: the file, where the typed edit is, and its keys."""

    spec: Spec
    name: str  # the workspace file name, unique per session (the upstream's key)
    source: str
    line: int  # the typed edit's line
    column: int  # the cursor before the first key (a str index; the editor sends UTF-16)
    keys: list[str]  # "\b" is a backspace


def plan(index: int, spec: Spec) -> Plan:
    module = importlib.import_module(spec.module)
    source = inspect.getsource(module)
    node = _function(ast.parse(source), spec.function)
    start = node.lineno - 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = range(body[0].lineno - 1, body[0].end_lineno or body[0].lineno)
    else:
        docstring = range(0)
    lines = source.split("\n")
    old = re.escape(spec.old)
    typed = re.compile((r"\b" if spec.old[0].isalnum() else "") + old
                       + (r"\b" if spec.old[-1].isalnum() else ""))
    for number in range(start, (node.end_lineno or start) + 1):
        found = typed.search(lines[number])
        if number not in docstring and found is not None:
            break
    else:
        raise ValueError(f"{spec.old!r} is not in {spec.module}.{spec.function}")
    prefix = _shared(spec.old, spec.new)
    suffix = _shared(spec.old[prefix:][::-1], spec.new[prefix:][::-1])
    deleted = len(spec.old) - prefix - suffix
    keys = ["\b"] * deleted + list(spec.new[prefix:len(spec.new) - suffix])
    column = found.start() + len(spec.old) - suffix
    return Plan(spec, f"{index + 1:02d}_{spec.module}.py", source, number, column, keys)


def _shared(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` start with alike."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _function(tree: ast.Module, dotted: str) -> ast.FunctionDef:
    *owner, name = dotted.split(".")
    scope: list[ast.stmt] = tree.body
    for part in owner:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == part).body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


def region_bounds(line_count: int, cursor_line: int) -> tuple[int, int]:
    """lspilot's editable region (next_edits/prompt.py ``region_around``): ``[first, last)``."""
    return max(0, cursor_line - EDITABLE_BEFORE), min(line_count,
                                                      cursor_line + EDITABLE_AFTER + 1)


def expected_after(spec: Spec, text: str, cursor_line: int) -> str:
    """The document with the next edit made in the editable region around the cursor."""
    lines = text.split("\n")
    first, last = region_bounds(len(lines), cursor_line)
    region = spec.expected("\n".join(lines[first:last]))
    return "\n".join([*lines[:first], *region.split("\n"), *lines[last:]])


# -- the upstream ----------------------------------------------------------------------------
@dataclass
class Asked:
    file: str
    received: float
    changed: bool  # the answer rewrites the region (False: the region unchanged)
    parsed: bool  # the region was found in the prompt
    done: float | None = None  # [DONE] written
    closed_early: bool = False


_FILE = re.compile(r"^File: (\S+)", re.M)


@dataclass
class NesUpstream(LoopbackUpstream):
    """Chat Completions on 127.0.0.1 that answers each session's next edit."""

    specs: dict[str, Spec] = field(default_factory=dict)  # file name → its session
    asked: list[Asked] = field(default_factory=list)

    def answer(self, user: str) -> tuple[str, Asked]:
        now = time.perf_counter()
        name = _FILE.search(user)
        spec = self.specs.get(name.group(1)) if name else None
        start, end = user.find(REGION_START + "\n"), user.find("\n" + REGION_END)
        if spec is None or start < 0 or end < start:
            return "```\n```", Asked(name.group(1) if name else "", now, False, False)
        region = user[start + len(REGION_START) + 1:end].replace(CURSOR, "")
        rewritten = spec.expected(region)
        return (f"```python\n{rewritten}\n```\n",
                Asked(name.group(1) if name else "", now, rewritten != region, True))

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        messages = json.loads(body).get("messages") or [{"content": ""}]
        text, asked = self.answer(str(messages[-1].get("content") or ""))
        self.asked.append(asked)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        return await self._stream(reader, writer, text, asked, prompt_chars)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      text: str, asked: Asked, prompt_chars: int) -> bool:
        """The role chunk at once, then after FIRST_TOKEN_S the whole answer in one write;
        False when the client closed the connection first."""
        eof = asyncio.get_running_loop().create_task(reader.read(1))  # b"": closed early
        try:
            writer.write(_HEAD + chunked(event("", role="assistant")))
            await writer.drain()
            await asyncio.wait([eof], timeout=FIRST_TOKEN_S)
            if eof.done():
                asked.closed_early = True
                return False
            writer.write(b"".join(chunked(event(text[i:i + CHUNK_CHARS]))
                                  for i in range(0, len(text), CHUNK_CHARS))
                         + stream_tail(max(1, prompt_chars // 4), max(1, len(text) // 4))
                         + DONE)
            asked.done = time.perf_counter()
            await writer.drain()
            await asyncio.sleep(0)
            return not eof.done()
        except ConnectionError:
            asked.closed_early = True
            return False
        finally:
            if not eof.done():
                eof.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await eof


# -- the editor ------------------------------------------------------------------------------
@dataclass
class Request:
    kind: str  # key (sent with a keystroke) or accept (sent with an accepted suggestion)
    sent: float
    last_change: float  # when the didChange before it was sent
    text: str  # the document when it was sent
    line: int
    answered: float | None = None
    edits: list[dict[str, Any]] | None = None
    version_ok: bool = True
    error: str | None = None


@dataclass
class Run:
    name: str
    kind: str
    requests: list[Request] = field(default_factory=list)
    shown: int = 0
    matched: int = 0
    accepted: int = 0
    latency_ms: list[float] = field(default_factory=list)  # last key → first suggestion
    accept_latency_ms: list[float] = field(default_factory=list)  # accept → next suggestion
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    first: dict[str, Any] | None = None  # the first suggestion, graded (nes_local)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _index(lines: list[str], line: int, character: int) -> int:
    """A str index from an LSP position (UTF-16 code units)."""
    offset = sum(len(text) + 1 for text in lines[:line])
    units = 0
    for i, char in enumerate(lines[line] if line < len(lines) else ""):
        if units >= character:
            return offset + i
        units += _units(char)
    return offset + (len(lines[line]) if line < len(lines) else 0)


def apply(text: str, edits: list[dict[str, Any]]) -> tuple[str, tuple[int, int]]:
    """The text with the edits made (ranges refer to ``text``), and the position after the
    last edit's new text."""
    lines = text.split("\n")
    spans = sorted(((_index(lines, e["range"]["start"]["line"], e["range"]["start"]["character"]),
                     _index(lines, e["range"]["end"]["line"], e["range"]["end"]["character"]),
                     str(e.get("newText", e.get("text", "")))) for e in edits), reverse=True)
    end_at = 0
    if spans:  # the last edit's end, moved by the ones before it
        begin, _, new = spans[0]
        end_at = begin + len(new) + sum(len(n) - (e - b) for b, e, n in spans[1:])
    for begin, end, new in spans:
        text = text[:begin] + new + text[end:]
    before = text[:end_at]
    return text, (before.count("\n"), _units(before[before.rfind("\n") + 1:]))


def _pos(text: str, index: int) -> dict[str, int]:
    before = text[:index]
    return {"line": before.count("\n"), "character": _units(before[before.rfind("\n") + 1:])}


class Editor:
    """One document in one server, typed into and asked for next edits."""

    def __init__(self, session: Session, uri: str, text: str) -> None:
        self.session, self.uri, self.text = session, uri, text
        self.open: int | None = None  # the id of the request still open
        self.last_change = time.perf_counter()

    def change(self, changes: list[tuple[int, int, str]]) -> None:
        """One didChange with ``(begin, end, new)`` str spans of the current text, applied
        in order (each refers to the text the previous ones left)."""
        content = []
        for begin, end, new in changes:
            content.append({"range": {"start": _pos(self.text, begin),
                                      "end": _pos(self.text, end)}, "text": new})
            self.text = self.text[:begin] + new + self.text[end:]
        uri = self.uri
        version = self.session._version[uri] = self.session._version[uri] + 1
        self.session.server.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version}, "contentChanges": content})
        self.last_change = time.perf_counter()

    async def ask(self, kind: str, line: int, character: int) -> tuple[Request, asyncio.Future[
            tuple[dict[str, Any], float]]]:
        server = self.session.server
        if self.open is not None:
            server.notify("$/cancelRequest", {"id": self.open})
        ident = next(server._ids)
        future: asyncio.Future[tuple[dict[str, Any], float]] = \
            asyncio.get_running_loop().create_future()
        server._pending[ident] = future
        request = Request(kind, 0.0, self.last_change, self.text, line)
        server.send({"jsonrpc": "2.0", "id": ident, "method": METHOD, "params": {
            "textDocument": {"uri": self.uri, "version": self.session._version[self.uri]},
            "position": {"line": line, "character": character}}})
        request.sent = time.perf_counter()
        await server.drain()
        self.open = ident

        def answered(done: asyncio.Future[tuple[dict[str, Any], float]]) -> None:
            if self.open == ident:
                self.open = None
            if done.cancelled() or done.exception() is not None:
                request.error = "no answer"
                return
            message, now = done.result()
            request.answered = now
            if "error" in message:  # -32800: cancelled (the editor sent $/cancelRequest)
                request.error = ("cancelled" if message["error"].get("code") == -32800
                                 else str(message["error"].get("message")))
                return
            result = message.get("result") or {}
            request.edits = list(result.get("edits") or [])
            version = self.session._version[self.uri]
            request.version_ok = all(e.get("textDocument", {}).get("version") == version
                                     for e in request.edits)

        future.add_done_callback(answered)
        return request, future


async def run_session(session: Session, item: Plan, *, chain: bool = True,
                      timeout: float = ANSWER_TIMEOUT_S) -> Run:
    spec = item.spec
    uri = await session.open(item.name, item.source)
    editor = Editor(session, uri, item.source)
    run = Run(item.name, spec.kind)
    line, column = item.line, item.column
    lines = item.source.split("\n")
    index = sum(len(t) + 1 for t in lines[:line]) + column
    at = time.perf_counter() + 0.2
    future: asyncio.Future[tuple[dict[str, Any], float]] | None = None
    for key in item.keys:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        at += 1 / KEYS_PER_S
        if key == "\b":
            editor.change([(index - 1, index, "")])
            index -= 1
        else:
            editor.change([(index, index, key)])
            index += 1
        position = _pos(editor.text, index)
        request, future = await editor.ask("key", position["line"], position["character"])
        run.requests.append(request)
    assert future is not None
    suggestions = 0
    while True:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(asyncio.shield(future), timeout)
        request = run.requests[-1]
        if not request.edits or request.answered is None:
            break
        run.shown += 1
        latency = (request.answered - request.sent) * 1000
        (run.latency_ms if request.kind == "key" else run.accept_latency_ms).append(latency)
        after, end = apply(request.text, request.edits)
        wanted = expected_after(spec, request.text, request.line)
        matched = after == wanted and request.version_ok
        run.matched += matched
        if run.first is None:
            run.first = grade(request.text, after, wanted)
        if not matched:
            run.mismatches.append({"line": request.line, "edits": request.edits,
                                   "version_ok": request.version_ok})
        suggestions += 1
        if not matched or not chain or suggestions >= MAX_SUGGESTIONS:
            break
        await asyncio.sleep(READ_S)  # the user reads it, then Tab
        lines = editor.text.split("\n")
        editor.change(sorted(((_index(lines, e["range"]["start"]["line"],
                                      e["range"]["start"]["character"]),
                               _index(lines, e["range"]["end"]["line"],
                                      e["range"]["end"]["character"]),
                               str(e.get("newText", ""))) for e in request.edits),
                             reverse=True))
        run.accepted += 1
        request, future = await editor.ask("accept", end[0], end[1])
        run.requests.append(request)
    session.server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    await session.server.drain()
    return run


def grade(before: str, after: str, wanted: str) -> dict[str, Any]:
    """exact: the expected next edit; partial: only expected lines changed, each as expected
    (some left for later); wrong: anything else (a line changed that should not be, or
    changed otherwise)."""
    if after == wanted:
        return {"grade": "exact"}
    a, w, b = after.split("\n"), wanted.split("\n"), before.split("\n")
    if len(a) == len(w) == len(b):
        changed = [i for i in range(len(a)) if a[i] != b[i]]
        if changed and all(a[i] == w[i] for i in changed):
            return {"grade": "partial", "lines": len(changed)}
    diff = [(i, b[i] if i < len(b) else None, a[i] if i < len(a) else None)
            for i in range(max(len(a), len(b))) if (a[i] if i < len(a) else None)
            != (b[i] if i < len(b) else None)][:6]
    return {"grade": "wrong", "changed": diff}


# -- figures ---------------------------------------------------------------------------------
def overhead(runs: list[Run], asked: list[Asked]) -> dict[str, list[float]]:
    """Per completed upstream request: inbound and outbound ms (see the module doc)."""
    inbound, outbound, total = [], [], []
    requests = sorted((r for run in runs for r in run.requests), key=lambda r: r.sent)
    for ask in asked:
        if ask.done is None or ask.closed_early:
            continue
        before = [r for r in requests if r.sent <= ask.received]
        if not before or before[-1].answered is None or before[-1].answered < ask.done:
            continue
        request = before[-1]
        a = (ask.received - max(request.sent, request.last_change + DEBOUNCE_S)) * 1000
        b = (request.answered - ask.done) * 1000
        inbound.append(a)
        outbound.append(b)
        total.append(a + b)
    return {"inbound": inbound, "outbound": outbound, "total": total}


def _q(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p90": percentile(values, 0.9),
            "max": max(values, default=None)}


def summarise(runs: list[Run], asked: list[Asked]) -> dict[str, Any]:
    sessions = len(runs)
    latency = [v for r in runs for v in r.latency_ms]
    accept = [v for r in runs for v in r.accept_latency_ms]
    spent = overhead(runs, asked)
    return {
        "sessions": sessions,
        "editor_requests": sum(len(r.requests) for r in runs),
        "editor_requests_per_session": sum(len(r.requests) for r in runs) / max(1, sessions),
        "upstream_requests": len(asked),
        "upstream_requests_per_session": len(asked) / max(1, sessions),
        "upstream_closed_early": sum(a.closed_early for a in asked),
        "upstream_unparsed": sum(not a.parsed for a in asked),
        "upstream_answered_a_change": sum(a.changed for a in asked),
        "suggestions_shown": sum(r.shown for r in runs),
        "matched": sum(r.matched for r in runs),
        "accepted": sum(r.accepted for r in runs),
        "sessions_with_a_suggestion": sum(r.shown > 0 for r in runs),
        "key_to_suggestion_ms": _q(latency),
        "accept_to_next_ms": _q(accept),
        "overhead_ms": {k: _q(v) for k, v in spent.items()},
        "runs": [{"name": r.name, "kind": r.kind, "requests": len(r.requests),
                  "shown": r.shown, "matched": r.matched, "latency_ms": r.latency_ms,
                  "accept_latency_ms": r.accept_latency_ms, "mismatches": r.mismatches,
                  "cancelled": sum(q.error == "cancelled" for q in r.requests),
                  "errors": [q.error for q in r.requests if q.error not in (None, "cancelled")]}
                 for r in runs],
        "errors": sum(q.error not in (None, "cancelled") for r in runs for q in r.requests),
    }


def fms(value: float | None) -> str:
    return "n/a" if value is None else fmt(value)


async def nes(config: Config) -> list[Figure]:
    specs = SPECS[:3] if config.smoke else SPECS  # smoke: one of each kind
    plans = [plan(i, s) for i, s in enumerate(specs)]
    # Not measured: the first request of a process makes its HTTP client and lazy imports.
    warm = plan(-1, SPECS[0])
    warm.name = "00_warm_up.py"
    named = {p.name: p.spec for p in [warm, *plans]}
    upstreams = {"lspilot": NesUpstream(dict(named)), "floor": NesUpstream(dict(named))}
    for upstream in upstreams.values():
        await upstream.start()
    runs: dict[str, list[Run]] = {"lspilot": [], "floor": []}
    asked: dict[str, list[Asked]] = {"lspilot": [], "floor": []}
    # Server CPU (utime + stime) over the sessions: what the load on the machine does not
    # stretch, unlike the times above.
    cpu = {"lspilot": 0.0, "floor": 0.0}
    try:
        sessions = {
            "lspilot": Session(config, "nes", {"baseUrl": upstreams["lspilot"].base_url}),
            "floor": Session(config, "nes-floor", {"baseUrl": upstreams["floor"].base_url},
                             command=[*config.floor_prefix, *FLOOR_COMMAND], env=_floor_env()),
        }
        async with sessions["lspilot"], sessions["floor"]:
            if not config.smoke:
                for who in ("lspilot", "floor"):
                    await run_session(sessions[who], warm)
                    upstreams[who].asked.clear()
            for i, item in enumerate(plans):
                order = ["lspilot", "floor"] if i % 2 == 0 else ["floor", "lspilot"]
                for who in order:
                    start = len(upstreams[who].asked)
                    before = sessions[who].server.cpu_seconds()
                    runs[who].append(await run_session(sessions[who], item))
                    cpu[who] += sessions[who].server.cpu_seconds() - before
                    asked[who].extend(upstreams[who].asked[start:])
            status, _, _ = await sessions["lspilot"].server.request(
                "workspace/executeCommand", {"command": "lspilot.status", "arguments": []})
    finally:
        for upstream in upstreams.values():
            await upstream.close()
    ours, floor = summarise(runs["lspilot"], asked["lspilot"]), summarise(
        runs["floor"], asked["floor"])
    ours["status_next_edit"] = ((status or {}).get("session") or {}).get(
        "actions", {}).get("nextEdit")
    over, base = ours["overhead_ms"]["total"], floor["overhead_ms"]["total"]
    ratio = (over["p50"] / base["p50"]) if over["p50"] and base["p50"] else None
    lat, acc = ours["key_to_suggestion_ms"], ours["accept_to_next_ms"]
    cpu_ms = {who: cpu[who] * 1000 / max(1, len(runs[who])) for who in cpu}
    sessions_n = ours["sessions"]
    figures = [
        Figure("nes_sessions", f"next edits: {sessions_n} edit sessions on stdlib code "
               "(8 keys/s, upstream 300 ms)",
               f"{ours['editor_requests_per_session']:.1f} editor requests and "
               f"{ours['upstream_requests_per_session']:.1f} upstream requests per session "
               f"({ours['upstream_closed_early']} closed early); "
               f"{ours['suggestions_shown']} suggestions shown, {ours['matched']} match the "
               f"expected next edit ({ours['accepted']} accepted; "
               f"{ours['sessions_with_a_suggestion']}/{sessions_n} sessions got one); "
               f"last key → suggestion p50 {fms(lat['p50'])}, p90 {fms(lat['p90'])}; "
               f"accept → next suggestion p50 {fms(acc['p50'])}, p90 {fms(acc['p90'])}",
               "every suggestion shown matches", ours["matched"] == ours["suggestions_shown"]
               and ours["suggestions_shown"] > 0,
               {"lspilot": ours, "floor": floor, "debounce_s": DEBOUNCE_S,
                "first_token_s": FIRST_TOKEN_S, "keys_per_s": KEYS_PER_S, "read_s": READ_S}),
        Figure("nes_overhead", "next edits: lspilot's own time per upstream request "
               "(in: request/debounce → upstream; out: [DONE] → answer), vs floor",
               f"p50 {fms(over['p50'])} (in {fms(ours['overhead_ms']['inbound']['p50'])}, "
               f"out {fms(ours['overhead_ms']['outbound']['p50'])}), p90 {fms(over['p90'])}, "
               f"n={over['n']}; floor p50 {fms(base['p50'])} (in "
               f"{fms(floor['overhead_ms']['inbound']['p50'])}, out "
               f"{fms(floor['overhead_ms']['outbound']['p50'])}), p90 {fms(base['p90'])}: "
               f"{'n/a' if ratio is None else f'{ratio:.2f}x'}, "
               f"+{fms((over['p50'] or 0) - (base['p50'] or 0))}; server CPU per session "
               f"{cpu_ms['lspilot']:.0f} ms, floor {cpu_ms['floor']:.0f} ms "
               f"({cpu_ms['lspilot'] / cpu_ms['floor'] if cpu_ms['floor'] else 0:.2f}x)",
               "≤ 3 ms p50", over["p50"] is not None and over["p50"] <= 3.0,
               {"lspilot": ours["overhead_ms"], "floor": floor["overhead_ms"],
                "ratio_p50": ratio, "cpu_ms_per_session": cpu_ms}),
    ]
    return figures


# -- the local model ---------------------------------------------------------------------------
async def nes_local(config: Config) -> list[Figure]:
    if importlib.util.find_spec("llama_cpp") is None:
        return [Figure("nes_local", "next edits, local model", "skipped: llama_cpp is not "
                       "importable (pip install 'lspilot[local]')", "(informational)", None, {})]
    count = int(os.environ.get("LSPILOT_BENCH_NES_LOCAL", "0")) or config.n(10, 2)
    # Spread over the kinds: every other session first.
    chosen = [*SPECS[::2], *SPECS[1::2]][:count]
    plans = [plan(i, s) for i, s in enumerate(chosen)]
    # A cache of its own (llama.cpp's log is rewritten at each start: another lspilot on
    # the machine must not share it), the assembled models linked in from the user's.
    cache = Path(tempfile.mkdtemp(prefix="lspilot-bench-nes-local-"))
    models = cache / "lspilot" / "models"
    models.mkdir(parents=True)
    for found in (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                  / "lspilot" / "models").glob("*"):
        (models / found.name).symlink_to(found)
    options = {"baseUrl": "local", "temperature": 0.0}
    runs: list[Run] = []
    async with Session(config, "nes-local", options,
                       env={"XDG_CACHE_HOME": str(cache)}) as session:
        started = time.perf_counter()
        # Warm-up: starts llama.cpp (the first request assembles and loads the model).
        warm_uri = await session.open("warm.py", "x = 1\n")
        warm = Editor(session, warm_uri, "x = 1\n")
        warm.change([(0, 1, "y")])
        _, future = await warm.ask("key", 0, 1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, 300)
        warm_s = time.perf_counter() - started
        for item in plans:
            runs.append(await run_session(session, item, chain=False,
                                          timeout=LOCAL_ANSWER_TIMEOUT_S))
        status, _, _ = await session.server.request("workspace/executeCommand", {
            "command": "lspilot.status", "arguments": []})
    grades: dict[str, int] = {"exact": 0, "partial": 0, "wrong": 0, "none": 0}
    for run in runs:
        grades[(run.first or {"grade": "none"})["grade"]] += 1
    # The last key's request; one still open at the time-out was answered empty when the
    # document closed: that is no answer, not a latency.
    latency = [(q.answered - q.sent) * 1000 for run in runs for q in run.requests[-1:]
               if q.answered is not None and q.answered - q.sent < LOCAL_ANSWER_TIMEOUT_S]
    timed_out = len(runs) - len(latency)
    speed = local_speed(cache / "lspilot" / "local" / "llama-server.log")
    shutil.rmtree(cache, ignore_errors=True)
    worthy = grades["exact"] + grades["partial"]
    result = {"sessions": len(runs), "grades": grades, "warm_up_s": warm_s,
              "timed_out": timed_out, "timeout_s": LOCAL_ANSWER_TIMEOUT_S,
              "last_key_to_answer_ms": _q(latency), "speed": speed,
              "status_next_edit": ((status or {}).get("session") or {}).get(
                  "actions", {}).get("nextEdit"),
              "runs": [{"name": r.name, "kind": r.kind, "first": r.first,
                        "latency_ms": r.latency_ms,
                        "errors": [q.error for q in r.requests if q.error]} for r in runs]}
    lat = result["last_key_to_answer_ms"]
    return [Figure(
        "nes_local", "next edits, local model (Qwen2.5-Coder 0.5B Instruct, chat)",
        f"{len(runs)} sessions: accept-worthy {worthy}/{len(runs)} ({grades['exact']} exact, "
        f"{grades['partial']} partial), {grades['wrong']} wrong, {grades['none']} nothing "
        f"suggested ({timed_out} of them no answer in {LOCAL_ANSWER_TIMEOUT_S:.0f} s); "
        f"last key → answer p50 {fms(lat['p50'])}, p90 {fms(lat['p90'])}, "
        f"max {fms(lat['max'])}; "
        f"{speed.get('tokens_per_s') or 0:.1f} tokens/s generated, prompt "
        f"{speed.get('prompt_tokens_per_s') or 0:.0f} tokens/s; first request (start) "
        f"{warm_s:.1f} s", "(informational)", None, result)]


NES_BENCHMARKS = {"nes": nes}
LOCAL_NES_BENCHMARKS = {"nes_local": nes_local}
