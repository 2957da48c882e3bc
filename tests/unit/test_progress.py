"""The Coalescer: the first text at once, then at most one flush per interval."""

from __future__ import annotations

import asyncio
import time

from lspilot.progress import DEFAULT_INTERVAL, Coalescer


class Flushes:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.times: list[float] = []

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.times.append(time.monotonic())


def test_default_interval_is_50_ms() -> None:
    assert DEFAULT_INTERVAL == 0.05


async def test_first_push_flushes_at_once() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes)
    coalescer.push("Hello")
    assert flushes.texts == ["Hello"]  # synchronously, no waiting


async def test_burst_within_the_interval_coalesces_into_one_flush() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.05)
    coalescer.push("a")
    coalescer.push("b")
    await asyncio.sleep(0)  # the loop runs between pushes, as with network reads
    coalescer.push("c")
    await asyncio.sleep(0)
    coalescer.push("d")
    assert flushes.texts == ["a"]
    await asyncio.sleep(0.1)
    assert flushes.texts == ["a", "bcd"]
    # The coalesced flush waited for the interval after the first one.
    assert flushes.times[1] - flushes.times[0] >= 0.045


async def test_at_most_one_flush_per_interval_under_steady_input() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.05)
    pushed = []
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        piece = f"<{len(pushed)}>"
        pushed.append(piece)
        coalescer.push(piece)
        await asyncio.sleep(0.002)
    coalescer.close()
    assert "".join(flushes.texts) == "".join(pushed)
    # ~0.3 s at one flush per 50 ms: about 7, far fewer than the pushes.
    assert 2 <= len(flushes.texts) <= 9
    gaps = [b - a for a, b in zip(flushes.times, flushes.times[1:-1], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_push_after_a_quiet_interval_flushes_at_once() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.03)
    coalescer.push("a")
    await asyncio.sleep(0.05)
    coalescer.push("b")
    assert flushes.texts == ["a", "b"]


async def test_close_flushes_the_rest_and_stops_the_timer() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.05)
    coalescer.push("a")
    coalescer.push("b")
    coalescer.push("c")
    assert flushes.texts == ["a"]
    coalescer.close()
    assert flushes.texts == ["a", "bc"]
    await asyncio.sleep(0.08)
    assert flushes.texts == ["a", "bc"]  # no late duplicate from the cancelled timer


async def test_close_with_nothing_pending_flushes_nothing() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.05)
    coalescer.close()
    coalescer.push("x")
    coalescer.close()
    assert flushes.texts == ["x"]


async def test_empty_pushes_are_ignored() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.05)
    coalescer.push("")
    assert flushes.texts == []
    coalescer.push("a")
    coalescer.push("")
    coalescer.close()
    assert flushes.texts == ["a"]


async def test_concatenation_of_flushes_equals_all_pushes() -> None:
    flushes = Flushes()
    coalescer = Coalescer(flushes, interval=0.02)
    pieces = [f"{i}é🎉\n" for i in range(60)]
    for index, piece in enumerate(pieces):
        coalescer.push(piece)
        if index % 7 == 0:
            await asyncio.sleep(0.011)
    coalescer.close()
    assert "".join(flushes.texts) == "".join(pieces)
    assert all(flushes.texts)
    assert len(flushes.texts) < len(pieces)
