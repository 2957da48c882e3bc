"""``lspilot acp``: serve one ACP client on stdin/stdout until it goes away.

Settings are the user's own layers only (the environment, the settings file): an ACP
client sends none. Only protocol JSON goes to the real stdout (lspilot.cli claims it);
the log goes to stderr, where ACP clients collect an agent's log."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from lspilot.acp.agent import AcpAgent
from lspilot.acp.rpc import Connection
from lspilot.store import SettingsStore

log = logging.getLogger(__name__)


class _NoEditorSettings:
    """An ACP client has no ``workspace/configuration``."""

    def can_be_asked(self) -> bool:
        return False

    def folders(self) -> list[str]:
        return []

    async def configuration(self, scopes: list[str | None]) -> Sequence[Any]:
        return []


# As lspilot.server.tune_gc (imported from there, it would load pygls's server for nothing):
# what startup built is frozen out of every collection, and the young generation collects
# rarely while answers stream.
GC_YOUNG_THRESHOLD = 2_000


def serve(channel: BinaryIO, stdin_fd: int | None = None) -> int:
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(channel, sys.stdin.fileno() if stdin_fd is None else stdin_fd))
    return 0


async def _serve(channel: BinaryIO, fd: int) -> None:
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lspilot"
    store = SettingsStore(os.environ, cache_dir)
    await store.start({}, _NoEditorSettings())
    connection = Connection(channel)
    agent = AcpAgent(connection, store, cache_dir)
    try:
        await connection.serve(fd)
    finally:
        await agent.aclose()
