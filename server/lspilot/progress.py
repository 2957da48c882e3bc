"""Coalescing a run's text so that an editor is never flooded.

The first text goes out at once (the user sees the first words immediately); after
that at most one flush per interval; ``close`` flushes whatever is left, so concatenated
flushes always equal everything pushed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 0.05


class Coalescer:
    __slots__ = ("_flush", "_interval", "_last", "_loop", "_pending", "_timer")

    def __init__(self, flush: Callable[[str], None], interval: float = DEFAULT_INTERVAL) -> None:
        self._flush = flush
        self._interval = interval
        self._pending: list[str] = []
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def push(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        if self._timer is not None:
            return
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            self._send()
        else:
            self._timer = self._loop.call_later(wait, self._send)

    def close(self) -> None:
        """Send what is pending now and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._send()

    def _send(self) -> None:
        self._timer = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._last = time.monotonic()
        self._flush(text)
