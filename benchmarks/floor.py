"""lspilot against the floor of its stack, measured in the same run (issue 13).

The floor is ``benchmarks/floor_server.py``: a stock pygls 2 server and one httpx client
doing the same refactor (progress, streaming, coalesced reports and ``lspilot/stream``,
the edit, the answer) and nothing else. Each benchmark runs lspilot and the floor side
by side, one refactor at a time, alternating (lspilot, floor, floor, lspilot, ...), so
whatever else loads the machine loads both alike. The figures are ratios, lspilot /
floor; the target is at most 1.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.client import clean_env
from benchmarks.scenarios import (
    Config,
    Figure,
    Session,
    concurrency,
    fmt,
    ms,
    refactor_answer,
    small_source,
    summary,
)
from benchmarks.upstream import LoadUpstream, Script

REPO = Path(__file__).resolve().parent.parent
FLOOR_COMMAND = [sys.executable, "-m", "benchmarks.floor_server"]
TARGET = 1.2
PACED_CHUNKS = 59
PACED_FIRST = 0.3  # seconds to the first token
PACED_GAP = 0.02  # seconds between chunks


def _floor_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


def floor_session(config: Config, name: str) -> Session:
    return Session(config, name, command=[*config.floor_prefix, *FLOOR_COMMAND],
                   env=_floor_env())


def paced_answer(chunks: int = PACED_CHUNKS) -> list[str]:
    """The refactor's answer (fences included) cut into ``chunks`` token-sized pieces."""
    text = "".join(refactor_answer())
    cuts = [round(i * len(text) / chunks) for i in range(chunks + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


def paced_script() -> Script:
    return Script(paced_answer(), rate=1 / PACED_GAP, pause_before_first=PACED_FIRST)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _mb(kb: int) -> float:
    return kb / 1024


def rss_figure(key: str, label: str, memory: dict[str, dict[str, int]]) -> Figure:
    lsp, floor = memory["lspilot"], memory["floor"]
    r = ratio(lsp["VmRSS"], floor["VmRSS"])
    return Figure(
        key, label,
        f"lspilot {_mb(lsp['VmRSS']):.1f} MB, floor {_mb(floor['VmRSS']):.1f} MB: {r:.2f}x "
        f"(peak {_mb(lsp['VmHWM']):.1f} / {_mb(floor['VmHWM']):.1f} MB)",
        f"≤ {TARGET}x the floor", r <= TARGET,
        {"lspilot_kb": lsp, "floor_kb": floor, "ratio_rss": r,
         "ratio_hwm": ratio(lsp["VmHWM"], floor["VmHWM"])},
    )


class Pair:
    """lspilot and the floor, each with its own upstream, one document open in each."""

    def __init__(self, config: Config, name: str, options: dict[str, Any] | None = None,
                 text: str | None = None) -> None:
        self.sessions = {"lspilot": Session(config, f"{name}-lspilot", options),
                         "floor": floor_session(config, f"{name}-floor")}
        self.text = text if text is not None else small_source()
        self.uris: dict[str, str] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Pair:
        await self._stack.__aenter__()
        for name, session in self.sessions.items():
            await self._stack.enter_async_context(session)
            self.uris[name] = await session.open("shapes.py", self.text)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.__aexit__(*exc)

    def order(self, i: int) -> list[tuple[str, Session]]:
        items = list(self.sessions.items())
        return items if i % 2 == 0 else items[::-1]

    def set_script(self, script: Script) -> None:
        for session in self.sessions.values():
            session.upstream.default = script

    async def refactor(self, name: str, ident: int) -> dict[str, Any]:
        session = self.sessions[name]
        cpu0 = session.server.cpu_seconds()
        run = await session.action(self.uris[name], ident)
        run["cpu"] = session.server.cpu_seconds() - cpu0
        return run

    def memory(self) -> dict[str, dict[str, int]]:
        return {name: s.server.memory() for name, s in self.sessions.items()}

    def upstreams(self) -> dict[str, dict[str, Any]]:
        return {name: {"requests": s.upstream.requests, "connections": s.upstream.connections,
                       "tcp_nodelay": s.upstream.nodelay}
                for name, s in self.sessions.items()}


def _check_text(run: dict[str, Any], expected: str, who: str) -> None:
    if run["result"].get("text") != expected:
        raise RuntimeError(f"{who} answered another text: {run['result'].get('text')!r:.200}")


async def floor_instant(config: Config) -> list[Figure]:
    """Refactor with an instant upstream: request sent → answer received, lspilot and the
    floor alternating, one at a time."""
    warmup, count = config.n(50, 3), config.n(1000, 20)
    expected = "".join(refactor_answer())
    walls: dict[str, list[float]] = {"lspilot": [], "floor": []}
    edits: dict[str, list[float]] = {"lspilot": [], "floor": []}
    cpu: dict[str, float] = {"lspilot": 0.0, "floor": 0.0}
    async with Pair(config, "floor-instant") as pair:
        pair.set_script(Script(refactor_answer(), instant=True))
        for i in range(warmup + count):
            for name, _ in pair.order(i):
                run = await pair.refactor(name, i)
                if i == 0:
                    _check_text(run, expected, name)
                if i >= warmup:
                    walls[name].append(run["answered"] - run["sent"])
                    edits[name].append(run["edit"] - run["sent"])
                    cpu[name] += run["cpu"]
        await asyncio.sleep(0.3)
        memory = pair.memory()
        upstreams = pair.upstreams()
    wall = {name: summary(ms(v)) for name, v in walls.items()}
    r = ratio(wall["lspilot"]["p50"], wall["floor"]["p50"])
    return [
        Figure("floor_instant", "vs floor: refactor, instant upstream (request → answer)",
               f"lspilot p50 {fmt(wall['lspilot']['p50'])}, floor p50 "
               f"{fmt(wall['floor']['p50'])}: {r:.2f}x", f"≤ {TARGET}x the floor",
               r <= TARGET,
               {"refactors_each": count, "warmup_each": warmup, "answer_ms": wall,
                "edit_ms": {name: summary(ms(v)) for name, v in edits.items()},
                "ratio_p50": r,
                "ratio_mean": ratio(wall["lspilot"]["mean"], wall["floor"]["mean"]),
                "server_cpu_ms_per_refactor": {n: c * 1000 / count for n, c in cpu.items()},
                "upstream": upstreams}),
        rss_figure("floor_instant_rss",
                   f"vs floor: RSS after {warmup + count:,} instant refactors", memory),
    ]


class Readers:
    """The bare clients (``floor_server.py --reader``: httpx, and raw asyncio) in a
    process of their own, so that their CPU is not mixed with the upstream's (which runs
    in this process)."""

    def __init__(self, config: Config, script: Script | None = None) -> None:
        self.config = config
        self.upstream = LoadUpstream(default=script or paced_script())
        self.proc: asyncio.subprocess.Process | None = None
        self.kinds = ("httpx", "raw")

    async def __aenter__(self) -> Readers:
        await self.upstream.start()
        env = {**clean_env(Path("/nonexistent")), "PYTHONPATH": str(REPO)}
        self.proc = await asyncio.create_subprocess_exec(
            *FLOOR_COMMAND, "--reader", self.upstream.base_url + "/chat/completions",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            start_new_session=True)
        return self

    async def read(self, kind: str) -> dict[str, float]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(kind.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the stream reader stopped")
        result: dict[str, float] = json.loads(line)
        return result

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self.proc is not None:
                with contextlib.suppress(Exception):
                    self.proc.stdin.close()  # type: ignore[union-attr]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5)
        finally:
            await self.upstream.close()


async def floor_paced(config: Config) -> list[Figure]:
    """Refactor at a model's pace (300 ms to the first token, then 59 chunks 20 ms apart):
    server CPU per refactor (utime + stime from /proc) and wall time; lspilot, the floor,
    a bare httpx client and a raw asyncio reader of the same stream (each server beside
    one of the readers), in turn."""
    warmup, count = config.n(3, 1), config.n(40, 2)
    expected = "".join(paced_answer())
    names = ("lspilot", "floor", "httpx", "raw")
    cpu: dict[str, list[float]] = {n: [] for n in names}
    walls: dict[str, list[float]] = {n: [] for n in names}
    async with Pair(config, "floor-paced") as pair, Readers(config) as reader:
        pair.set_script(paced_script())
        for i in range(warmup + count):
            # Each server's refactor runs beside one bare read (in the readers' process),
            # pairings and order rotating: a server then waits ~1.5 s between refactors,
            # well inside httpx's 5 s keep-alive, so every refactor reuses its connection.
            kinds = reader.kinds if (i // 2) % 2 == 0 else reader.kinds[::-1]
            for (name, _), kind in zip(pair.order(i), kinds, strict=True):
                run, read = await asyncio.gather(pair.refactor(name, i), reader.read(kind))
                if i == 0:
                    _check_text(run, expected, name)
                if read["chars"] != len(expected):
                    raise RuntimeError(f"the {kind} reader did not read the whole answer")
                if i >= warmup:
                    cpu[name].append(run["cpu"])
                    walls[name].append(run["answered"] - run["sent"])
                    cpu[kind].append(read["cpu"])
                    walls[kind].append(read["wall"])
        await asyncio.sleep(0.3)
        memory = pair.memory()
        upstreams = pair.upstreams()
        upstreams["readers"] = {"requests": reader.upstream.requests,
                              "connections": reader.upstream.connections,
                              "tcp_nodelay": reader.upstream.nodelay}
    per = {name: statistics.fmean(v) * 1000 for name, v in cpu.items()}
    r = ratio(per["lspilot"], per["floor"])
    wall = {name: summary(ms(v)) for name, v in walls.items()}
    return [
        Figure("floor_paced",
               f"vs floor: server CPU per paced refactor ({PACED_FIRST * 1000:.0f} ms, then "
               f"{PACED_CHUNKS} chunks {PACED_GAP * 1000:.0f} ms apart)",
               f"lspilot {per['lspilot']:.1f} ms, floor {per['floor']:.1f} ms: {r:.2f}x "
               f"(bare httpx reader {per['httpx']:.1f} ms, raw asyncio {per['raw']:.1f} ms)",
               f"≤ {TARGET}x the floor",
               r <= TARGET,
               {"refactors_each": count, "warmup_each": warmup,
                "cpu_ms_per_refactor": per, "ratio_cpu": r,
                "ratio_cpu_over_httpx": {n: ratio(per[n], per["httpx"])
                                         for n in ("lspilot", "floor")},
                "over_floor_cpu_ms": per["lspilot"] - per["floor"],
                "cpu_ms_samples": {n: ms(v) for n, v in cpu.items()},
                "wall_ms": wall,
                "wall_over_floor_p50_ms": wall["lspilot"]["p50"] - wall["floor"]["p50"],
                "upstream": upstreams}),
        rss_figure("floor_paced_rss",
                   f"vs floor: RSS after {warmup + count} paced refactors", memory),
    ]


INLINE_ANSWER = "total_40 = math.pi * shapes[40] ** 2"
INLINE_LINE = "    result = "
INLINE_TOKEN = "v{:05d}"  # the word at the cursor, made new before each request


def replace_word(session: Session, uri: str, line: int, start: int, word: str) -> None:
    """One didChange that replaces the word at the end of ``line`` (same length)."""
    version = session._version[uri] = session._version[uri] + 1
    session.server.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": {"line": line, "character": start},
                                      "end": {"line": line, "character": start + len(word)}},
                            "text": word}]})


async def floor_inline(config: Config) -> list[Figure]:
    """Inline completion (``textDocument/inlineCompletion``, Invoked) → answer, with an
    instant upstream, against a pygls server that answers a canned item at once: the
    difference is what lspilot adds (its own work and the upstream round trip). For
    scale, a bare httpx client's streamed request to the same upstream (its wall time, in
    the readers' process) is measured in the same rounds.

    Before each request the client rewrites the word at the cursor (``didChange``, the
    same length each time: ``v00001``, ``v00002``, ...), so no answer can come from
    lspilot's suggestion cache and the line does not grow; the floor gets the same change.
    """
    warmup, count = config.n(30, 3), config.n(500, 20)
    start = len(INLINE_LINE)
    text = small_source() + INLINE_LINE + INLINE_TOKEN.format(0) + "\n"
    line = text.count("\n") - 1
    column = start + len(INLINE_TOKEN.format(0))
    walls: dict[str, list[float]] = {"lspilot": [], "floor": [], "httpx": []}
    answered: dict[str, int] = {"lspilot": 0, "floor": 0}
    script = Script([INLINE_ANSWER], instant=True)
    async with Pair(config, "floor-inline", {"completionDebounceMs": 0}, text) as pair, \
            Readers(config, script) as reader:
        pair.set_script(script)
        for i in range(warmup + count):
            read = await reader.read("httpx")  # the bare HTTP round trip, for reference
            if i >= warmup:
                walls["httpx"].append(read["wall"])
            for name, session in pair.order(i):
                uri = pair.uris[name]
                replace_word(session, uri, line, start, INLINE_TOKEN.format(i + 1))
                result, sent, received = await session.server.request(
                    "textDocument/inlineCompletion", {
                        "textDocument": {"uri": uri},
                        "position": {"line": line, "character": column},
                        "context": {"triggerKind": 1}})
                items = result.get("items") if isinstance(result, dict) else result
                if i >= warmup:
                    walls[name].append(received - sent)
                    answered[name] += bool(items)
        upstreams = pair.upstreams()
    wall = {name: summary(ms(v)) for name, v in walls.items()}
    added = wall["lspilot"]["p50"] - wall["floor"]["p50"]
    return [Figure(
        "floor_inline", "vs floor: inline completion, instant upstream (request → answer)",
        f"lspilot p50 {fmt(wall['lspilot']['p50'])}, canned floor p50 "
        f"{fmt(wall['floor']['p50'])}: {added:+.2f} ms (a bare httpx request to the same "
        f"upstream: p50 {fmt(wall['httpx']['p50'])})", "≤ 3 ms over the floor",
        added <= 3,
        {"requests_each": count, "warmup_each": warmup, "answer_ms": wall,
         "added_p50_ms": added, "added_mean_ms": wall["lspilot"]["mean"] - wall["floor"]["mean"],
         "non_empty_answers": answered, "upstream": upstreams},
    )]


async def floor_concurrency(config: Config) -> list[Figure]:
    """The concurrency benchmark (64 actions, 1,000 chunks each at 200/s) against the
    floor server, with the same lag monitor in its loop: what the stack itself does under
    that load."""
    session = Session(config, "concurrency-floor", loop_monitor=True,
                      monitor_args=["--floor"], env=_floor_env())
    figures = await concurrency(config, session, key="floor_concurrency", who="floor: ")
    for figure in figures:
        figure.met = None  # the floor has no target; the figures are for comparison
    return figures


FLOOR_BENCHMARKS: dict[str, Callable[[Config], Awaitable[list[Figure]]]] = {
    "floor_instant": floor_instant,
    "floor_paced": floor_paced,
    "floor_inline": floor_inline,
    "floor_concurrency": floor_concurrency,
}
