"""Run lspilot with an event-loop lag monitor inside it: ``python -m benchmarks.loopmon ARGS``.

The server code is not touched: this wrapper patches ``asyncio.run`` so that the
server's loop also runs a task that sleeps ``INTERVAL`` and records how late it woke
(the time the loop was busy with something else). The lags, in seconds, are written as
JSON to ``$LSPILOT_BENCH_LAG_FILE`` when the loop ends (and at exit). Nothing is ever
written to stdout, which is the LSP channel.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

INTERVAL = 0.005

_lags: list[tuple[float, float]] = []  # (when, lag)
_written = False


def _dump() -> None:
    global _written
    path = os.environ.get("LSPILOT_BENCH_LAG_FILE")
    if _written or not path:
        return
    _written = True
    with open(path, "w") as handle:
        json.dump({"interval": INTERVAL, "lags": _lags}, handle)


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
    from lspilot.cli import main as lspilot_main

    return lspilot_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
