"""Lanes of concurrency: each kind of work waits only behind its own kind.

Actions and chat share the ``actions`` lane, sized by ``maxConcurrentRequests``; inline
completions have a lane of their own, so a burst of them never queues behind a refactor,
and a refactor never waits behind completions.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from lspilot.backends import backend_for
from lspilot.settings import Settings

Lane = Literal["actions", "completions", "nextEdits"]


def completion_slots(settings: Settings) -> int:
    """Completions: one in flight per document (a newer one supersedes), as many documents
    at once as the backend takes."""
    return backend_for(settings).completion_slots


class Limiter:
    """At most ``limit`` upstream requests at once; the rest wait their turn in order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def full(self) -> bool:
        return self.active >= self.limit

    async def acquire(self) -> None:
        if not self.full and not self._waiters:
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a slot as we were cancelled: pass it on
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and not self.full:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


class Lanes:
    def __init__(self, settings: Settings) -> None:
        self._limiters: dict[Lane, Limiter] = {
            "actions": Limiter(settings.max_concurrent_requests),
            "completions": Limiter(completion_slots(settings)),
            # Next edit suggestions: one per document, a newer one superseding; their own
            # lane, so ghost text never waits behind them (nor they behind ghost text).
            "nextEdits": Limiter(completion_slots(settings)),
        }

    def __getitem__(self, lane: Lane) -> Limiter:
        return self._limiters[lane]

    def settings_changed(self, settings: Settings) -> None:
        self._limiters["actions"].resize(settings.max_concurrent_requests)
        self._limiters["completions"].resize(completion_slots(settings))
        self._limiters["nextEdits"].resize(completion_slots(settings))
