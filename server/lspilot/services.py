"""The core the features share, built once and handed to each: the settings store, the
editor, the model client, the lanes, the meter, the running jobs and the upstream's health,
the backends' upstreams (the local model) and the MCP servers.

The esbonio way: features are objects with hooks (lspilot.features.base), and what they
share lives here rather than inside the feature base.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import cattrs
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import Workspace

from lspilot import exclusion
from lspilot.backends import Upstreams
from lspilot.commands import CommandError
from lspilot.editor import Editor
from lspilot.errors import LspilotError
from lspilot.jobs.health import UPSTREAM_KINDS, UpstreamHealth
from lspilot.jobs.job import Body, Job, JobContext, JobResult, JobSpec
from lspilot.jobs.lanes import Lanes
from lspilot.llm.client import ChatClient
from lspilot.mcp_client import McpServers
from lspilot.settings import Settings
from lspilot.store import SettingsStore
from lspilot.usage import Meter
from lspilot.workspace import folders


class KeyNotSent(LspilotError):
    """The workspace settings sent the key to a host the user did not allow."""

    kind = "no_api_key"


class Services:
    def __init__(self, server: LanguageServer, cache_dir: Path) -> None:
        self._server = server
        self.cache_dir = cache_dir
        self.store = SettingsStore(os.environ, cache_dir)
        self.editor = Editor(server)
        self.client = ChatClient()
        self.lanes = Lanes(self.store.settings)
        self.meter = Meter()
        self.jobs: dict[types.ProgressToken, Job] = {}
        self.upstream = UpstreamHealth()
        # The user's MCP servers, started when an agent turn first needs them.
        self.mcp = McpServers(self.store.remembered)
        # What the backends need running (llama.cpp's server for baseUrl "local").
        self.upstreams = Upstreams(cache_dir)
        self.store.subscribe(self._settings_changed)

    @property
    def workspace(self) -> Workspace:
        return self._server.workspace

    @property
    def converter(self) -> cattrs.Converter:
        """pygls's converter: LSP types to and from their JSON."""
        return self._server.protocol._converter

    async def _settings_changed(self, settings: Settings) -> None:
        await self.client.set_verify_tls(settings.verify_tls)
        self.lanes.settings_changed(settings)
        self.mcp.configure(settings.mcp_servers)

    def excluded(self, uri: str) -> str | None:
        """Why the document ``uri`` must not reach the model (contextExclude), or None."""
        path = to_fs_path(uri)
        if not path:
            return None
        if exclusion.excluded(Path(path), folders(self.workspace),
                              self.store.settings_for(uri).context_exclude):
            return exclusion.reason(Path(path).name)
        return None

    async def job_context(self, uri: str | None, *, quiet: bool = False) -> JobContext:
        """What a job for ``uri`` needs; raises when the model cannot be reached at all.

        ``quiet``: never ask the user (inline completions must not pop up questions).
        """
        refused = await self.store.key_refusal(uri, None if quiet else self.editor.ask)
        if refused is not None:
            raise KeyNotSent(refused)
        settings = self.store.settings_for(uri)  # after: an allowed key command set the key
        settings, lost = await self.upstreams.prepare(settings, self.editor)
        return JobContext(
            editor=self.editor, client=self.client, settings=settings, lanes=self.lanes,
            meter=self.meter, refresh_key=self.store.key_refresher(uri), upstream_lost=lost,
        )

    def start(self, spec: JobSpec, context: JobContext, body: Body) -> Job:
        """Start a job, known to ``lspilot.cancel`` and ``lspilot.status`` while it runs."""
        job = Job(spec=spec, context=context)
        if job.token in self.jobs:
            raise CommandError(f"The progress token {job.token!r} is already in use.")
        self.jobs[job.token] = job
        task = job.start(body)
        task.add_done_callback(lambda done: self._finished(job, done))
        return job

    def _finished(self, job: Job, task: asyncio.Task[JobResult]) -> None:
        self.jobs.pop(job.token, None)
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        if result.status == "done":
            self.upstream.answered()
        elif result.status == "failed" and result.error_type in UPSTREAM_KINDS:
            self.upstream.failed(result.error_type or "", result.error_message or "")

    async def run(self, spec: JobSpec, context: JobContext, body: Body) -> JobResult:
        """Run a job to its end (see :meth:`start`)."""
        job = self.start(spec, context, body)
        task = job.task
        assert task is not None
        try:
            # Shielded: a $/cancelRequest cancels the caller, and we pass it on ourselves.
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            job.cancel()
            raise
        if context.upstream_lost is not None and result.status == "done":
            self.upstreams.answered()
        return result

    def start_local_model(self) -> None:
        """Start llama.cpp before the first request, when the settings want it."""
        self.upstreams.warm_up(self.store.settings, self.editor)

    async def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel()
        tasks = [job.task for job in self.jobs.values() if job.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self.client.aclose()
        await self.upstreams.aclose()
        await self.mcp.aclose()
