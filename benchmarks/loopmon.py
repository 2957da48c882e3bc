"""Run lspilot with an event-loop lag monitor inside it: ``python -m benchmarks.loopmon ARGS``.

``--floor`` as the first argument runs the floor server (``benchmarks/floor_server.py``,
which needs the repository on ``PYTHONPATH``) instead, with the same monitor.

The server code is not touched: this wrapper patches ``asyncio.run`` so that the
server's loop also runs a task that sleeps ``INTERVAL`` and records how late it woke
(the time the loop was busy with something else). The lags, in seconds, are written as
JSON to ``$LSPILOT_BENCH_LAG_FILE`` when the loop ends (and at exit), with the garbage
collector's full (generation 2) collections and any other collection over 1 ms. Nothing
is ever written to stdout, which is the LSP channel.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

INTERVAL = 0.005

_lags: list[tuple[float, float]] = []  # (when, lag)
_collections: list[tuple[float, int, float]] = []  # (when it began, generation, seconds)
_written = False
_gc_start = 0.0


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    global _gc_start
    if phase == "start":
        _gc_start = time.perf_counter()
    elif info["generation"] == 2 or time.perf_counter() - _gc_start > 0.001:
        _collections.append((_gc_start, info["generation"], time.perf_counter() - _gc_start))


def _dump() -> None:
    global _written
    path = os.environ.get("LSPILOT_BENCH_LAG_FILE")
    if _written or not path:
        return
    _written = True
    with open(path, "w") as handle:
        json.dump({"interval": INTERVAL, "lags": _lags, "gc": _collections}, handle)


async def _monitor() -> None:
    while True:
        start = time.perf_counter()
        await asyncio.sleep(INTERVAL)
        now = time.perf_counter()
        _lags.append((now, now - start - INTERVAL))


_real_run = asyncio.run


def _run(main: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
    async def monitored() -> Any:
        task = asyncio.get_running_loop().create_task(_monitor())
        try:
            return await main
        finally:
            task.cancel()
            _dump()

    return _real_run(monitored(), **kwargs)


def main() -> int:
    asyncio.run = _run  # type: ignore[assignment]
    atexit.register(_dump)
    gc.callbacks.append(_gc_callback)
    if sys.argv[1:2] == ["--floor"]:
        from benchmarks.floor_server import main as floor_main

        floor_main()
        return 0
    from lspilot.cli import main as lspilot_main

    return lspilot_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
