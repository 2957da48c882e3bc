"""The Limiter: at most N upstream requests at once, the rest in order."""

from __future__ import annotations

import asyncio

from lspilot.jobs.lanes import Limiter


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_limit_active() -> None:
    limiter = Limiter(2)
    peak = 0
    running = 0

    async def job() -> None:
        nonlocal peak, running
        await limiter.acquire()
        try:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
        finally:
            running -= 1
            limiter.release()

    await asyncio.gather(*(job() for _ in range(10)))
    assert peak == 2
    assert limiter.active == 0


async def test_waiters_are_served_first_in_first_out() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def job(n: int) -> None:
        await limiter.acquire()
        order.append(n)
        await asyncio.sleep(0)
        limiter.release()

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(job(n)))
        await settle()  # each queues before the next starts
    assert order == []
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert limiter.active == 0


async def test_a_newcomer_does_not_jump_the_queue() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await settle()
    limiter.release()  # the slot goes to the waiter...
    newcomer = asyncio.create_task(limiter.acquire())
    await settle()
    assert waiter.done()
    assert not newcomer.done()  # ...not to whoever asks next
    assert limiter.active == 1
    limiter.release()
    await asyncio.wait_for(newcomer, 1)
    limiter.release()
    assert limiter.active == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    cancelled = asyncio.create_task(limiter.acquire())
    behind = asyncio.create_task(limiter.acquire())
    await settle()
    cancelled.cancel()
    await settle()
    assert cancelled.cancelled()
    limiter.release()
    await asyncio.wait_for(behind, 1)  # the slot skipped the cancelled waiter
    assert limiter.active == 1
    limiter.release()
    assert limiter.active == 0
    await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.active == 1


async def test_waiter_cancelled_just_as_it_was_handed_the_slot_passes_it_on() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await settle()
    limiter.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it could run
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    await asyncio.wait_for(second, 1)  # the slot went on to `second`
    assert limiter.active == 1
    limiter.release()
    assert limiter.active == 0


async def test_cancelled_waiters_leave_the_count_right() -> None:
    limiter = Limiter(2)
    await limiter.acquire()
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
    await settle()
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    limiter.release()
    limiter.release()
    assert limiter.active == 0
    await asyncio.wait_for(asyncio.gather(limiter.acquire(), limiter.acquire()), 1)
    assert limiter.active == 2 and limiter.full


async def test_resize_lets_waiters_in() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await settle()
    assert not any(t.done() for t in waiters)
    limiter.resize(3)
    await settle()
    assert [t.done() for t in waiters] == [True, True, False]
    assert limiter.active == 3
    limiter.resize(1)
    limiter.release()
    await settle()
    assert not waiters[2].done()  # still over the new limit
    limiter.release()
    limiter.release()
    await asyncio.wait_for(waiters[2], 1)
    assert limiter.active == 1
