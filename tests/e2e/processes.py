"""Waiting on the processes a test's command starts: its pid once written, its end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


async def written_pid(pid_file: Path, what: str = "the command") -> int:
    """The pid a started command writes to ``pid_file``; fails when it never runs (10 s)."""
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never ran")


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def ended(pid: int, what: str = "the command's process") -> None:
    """Waits up to 5 s for ``pid`` to end; fails when it outlives that."""
    for _ in range(100):
        if not alive(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} outlived the cancel")
