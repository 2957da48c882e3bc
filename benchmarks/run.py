"""Run lspilot's benchmarks: ``python -m benchmarks.run [--smoke] [--only NAME,...]``.

Prints a table of every figure with its target and writes everything measured as JSON
(``benchmarks/results/latest.json``; ``smoke.json`` for ``--smoke``). Exits non-zero
only when a benchmark crashes: a missed target is a finding, not a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.acp import ACP_BENCHMARKS
from benchmarks.agent import AGENT_BENCHMARKS
from benchmarks.agent_tasks import AGENT_TASK_BENCHMARKS, LOCAL_AGENT_TASK_BENCHMARKS
from benchmarks.floor import FLOOR_BENCHMARKS
from benchmarks.nes import LOCAL_NES_BENCHMARKS, NES_BENCHMARKS
from benchmarks.scenarios import BENCHMARKS as LSPILOT_BENCHMARKS
from benchmarks.scenarios import Config, Figure
from benchmarks.toolcalls import TOOLCALL_BENCHMARKS
from benchmarks.toolcalls_local import LOCAL_TOOL_BENCHMARKS
from benchmarks.typing_sim import LOCAL_BENCHMARKS, TYPING_BENCHMARKS

BENCHMARKS = {**LSPILOT_BENCHMARKS, **ACP_BENCHMARKS, **FLOOR_BENCHMARKS, **TYPING_BENCHMARKS,
              **AGENT_BENCHMARKS, **AGENT_TASK_BENCHMARKS, **TOOLCALL_BENCHMARKS,
              **NES_BENCHMARKS}
# Only with --only (the local model takes minutes and needs llama_cpp): not in the default
# list nor in --smoke.
EXTRA = {**LOCAL_BENCHMARKS, **LOCAL_TOOL_BENCHMARKS, **LOCAL_NES_BENCHMARKS,
         **LOCAL_AGENT_TASK_BENCHMARKS}

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    memory = 0
    try:
        with open("/proc/meminfo") as handle:
            memory = int(handle.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    from lspilot import __version__

    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": model,
        "memory_mb": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "lspilot": __version__,
    }


def table(figures: list[Figure], smoke: bool = False) -> str:
    rows = [("figure", "measured", "target", "")]
    for f in figures:
        verdict = ("(smoke)" if smoke else "met" if f.met
                   else "MISSED" if f.met is False else "")
        rows.append((f.label, f.measured, f.target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def run(config: Config, names: list[str]) -> tuple[list[Figure], dict[str, str]]:
    figures: list[Figure] = []
    crashed: dict[str, str] = {}
    for name in names:
        print(f"==> {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            bench = {**BENCHMARKS, **EXTRA}[name]
            # A benchmark may need longer (the local model's agent tasks): time_limit.
            limit = getattr(bench, "time_limit", 900)
            got = await asyncio.wait_for(bench(config), 120 if config.smoke else limit)
        except Exception:
            crashed[name] = traceback.format_exc()
            print(f"    CRASHED:\n{crashed[name]}", file=sys.stderr, flush=True)
            continue
        for figure in got:
            print(f"    {figure.label}: {figure.measured}", file=sys.stderr, flush=True)
        print(f"    ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        figures.extend(got)
    return figures, crashed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run of every benchmark (CI: keeps them working; "
                        "its figures mean nothing)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated: {', '.join({**BENCHMARKS, **EXTRA})}")
    parser.add_argument("--json", type=Path, help="where to write the figures (default: "
                        "benchmarks/results/latest.json, or smoke.json with --smoke)")
    parser.add_argument("--server-prefix", default="",
                        help="run lspilot under this command, e.g. 'py-spy record -o p.svg --' "
                        "(CPU and memory figures then describe the wrapper: profiling only)")
    parser.add_argument("--floor-prefix", default="",
                        help="the same for the floor server (benchmarks/floor_server.py)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS and n not in EXTRA]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    config = Config(smoke=args.smoke, results_dir=RESULTS,
                    server_prefix=shlex.split(args.server_prefix),
                    floor_prefix=shlex.split(args.floor_prefix))
    info = machine()
    print(f"lspilot {info['lspilot']} benchmarks{' (smoke run)' if args.smoke else ''} on "
          f"{info['cores']} cores ({info['cpu']}), Python {info['python']}", file=sys.stderr)
    started = time.perf_counter()
    figures, crashed = asyncio.run(run(config, names))
    elapsed = time.perf_counter() - started
    print()
    print(f"lspilot {info['lspilot']} · {info['cores']} cores ({info['cpu']}) · "
          f"Python {info['python']} · {datetime.now(UTC):%Y-%m-%d}"
          f"{' · SMOKE RUN: figures are not meaningful' if args.smoke else ''}")
    print()
    print(table(figures, args.smoke))
    missed = [f.label for f in figures if f.met is False]
    if missed and not args.smoke:
        print(f"\nMissed targets: {len(missed)}")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine": info,
        "elapsed_s": elapsed,
        "figures": [{"key": f.key, "label": f.label, "measured": f.measured,
                     "target": f.target, "met": None if args.smoke else f.met,
                     "data": f.data} for f in figures],
        "crashed": crashed,
    }
    path = args.json or RESULTS / ("smoke.json" if args.smoke else "latest.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n({elapsed:.0f} s; figures written to {path})")
    if crashed:
        print(f"Crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
