"""The benchmarks: each drives fresh lspilot processes and returns its figures.

Every benchmark is ``async def name(config) -> list[Figure]``. Times are in
milliseconds; all stamps come from ``time.perf_counter`` in this one process (the load
upstream and the load client share its event loop, so their clocks are the same clock).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.client import ServerProcess, clean_env, server_command
from benchmarks.upstream import LoadUpstream, Script, event

IMPORT_FLOOR = "import pygls.lsp.server, lsprotocol.types, httpx, cattrs"


# -- configuration and results ----------------------------------------------------------
@dataclass
class Config:
    smoke: bool
    results_dir: Path
    server_prefix: list[str] = field(default_factory=list)  # e.g. a profiler
    floor_prefix: list[str] = field(default_factory=list)  # the same for the floor server

    def n(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full


@dataclass
class Figure:
    key: str
    label: str
    measured: str  # for the table
    target: str
    met: bool | None  # None: informational
    data: dict[str, Any]


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median, p99 (nearest rank), mean, min, max of a sample."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    rank = max(0, math.ceil(0.99 * len(ordered)) - 1)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[rank],
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "max": ordered[-1],
    }


def ms(seconds: Sequence[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def fmt(value: float, unit: str = "ms") -> str:
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 100 else (
            f"{value:.0f} ms")
    return f"{value:,.0f} {unit}"


# -- documents and answers ----------------------------------------------------------------
def small_source(lines: int = 40) -> str:
    out = ["import math\n", "\n", "\n", "def area(shapes):\n"]
    for i in range(lines - 4):
        out.append(f"    total_{i} = math.pi * shapes[{i}] ** 2  # line {i}\n")
    return "".join(out)


def big_source(size: int = 5 * 1024 * 1024) -> str:
    line = "    value_{:06d} = compute({:06d}, 'abcdefghij', flag=True)  # filler\n"
    count = size // len(line.format(0, 0)) + 1
    return "".join(line.format(i, i) for i in range(count))[:size].rpartition("\n")[0] + "\n"


SELECTION = {"start": {"line": 10, "character": 0}, "end": {"line": 20, "character": 0}}


def refactor_answer(lines: int = 10) -> list[str]:
    """A refactor's answer, one content chunk per line (fences included)."""
    return ["```python\n", *(f"    total_{i} = math.tau * shapes[{i}] ** 2 / 2\n"
                             for i in range(lines)), "```\n"]


def token_stream(count: int) -> list[str]:
    """``count`` token-sized deltas (about 4 characters), a line break every 16."""
    words = [" tok" if i % 16 != 15 else "en\n" for i in range(16)]
    return [words[i % 16] for i in range(count)]


# -- one server with its upstream -----------------------------------------------------------
class Session:
    """A load upstream, a fresh lspilot process, initialised; torn down on exit."""

    def __init__(self, config: Config, name: str, options: dict[str, Any] | None = None,
                 *, loop_monitor: bool = False, command: list[str] | None = None,
                 env: dict[str, str] | None = None, monitor_args: list[str] | None = None):
        """``command`` replaces lspilot (prefix included), e.g. the floor server;
        ``monitor_args`` are loopmon.py's (``["--floor"]``: the floor under the monitor)."""
        self.config = config
        self.name = name
        self.options = options or {}
        self.upstream = LoadUpstream()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"lspilot-bench-{name}-"))
        self.root = self.tmp / "workspace"
        self.root.mkdir()
        env = {**clean_env(self.tmp / "cache"), **(env or {})}
        floor = monitor_args is not None and "--floor" in monitor_args
        prefix = config.floor_prefix if floor else config.server_prefix if command is None else []
        command = command or server_command()
        self.lag_file: Path | None = None
        if loop_monitor:  # the same server, with a lag monitor on its loop (loopmon.py)
            command = [sys.executable, str(Path(__file__).with_name("loopmon.py")),
                       *(monitor_args or [])]
            self.lag_file = self.tmp / "lags.json"
            env["LSPILOT_BENCH_LAG_FILE"] = str(self.lag_file)
        self.lags: list[tuple[float, float]] = []
        self.collections: list[tuple[float, int, float]] = []  # loopmon's (when, gen, s)
        self.server = ServerProcess(
            [*prefix, *command], env, config.results_dir / f"server-{name}.log"
        )
        self.edits: dict[str, asyncio.Future[float]] = {}
        self.first_words: dict[str, asyncio.Future[float]] = {}
        self._ids = 0
        self._version: dict[str, int] = {}

    async def __aenter__(self) -> Session:
        await self.upstream.start()
        await self.server.spawn()
        self.server.on_edit = self._edited
        self.server.on_stream = self._streamed
        await self.server.initialize(self.root, {
            "baseUrl": self.upstream.base_url,
            "apiKey": "sk-bench-0123456789",
            "model": "bench-model",
            "maxRetries": 0,
            "maxConcurrentRequests": 64,
            "maxResponseChars": 50_000_000,
            **self.options,
        })
        await self.probe()  # initialized has been handled when this answers
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.server.stop()
            if self.lag_file is not None and self.lag_file.exists():
                monitored = json.loads(self.lag_file.read_text())
                self.lags = [tuple(x) for x in monitored["lags"]]
                self.collections = [tuple(x) for x in monitored.get("gc", [])]
        finally:
            await self.upstream.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _edited(self, uri: str, params: dict[str, Any], now: float) -> None:
        future = self.edits.get(uri)
        if future is not None and not future.done():
            future.set_result(now)

    def _streamed(self, params: dict[str, Any], now: float) -> None:
        future = self.first_words.get(params.get("uri", ""))
        if future is not None and not future.done() and params.get("delta"):
            future.set_result(now)

    # -- documents --------------------------------------------------------------------
    async def open(self, name: str, text: str) -> str:
        uri = (self.root / name).as_uri()
        self._version[uri] = 1
        self.server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}})
        await self.server.drain()
        return uri

    def change(self, uri: str, line: int, character: int, text: str) -> None:
        self._version[uri] += 1
        position = {"line": line, "character": character}
        self.server.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": self._version[uri]},
            "contentChanges": [{"range": {"start": position, "end": position}, "text": text}],
        })

    async def probe(self, uri: str | None = None) -> float:
        """Round trip of the cheapest request: codeAction on an empty range (answers [])."""
        uri = uri or (self.root / "probe.py").as_uri()
        empty = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
        _, sent, received = await self.server.request("textDocument/codeAction", {
            "textDocument": {"uri": uri}, "range": empty,
            "context": {"diagnostics": []}})
        return received - sent

    # -- actions ------------------------------------------------------------------------
    def script(self, script: Script) -> int:
        self._ids += 1
        self.upstream.scripts[self._ids] = script
        return self._ids

    async def action(
        self, uri: str, ident: int, command: str = "lspilot.refactor",
        range_: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run one action; returns its result with the stamps around it."""
        loop = asyncio.get_running_loop()
        edit = self.edits[uri] = loop.create_future()
        words = self.first_words[uri] = loop.create_future()
        result, sent, answered = await self.server.request("workspace/executeCommand", {
            "command": command,
            "arguments": [{"uri": uri, "range": range_ or SELECTION,
                           "instruction": f"bench-id:{ident}"}],
        }, timeout=600)
        if result.get("status") != "done":
            raise RuntimeError(f"the action ended {result.get('status')}: {result.get('error')}")
        return {
            "result": result, "sent": sent, "answered": answered,
            "edit": edit.result() if edit.done() else None,
            "first_words": words.result() if words.done() else None,
            "upstream": self.upstream.stamps.get(ident),
        }


# -- the benchmarks -----------------------------------------------------------------------
async def startup(config: Config) -> list[Figure]:
    """Spawn → initialize answered, against spawn → imports done of the import floor."""
    runs = config.n(15, 2)
    floor: list[float] = []
    server: list[float] = []
    bare: list[float] = []
    results = config.results_dir
    for i in range(runs + 1):  # the first round warms the page cache and is dropped
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await proc.wait()
        python_only = time.perf_counter() - start
        # The floor: spawn → the imports are done (a line on stdout), not → exit, since
        # the server's figure does not include tearing an interpreter down either.
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", IMPORT_FLOOR + "; print('ok', flush=True)",
            stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        imports = time.perf_counter() - start
        if line.strip() != b"ok" or await proc.wait() != 0:
            raise RuntimeError("the import floor failed")
        tmp = Path(tempfile.mkdtemp(prefix="lspilot-bench-startup-"))
        process = ServerProcess([*config.server_prefix, *server_command()],
                                clean_env(tmp), results / "server-startup.log")
        try:
            await process.spawn()
            _, answered = await process.initialize(tmp, {"apiKey": "sk-bench"})
            spawned = process.spawned_at
        finally:
            await process.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        if i:
            bare.append(python_only)
            floor.append(imports)
            server.append(answered - spawned)
    s, f = summary(ms(server)), summary(ms(floor))
    over = s["p50"] - f["p50"]
    return [Figure(
        "startup", "startup: spawn → initialize answered",
        f"{fmt(s['p50'])} (floor {fmt(f['p50'])}, {over:+.0f} ms)",
        "within 100 ms of the import floor", over <= 100,
        {"server_ms": s, "import_floor_ms": f, "python_bare_ms": summary(ms(bare)),
         "over_floor_ms": over, "ratio_to_floor": s["p50"] / f["p50"]},
    )]


async def whole_action(config: Config) -> list[Figure]:
    """executeCommand → applyEdit with an instant upstream (10-line refactor), repeated.

    The same process gives memory: idle RSS, and the RSS growth over the measured
    actions (after a warm-up, so lazy imports and caches are not counted as growth).
    """
    warmup, count = config.n(50, 5), config.n(1000, 30)
    async with Session(config, "whole-action") as session:
        session.upstream.default = Script(refactor_answer(), instant=True)
        uri = await session.open("shapes.py", small_source())
        probes = [await session.probe(uri) for _ in range(config.n(300, 20))]
        await asyncio.sleep(0.3)
        idle = session.server.memory()
        for i in range(warmup):
            await session.action(uri, 1_000_000 + i)
        before = session.server.memory()
        cpu0 = session.server.cpu_seconds()
        latency, whole = [], []
        for i in range(count):
            run = await session.action(uri, i)
            latency.append(run["edit"] - run["sent"])
            whole.append(run["answered"] - run["sent"])
        cpu = session.server.cpu_seconds() - cpu0
        await asyncio.sleep(0.3)
        after = session.server.memory()
    lat, probe = summary(ms(latency)), summary(ms(probes))
    growth_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    idle_mb = idle["VmRSS"] / 1024
    return [
        Figure("whole_action", "whole action, instant upstream (executeCommand → applyEdit)",
               f"p50 {fmt(lat['p50'])}, p99 {fmt(lat['p99'])}", "p50 < 5 ms",
               lat["p50"] < 5,
               {"edit_ms": lat, "result_ms": summary(ms(whole)),
                "lsp_round_trip_floor_ms": probe,
                "ratio_to_round_trip": lat["p50"] / probe["p50"],
                "server_cpu_ms_per_action": cpu * 1000 / count,
                "upstream_requests": session.upstream.requests,
                "upstream_connections": session.upstream.connections}),
        Figure("memory_idle", "memory: RSS idle", f"{idle_mb:.1f} MB", "< 60 MB",
               idle_mb < 60, {"rss_kb": idle["VmRSS"], "hwm_kb": idle["VmHWM"]}),
        Figure("memory_growth", f"memory: RSS growth over {count:,} sequential actions",
               f"{growth_mb:+.2f} MB", "< 5 MB (per 1,000)",
               growth_mb < 5 if count >= 1000 else None,
               {"actions": count, "warmup": warmup, "rss_before_kb": before["VmRSS"],
                "rss_after_kb": after["VmRSS"], "rss_idle_kb": idle["VmRSS"],
                "growth_since_idle_mb": (after["VmRSS"] - idle["VmRSS"]) / 1024}),
    ]


async def latency(config: Config) -> list[Figure]:
    """First words (first content chunk written → first lspilot/stream received) and
    finish ([DONE] written → applyEdit received), one action at a time, idle in between."""
    count = config.n(120, 5)
    firsts, finishes = [], []
    async with Session(config, "latency") as session:
        uri = await session.open("shapes.py", small_source())
        for i in range(count + 3):  # three warm-up actions
            ident = session.script(Script(
                refactor_answer(), rate=500, pause_before_first=0.01,
                pause_after_first=0.01, pause_before_done=0.07))
            run = await session.action(uri, ident)
            up = run["upstream"]
            if i >= 3:
                firsts.append(run["first_words"] - up.first_content)
                finishes.append(run["edit"] - up.done)
    first, finish = summary(ms(firsts)), summary(ms(finishes))
    return [
        Figure("first_words", "first words: first chunk written → first lspilot/stream",
               f"p50 {fmt(first['p50'])}, p99 {fmt(first['p99'])}", "p50 < 5 ms",
               first["p50"] < 5, {"ms": first}),
        Figure("finish", "finish: [DONE] written → applyEdit received",
               f"p50 {fmt(finish['p50'])}, p99 {fmt(finish['p99'])}", "p50 < 10 ms",
               finish["p50"] < 10, {"ms": finish}),
    ]


def _baseline_decode(chunks: int) -> float:
    """Chunks per CPU second of the least a Python relay does per chunk: split the SSE
    bytes into lines and json.loads each one (no HTTP, no LSP). A same-run yardstick."""
    body = b"".join(event(c) for c in token_stream(chunks))
    start = time.process_time()
    text = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: "):
            text.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    elapsed = time.process_time() - start
    return chunks / max(elapsed, 1e-9)


async def throughput(config: Config) -> list[Figure]:
    """100,000 chunks as fast as the upstream can write them: chunks per server CPU second."""
    chunks, runs = config.n(100_000, 2_000), config.n(3, 1)
    rates, walls, notes = [], [], []
    async with Session(config, "throughput") as session:
        uri = await session.open("shapes.py", small_source())
        for i in range(runs + 1):
            ident = session.script(Script(token_stream(chunks)))
            before = dict(session.server.counts)
            cpu0 = session.server.cpu_seconds()
            run = await session.action(uri, ident)
            cpu = session.server.cpu_seconds() - cpu0
            if len(run["result"]["text"]) != len("".join(token_stream(chunks))):
                raise RuntimeError("the relayed text is not the whole answer")
            if i:  # the first run warms up
                rates.append(chunks / max(cpu, 1e-9))
                walls.append(chunks / (run["answered"] - run["sent"]))
                notes.append(sum(session.server.counts.values()) - sum(before.values()))
    baseline = _baseline_decode(chunks)
    rate = statistics.median(rates)
    return [Figure(
        "throughput", f"relay throughput ({chunks:,} chunks, as fast as possible)",
        f"{rate:,.0f} chunks/CPU-s", "> 50,000 chunks/CPU-s",
        rate > 50_000 if chunks >= 100_000 else None,
        {"chunks": chunks, "runs": runs, "chunks_per_cpu_second": rates,
         "chunks_per_wall_second": walls, "messages_to_client_per_run": notes,
         "baseline_split_json_loads_per_cpu_second": baseline,
         "ratio_to_baseline": rate / baseline},
    )]


async def concurrency(config: Config, session: Session | None = None,
                      key: str = "concurrency", who: str = "") -> list[Figure]:
    """64 actions at once, each 1,000 chunks at 200 chunks/s; a probe request every
    10 ms measures the server's responsiveness (a proxy for its event-loop lag).
    ``session`` replaces lspilot's (the floor server's, from floor.py)."""
    actions = config.n(64, 8)
    chunks = config.n(1000, 100)
    rate = 200.0
    client_lags: list[tuple[float, float]] = []

    async def client_monitor() -> None:  # this process's own loop: is the client keeping up?
        while True:
            tick = time.perf_counter()
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            client_lags.append((now, now - tick - 0.005))

    session = session or Session(config, "concurrency", loop_monitor=True)
    async with session:
        uris = [await session.open(f"file_{i}.py", small_source()) for i in range(actions)]
        idle = [await session.probe(uris[0]) for _ in range(config.n(200, 20))]
        idle_cpu0 = session.server.cpu_seconds()
        await asyncio.sleep(0.5)
        idle_cpu = session.server.cpu_seconds() - idle_cpu0
        idle_rss = session.server.memory()
        text = token_stream(chunks)
        idents = [session.script(Script(text, rate=rate)) for _ in range(actions)]
        monitor = asyncio.ensure_future(client_monitor())
        cpu0 = session.server.cpu_seconds()
        start = time.perf_counter()
        tasks = [asyncio.ensure_future(session.action(u, i)) for u, i in zip(uris, idents,
                                                                               strict=True)]
        probes: list[float] = []
        peak_rss = 0
        all_done = asyncio.gather(*tasks, return_exceptions=True)
        while not all_done.done():
            tick = time.perf_counter()
            probes.append(await session.probe(uris[0]))
            peak_rss = max(peak_rss, session.server.memory()["VmRSS"])
            await asyncio.sleep(max(0.0, 0.01 - (time.perf_counter() - tick)))
        runs = await all_done
        end = time.perf_counter()
        wall = end - start
        monitor.cancel()
        cpu = session.server.cpu_seconds() - cpu0
        memory = session.server.memory()
    in_load = [lag for when, lag in session.lags if start <= when <= end]
    gen2 = [seconds for when, gen, seconds in session.collections
            if gen == 2 and start <= when <= end]
    before_load = [lag for when, lag in session.lags if start - 0.45 <= when < start]
    loop = summary(ms(in_load))
    loop_idle = summary(ms(before_load))
    client_loop = summary(ms([lag for when, lag in client_lags if start <= when <= end]))
    failures = [r for r in runs if isinstance(r, BaseException)]
    whole = "".join(text)
    complete = sum(1 for r in runs if isinstance(r, dict) and r["result"]["text"] == whole)
    lag, base = summary(ms(probes)), summary(ms(idle))
    peak_mb = memory["VmHWM"] / 1024
    ideal = chunks / rate
    return [
        Figure(key, f"{who}concurrency: {actions} actions × {chunks:,} chunks at "
               f"{rate:.0f}/s", f"{complete}/{actions} complete; loop lag p99 "
               f"{fmt(loop.get('p99', math.nan))} (probe RTT p99 {fmt(lag['p99'])})",
               "all complete; loop lag p99 < 10 ms",
               complete == actions and loop.get("p99", math.inf) < 10,
               {"complete": complete, "actions": actions, "failures": [repr(f) for f in
                                                                      failures[:3]],
                "server_loop_lag_ms": loop, "server_loop_lag_idle_ms": loop_idle,
                "client_loop_lag_ms": client_loop,
                "probe_rtt_ms": lag, "idle_probe_rtt_ms": base,
                "lag_proxy_p99_minus_idle_p50_ms": lag["p99"] - base["p50"],
                "wall_s": wall, "ideal_wall_s": ideal, "server_cpu_s": cpu,
                "server_cpu_share": cpu / wall, "idle_cpu_share": idle_cpu / 0.5,
                "chunks_per_cpu_second": actions * chunks / max(cpu, 1e-9),
                "gc_full_collections": len(gen2),
                "gc_full_collection_ms": summary(ms(gen2))}),
        Figure(f"{key}_memory_peak" if who else "memory_peak",
               f"{who}memory: peak RSS with {actions} concurrent actions",
               f"{peak_mb:.1f} MB", "< 120 MB", peak_mb < 120 if actions >= 64 else None,
               {"vm_hwm_kb": memory["VmHWM"], "sampled_peak_rss_kb": peak_rss,
                "rss_before_load_kb": idle_rss["VmRSS"], "rss_after_kb": memory["VmRSS"]}),
    ]


async def big_document(config: Config) -> list[Figure]:
    """A 5 MB document: single-character didChanges and codeAction round trips.

    A notification has no answer, so each change is followed by the probe request
    (lspilot handles messages in order): change cost = RTT(change + probe) - RTT(probe).
    A pipelined run (all changes, then one probe) gives the mean cost without round trips.
    """
    changes, probes_n = config.n(1000, 50), config.n(300, 20)
    async with Session(config, "big-document") as session:
        text = big_source()
        start = time.perf_counter()
        uri = await session.open("big.py", text)
        await session.probe(uri)
        open_ms = (time.perf_counter() - start) * 1000
        memory = session.server.memory()
        middle = text.count("\n") // 2
        base = [await session.probe(uri) for _ in range(probes_n)]
        with_change = []
        for i in range(changes):
            session.change(uri, middle, 4 + i % 40, "x")
            with_change.append(await session.probe(uri))
        start = time.perf_counter()
        for i in range(changes):
            session.change(uri, middle + 1, 4 + i % 40, "y")
        await session.probe(uri)
        pipelined = time.perf_counter() - start
        selection = {"start": {"line": middle - 5, "character": 0},
                     "end": {"line": middle + 5, "character": 0}}
        actions_rtt = []
        for _ in range(probes_n):
            result, sent, received = await session.server.request("textDocument/codeAction", {
                "textDocument": {"uri": uri}, "range": selection,
                "context": {"diagnostics": []}})
            if not result:
                raise RuntimeError("no code actions offered")
            actions_rtt.append(received - sent)
    b, c, a = summary(ms(base)), summary(ms(with_change)), summary(ms(actions_rtt))
    per_change = c["p50"] - b["p50"]
    pipelined_each = (pipelined - b["p50"] / 1000) * 1000 / changes
    return [
        Figure("big_doc_change", f"big document: 5 MB, {changes:,} one-character didChanges",
               f"p50 {fmt(max(per_change, 0.0))} each (pipelined mean {fmt(pipelined_each)})",
               "p50 < 1 ms each", per_change < 1,
               {"bytes": len(text.encode()), "change_plus_probe_rtt_ms": c,
                "probe_rtt_ms": b, "per_change_p50_ms": per_change,
                "per_change_p99_ms": c["p99"] - b["p50"],
                "pipelined_mean_per_change_ms": pipelined_each,
                "did_open_plus_probe_ms": open_ms, "rss_after_open_kb": memory["VmRSS"]}),
        Figure("big_doc_code_action", "code actions on a 5 MB file (round trip)",
               f"p50 {fmt(a['p50'])}, p99 {fmt(a['p99'])}", "p50 < 5 ms", a["p50"] < 5,
               {"ms": a}),
    ]


BENCHMARKS: dict[str, Callable[[Config], Awaitable[list[Figure]]]] = {
    "startup": startup,
    "whole_action": whole_action,
    "latency": latency,
    "throughput": throughput,
    "concurrency": concurrency,
    "big_document": big_document,
}
