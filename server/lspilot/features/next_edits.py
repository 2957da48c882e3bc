"""Next edit suggestions (``textDocument/copilotInlineEdit``, the shape GitHub's Copilot
language server uses): from the user's recent edits in a document, the edit they will
likely make next, anywhere near the cursor.

Every ``didChange`` feeds the document's edit history (lspilot.next_edits.history). A
request waits for a pause in the editing (``DEBOUNCE``), then asks the model to rewrite an
editable region around the cursor; the answer is diffed against the region into minimal
edits. One request at a time per document: a newer one supersedes (the older answers empty
at once and its upstream request is closed); answers are cached by document version, and
an answer for a version that is no longer current is empty. Quiet like ghost text: failures
are an empty answer and a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lspilot.errors import LspilotError
from lspilot.features.base import Feature
from lspilot.jobs.job import Job, JobSpec, Outcome
from lspilot.llm.wire import ChatRequest
from lspilot.next_edits import prompt
from lspilot.next_edits.history import EditHistory
from lspilot.text import offset_at, position_of
from lspilot.workspace import encoding_of

log = logging.getLogger(__name__)

METHOD = "textDocument/copilotInlineEdit"
DEBOUNCE = 0.25  # seconds of no editing before a suggestion is asked for
MAX_TOKENS = 512


@define(eq=False)
class Pending:
    uri: str
    version: int
    result: asyncio.Future[list[dict[str, Any]]]
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if not self.result.done():
            self.result.set_result([])


@define
class Cached:
    version: int
    line: int
    edits: list[dict[str, Any]] = field(factory=list)


class NextEditsFeature(Feature):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.histories: dict[str, EditHistory] = {}
        self.pending: dict[str, Pending] = {}
        self.cache: dict[str, Cached] = {}

    def register(self, server: LanguageServer) -> None:
        @server.feature(METHOD)
        async def copilot_inline_edit(ls: LanguageServer, params: Any) -> dict[str, Any]:
            """The next edit the user is likely to make, or none."""
            return {"edits": await self.suggest(params)}

    # -- the edit history ---------------------------------------------------------------
    def document_opened(self, uri: str) -> None:
        document = self.services.workspace.text_documents.get(uri)
        if document is not None:
            self.histories[uri] = EditHistory(document.source)

    def document_changed(self, uri: str) -> None:
        document = self.services.workspace.text_documents.get(uri)
        if document is None:
            return
        history = self.histories.get(uri)
        if history is None:
            self.histories[uri] = EditHistory(document.source)
            return
        name = Path(document.path).name
        if self.services.editor.own_edits.claims(uri):
            # Suggestions follow the user's edits, not lspilot's (a refactor, the agent's):
            # nothing is asked until the user edits again. An accepted suggestion is the
            # user's edit (the editor applies it): the next one follows it, as a rename's
            # other uses do.
            history.adopt(document.source, name)
            self.cache.pop(uri, None)
            pending = self.pending.pop(uri, None)
            if pending is not None:
                pending.close()
            return
        history.record(document.source, time.monotonic(), name)

    def document_closed(self, uri: str) -> None:
        self.histories.pop(uri, None)
        self.cache.pop(uri, None)
        pending = self.pending.pop(uri, None)
        if pending is not None:
            pending.close()

    async def shutdown(self) -> None:
        for pending in list(self.pending.values()):
            pending.close()

    # -- a request ----------------------------------------------------------------------
    async def suggest(self, params: Any) -> list[dict[str, Any]]:
        uri, version, position = _params(params)
        if uri is None or position is None:
            return []
        await self.services.store.wait_until_ready()
        settings = self.services.store.settings_for(uri)
        document = self.services.workspace.text_documents.get(uri)
        history = self.histories.get(uri)
        if not settings.next_edit_suggestions or document is None or history is None \
                or self.services.excluded(uri) is not None:
            return []
        if version is not None and version != document.version:
            return []  # the editor asks about a text lspilot no longer has
        if not history.changes:
            return []  # nothing edited yet: nothing to predict from
        cached = self.cache.get(uri)
        if cached is not None and cached.version == document.version and \
                cached.line == position.line:
            return cached.edits
        previous = self.pending.get(uri)
        if previous is not None:
            previous.close()  # superseded
        pending = Pending(uri, document.version or 0,
                          asyncio.get_running_loop().create_future())
        self.pending[uri] = pending
        pending.task = asyncio.get_running_loop().create_task(self._produce(pending, position))
        try:
            return await asyncio.shield(pending.result)
        except asyncio.CancelledError:
            pending.close()  # the editor cancelled: its upstream request closes too
            raise

    async def _produce(self, pending: Pending, position: types.Position) -> None:
        edits: list[dict[str, Any]] = []
        try:
            history = self.histories[pending.uri]
            quiet = DEBOUNCE - (time.monotonic() - history.last_change)
            if quiet > 0:
                await asyncio.sleep(quiet)  # cancelled by a newer request
            edits = await self._ask(pending, position)
        except asyncio.CancelledError:
            pass
        except LspilotError as exc:
            log.info("Next edit suggestion failed (%s): %s", exc.kind, exc)
        finally:
            if self.pending.get(pending.uri) is pending:
                del self.pending[pending.uri]
            if not pending.result.done():
                pending.result.set_result(edits)

    async def _ask(self, pending: Pending, position: types.Position) -> list[dict[str, Any]]:
        services, uri = self.services, pending.uri
        document = services.workspace.text_documents.get(uri)
        if document is None or document.version != pending.version:
            return []
        context = await services.job_context(uri, quiet=True)
        context = attrs.evolve(context, settings=attrs.evolve(context.settings, max_retries=0))
        settings = context.settings
        source = document.source
        lines = source.split("\n")
        encoding = encoding_of(services.workspace)
        offset = offset_at(document.lines, position, encoding)
        cursor_line = source.count("\n", 0, offset)
        cursor_char = offset - (source.rfind("\n", 0, offset) + 1)
        region = prompt.region_around(lines, cursor_line)
        path = Path(document.path).name
        history = self.histories[uri]
        request = ChatRequest(
            model=settings.completion_model or settings.model,
            messages=prompt.messages(path, document.language_id or Path(path).suffix[1:],
                                     history.diffs(path), lines, region, cursor_line,
                                     cursor_char),
            max_tokens=MAX_TOKENS, temperature=settings.temperature
            if settings.temperature is not None else 0.0, top_p=settings.top_p)
        spec = JobSpec(title="lspilot: Next edit", command=METHOD, action="nextEdit", uri=uri,
                       lane="nextEdits", visible=False)

        async def body(job: Job) -> Outcome:
            return Outcome(text=(await job.stream(request)).text)

        job = services.start(spec, context, body)
        assert job.task is not None
        try:
            result = await asyncio.shield(job.task)
        except asyncio.CancelledError:
            job.cancel()  # superseded or cancelled: the upstream request is closed
            raise
        current = services.workspace.text_documents.get(uri)
        if result.status != "done" or current is None or current.version != pending.version:
            return []  # a failure, or an answer for a text that changed meanwhile
        new_lines = prompt.rewritten(result.text)
        if new_lines is None:
            return []
        if region.lines and all(line.endswith("\r") for line in region.lines):
            new_lines = [line if line.endswith("\r") else line + "\r" for line in new_lines]
        edits = [self._lsp_edit(e, lines, uri, pending.version, encoding)
                 for e in prompt.edits(region, new_lines)]
        self.cache[uri] = Cached(pending.version, position.line, edits)
        log.debug("Next edit: %d edit(s) for %s v%d", len(edits), uri, pending.version)
        return edits

    def _lsp_edit(self, edit: prompt.LineEdit, lines: list[str], uri: str, version: int,
                  encoding: str) -> dict[str, Any]:
        text = "\n".join(lines)
        start = _offset(lines, edit.start_line, edit.start_char)
        end = _offset(lines, edit.end_line, edit.end_char)
        range_ = {"start": _json(position_of(text, start, encoding)),
                  "end": _json(position_of(text, end, encoding))}
        return {"text": edit.text, "newText": edit.text, "range": range_,
                "textDocument": {"uri": uri, "version": version}}


def _params(params: Any) -> tuple[str | None, int | None, types.Position | None]:
    """The method is not in lsprotocol: its params come as pygls's generic objects."""
    try:
        document = params.textDocument
        position = params.position
        version = getattr(document, "version", None)
        return (str(document.uri), version if isinstance(version, int) else None,
                types.Position(int(position.line), int(position.character)))
    except (AttributeError, TypeError, ValueError):
        return None, None, None


def _offset(lines: list[str], line: int, char: int) -> int:
    return sum(len(text) + 1 for text in lines[:line]) + char


def _json(position: types.Position) -> dict[str, int]:
    return {"line": position.line, "character": position.character}
