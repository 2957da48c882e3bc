"""Where the model runs, chosen once from the settings: an OpenAI-compatible upstream, or
the bundled llama.cpp server lspilot starts itself (``baseUrl: "local"``).

Features ask the backend what differs between the two (how tools reach the model, how
many completions may be in flight, which completion style ``auto`` means, the model's
display name) instead of comparing ``baseUrl`` with ``"local"``; this is the only module
outside ``lspilot.local`` that knows the local model exists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from attrs import define

from lspilot.editor import Editor
from lspilot.llm.chat_template import ChatTemplate
from lspilot.llm.errors import UpstreamError
from lspilot.llm.wire import ToolFormat
from lspilot.local import model as local_model
from lspilot.local.manager import LocalModel, local_model_name
from lspilot.settings import LOCAL_BASE_URL, Settings

# Completions in flight at once on a remote upstream (one per document, a few documents).
REMOTE_COMPLETION_SLOTS = 4


@define(frozen=True)
class Backend:
    local: bool
    # How tools reach the model: the API's own tools, or a prompt section and tags (the
    # bundled model's server parses no tool calls it can stream; measured in
    # benchmarks/README.md).
    tool_format: ToolFormat
    # The bundled model is one llama-cpp-python server that evaluates one prompt at a time:
    # a second request in flight only queues inside it, where it can no longer be dropped.
    completion_slots: int
    auto_completion_style: Literal["chat", "fim"]
    # Fill-in-the-middle tokens of a model lspilot knows (None: its own format unknown).
    fim_tokens: tuple[str, str, str] | None
    # One of lspilot's bundled small models: Write tests begins its answers for it.
    bundled: bool = False
    # The turn format lspilot may write itself to prefill an answer (None: unknown).
    chat_template: ChatTemplate | None = None

    def model_name(self, settings: Settings) -> str:
        """The model as usage is counted and shown (the local one by its name)."""
        return local_model_name(settings.local_model) if self.local else settings.model

    def completion_model_name(self, settings: Settings) -> str:
        if self.local:
            return local_model_name(settings.local_model)
        return settings.completion_model or settings.model


def backend_for(settings: Settings) -> Backend:
    if settings.base_url == LOCAL_BASE_URL:
        bundled = local_model.bundled(settings.local_model)
        return Backend(local=True, tool_format="prompt", completion_slots=1,
                       auto_completion_style="fim",
                       fim_tokens=bundled.fim_tokens if bundled is not None else None,
                       bundled=bundled is not None,
                       chat_template=bundled.chat_template if bundled is not None else None)
    return Backend(local=False, tool_format="native", completion_slots=REMOTE_COMPLETION_SLOTS,
                   auto_completion_style="chat", fim_tokens=None)


class Upstreams:
    """What the backends need running: the bundled model's llama.cpp server, started on
    the first request that needs it (or warmed up when the settings name it) and stopped
    with lspilot."""

    def __init__(self, cache_dir: Path) -> None:
        self._local = LocalModel(cache_dir)

    async def prepare(self, settings: Settings, editor: Editor | None,
                      ) -> tuple[Settings, asyncio.Future[UpstreamError] | None]:
        """Settings that reach the backend (the local server's address, started first),
        and the local server's crash as a future a request can race (None: remote)."""
        if not backend_for(settings).local:
            return settings, None
        ready = await self._local.endpoint_settings(settings, editor)
        return ready, self._local.lost()

    def answered(self) -> None:
        """A request through the local server was answered: its crashes are history."""
        self._local.answered()

    def warm_up(self, settings: Settings, editor: Editor | None) -> None:
        if backend_for(settings).local:
            self._local.warm_up(settings, editor)

    async def aclose(self) -> None:
        await self._local.aclose()
