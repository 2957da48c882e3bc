"""What a feature is: one part of what lspilot does (the actions, inline completions, next
edits, chat, status). It owns its state, registers the LSP methods that are its own, names
the commands it runs, and hears the server's lifecycle through hook methods; what features
share is :class:`lspilot.services.Services`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lspilot.services import Services


class Feature:
    """The hooks; each does nothing unless a feature needs it."""

    # The workspace/executeCommand commands this feature answers, advertised in this order.
    commands: Sequence[str] = ()

    def __init__(self, services: Services) -> None:
        self.services = services

    def register(self, server: LanguageServer) -> None:
        """Register the LSP methods that are this feature's own."""

    async def execute(self, params: types.ExecuteCommandParams) -> Any:
        """Run one of :attr:`commands`."""
        raise NotImplementedError

    async def initialized(self) -> None:
        """The editor is ready and the settings are read."""

    def document_opened(self, uri: str) -> None:
        """The editor opened the document (pygls holds its text)."""

    def document_changed(self, uri: str) -> None:
        """The document changed (after pygls applied the change)."""

    def document_closed(self, uri: str) -> None:
        """The document was closed."""

    async def shutdown(self) -> None:
        """The server is going away: stop what runs."""
