"""Racing a request against the loss of its upstream (a local server that died).

When lspilot runs the upstream itself, it hears of the upstream's death the moment it
happens. A request to it must then fail with that cause at once, not retry against a
closed port and blame the base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from lspilot.llm.errors import ConnectFailed, StreamBroken, TimedOut, UpstreamError

T = TypeVar("T")

# A dying server closes its sockets a moment before the kernel reports its exit: a
# connection error this close to a death is the death.
DEATH_GRACE_SECONDS = 1.0


async def until_lost(work: Awaitable[T], lost: asyncio.Future[UpstreamError] | None) -> T:
    """``await work``, unless ``lost`` resolves first: then ``work`` is cancelled and the
    error ``lost`` carries is raised instead."""
    if lost is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancel(task)
        raise
    if lost.cancelled():  # no news of the upstream after all
        return await task
    if task.done():
        failure = None if task.cancelled() else task.exception()
        if failure is None or not isinstance(failure, ConnectFailed | StreamBroken | TimedOut):
            return task.result()
        # The connection failed: was it the death, seen through the socket first?
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(lost), DEATH_GRACE_SECONDS)
        if not lost.done() or lost.cancelled():
            return task.result()  # a connection failure of its own
    await _cancel(task)
    raise lost.result()


async def _cancel(task: asyncio.Future[T]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task
