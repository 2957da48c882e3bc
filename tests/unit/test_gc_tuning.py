"""The garbage collector's tuning at startup: what is built by then is frozen, and the
young generation's threshold is raised, so that collections stop the loop briefly."""

from __future__ import annotations

import asyncio
import gc
import io
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from lspilot import server as server_module
from lspilot.server import GC_YOUNG_THRESHOLD, LspilotServer, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the test process's collector back as it was: nothing of pytest stays frozen."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_tune_gc_freezes_what_exists_and_raises_only_the_young_threshold(
    restored_gc: None,
) -> None:
    _, middle, old = gc.get_threshold()
    assert GC_YOUNG_THRESHOLD > 700  # above Python's default
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)
    assert gc.isenabled()


def test_objects_made_after_tuning_are_still_collected(restored_gc: None) -> None:
    tune_gc()

    class Cycle:
        other: Any = None

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_start_io_tunes_the_collector_before_serving(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    events: list[str] = []
    monkeypatch.setattr(server_module, "tune_gc", lambda: events.append("tuned"))

    def fake_run(main: Coroutine[Any, Any, Any]) -> None:
        events.append("served")
        main.close()

    monkeypatch.setattr(asyncio, "run", fake_run)
    read_end, write_end = os.pipe()
    try:
        with open(read_end, "rb", closefd=False) as stdin:
            LspilotServer().start_io(stdin=stdin, stdout=io.BytesIO())
    finally:
        os.close(read_end)
        os.close(write_end)
    assert events == ["tuned", "served"]


def test_start_tcp_tunes_the_collector_before_serving(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    events: list[str] = []
    monkeypatch.setattr(server_module, "tune_gc", lambda: events.append("tuned"))

    def fake_run(main: Coroutine[Any, Any, Any]) -> None:
        events.append("served")
        main.close()

    monkeypatch.setattr(asyncio, "run", fake_run)
    LspilotServer().start_tcp("127.0.0.1", 0)
    assert events == ["tuned", "served"]
