"""The job's editor for an ACP client: the answer streams as ``session/update``
``agent_message_chunk``; ACP has no work-done progress, and a failure reaches the client
as the ``session/prompt`` error, so those are quiet here."""

from __future__ import annotations

import logging
from collections.abc import Callable

from lsprotocol import types

from lspilot.acp import schema
from lspilot.acp.rpc import Connection
from lspilot.editor import StreamNotice

log = logging.getLogger(__name__)


class AcpEditor:
    def __init__(self, connection: Connection, session_id: str) -> None:
        self.connection = connection
        self.session_id = session_id

    def update(self, update: dict[str, object]) -> None:
        self.connection.notify("session/update", {"sessionId": self.session_id,
                                                  "update": update})

    @property
    def supports_progress(self) -> bool:
        return False

    async def create_progress(self, token: str) -> bool:
        return False

    def on_progress_cancel(self, token: types.ProgressToken,
                           callback: Callable[[], object]) -> None:
        pass

    def progress_begin(self, token: types.ProgressToken, title: str, message: str) -> None:
        pass

    def progress_report(self, token: types.ProgressToken, message: str, *,
                        cancellable: bool = True) -> None:
        pass

    def progress_end(self, token: types.ProgressToken, message: str) -> None:
        pass

    def stream(self, notice: StreamNotice) -> None:
        if notice.delta:
            self.update(schema.message_chunk(notice.delta))

    def show_message(self, kind: types.MessageType, message: str) -> None:
        log.info("%s", message)
