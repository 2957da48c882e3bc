"""Inline completions: ghost text as the user types (LSP 3.18 ``textDocument/inlineCompletion``).

Asking less: Automatic requests wait ``completionDebounceMs`` for more typing; a newer
request for the same document supersedes the one in flight (it answers empty at once and
its upstream request is closed); a ``$/cancelRequest`` closes the upstream request unless
a newer request is waiting for the same answer. Answering without asking: a cache by the
text around the cursor serves backspacing and retyping, and the rest of a suggestion the
user is typing through; while the model is still producing what the user types, a new
request waits for that answer instead of sending another, but one that has produced
nothing yet only while it is expected to answer soon (``first_text``): a stalled stream is
closed and asked afresh. The local model gets one request at a time (see
``InlineFeature._stop``), and a stall there is waited out: llama.cpp cannot drop it.

Never stale: a request answers nothing once a newer one for its document has come or the
document has changed since it was made; what it got is kept in the cache for its place.

Failures are quiet: an empty list, a line in the log and in ``lspilot.status``; a missing
or refused key is shown once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from attrs import define
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lspilot.backends import backend_for
from lspilot.completion import prompt
from lspilot.completion.cache import KEY_CHARS, SuggestionCache, typed_since
from lspilot.completion.clean import clean
from lspilot.completion.context import CursorContext, Shape, cursor_context
from lspilot.completion.first_text import FirstTextTimes
from lspilot.completion.neighbors import best_snippets
from lspilot.errors import LspilotError
from lspilot.features.base import Feature
from lspilot.jobs.job import Job, JobSpec, Outcome, State
from lspilot.llm.wire import ChatRequest, CompletionRequest
from lspilot.settings import Settings
from lspilot.text import offset_at
from lspilot.workspace import encoding_of

log = logging.getLogger(__name__)

# Characters of code around the cursor per request (most of it before the cursor), and the
# share of it that snippets of other open documents may take.
BUDGET_CHARS = 6000
NEIGHBOR_SHARE = 0.25
# Lines around the cursor whose names pick the neighbouring snippets.
AROUND_CURSOR_CHARS = 1200
# Shown once per session: the user must act on these, and nothing else will tell them.
# How long a cancelled request's upstream answer is kept for the next request to join.
JOIN_GRACE = 0.05
# A client whose capabilities say `experimental.lspilotInlineCompletionLines: true` gets a
# block suggestion's complete lines as they stream, before the answer (docs/protocol.md).
LINES_CAPABILITY = "lspilotInlineCompletionLines"
LINES_NOTIFICATION = "lspilot/inlineCompletionLines"
SHOWN_ONCE = frozenset({"no_api_key", "authentication", "cost_limit", "local_model"})


@define(eq=False)
class Pending:
    """The request in flight for one document, and the requests waiting for its answer."""

    uri: str
    context: CursorContext
    result: asyncio.Future[str | None]
    task: asyncio.Task[None] | None = None
    job: Job | None = None
    partial: str = ""  # the answer so far
    waiters: int = 0
    sent_at: float | None = None  # loop time its upstream request was started
    # Resolved (and replaced) each time more text arrives: what joined requests wait on.
    news: asyncio.Future[None] = attrs.field(
        factory=lambda: asyncio.get_running_loop().create_future())
    # Superseded, but its upstream request runs to its first text (the local model).
    draining: bool = False

    @property
    def streaming(self) -> bool:
        return self.job is not None and not self.result.done()

    def close(self) -> None:
        """Stop it: the upstream request is closed; its waiters answer empty."""
        if self.task is not None:
            self.task.cancel()
        if not self.result.done():
            self.result.set_result(None)

    def text_arrived(self, text: str) -> None:
        self.partial = text
        if not self.news.done():
            self.news.set_result(None)
        self.news = asyncio.get_running_loop().create_future()


@define(eq=False)
class Turn:
    """One editor request: the document version it was made for, and whether a newer
    request for the same document has come since."""

    version: int | None
    superseded: asyncio.Future[None]


class InlineFeature(Feature):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cache = SuggestionCache()
        self.pending: dict[str, Pending] = {}
        self.turns: dict[str, Turn] = {}
        self.first_text = FirstTextTimes()
        self._draining: set[Job] = set()
        self._shown: set[str] = set()

    def register(self, server: LanguageServer) -> None:
        @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION,
                        types.InlineCompletionOptions())
        async def inline_completion(
            ls: LanguageServer, params: types.InlineCompletionParams
        ) -> types.InlineCompletionList:
            """A suggestion at the cursor, or an empty list."""
            automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
            uri, position = params.text_document.uri, params.position
            on_lines = None
            if _wants_lines(ls):
                version = self._version(uri)

                def on_lines(text: str) -> None:
                    # A block's complete lines so far, each time one more is complete: the
                    # editor shows them while the rest streams; the answer has it all.
                    ls.protocol.notify(LINES_NOTIFICATION, {
                        "textDocument": {"uri": uri, "version": version},
                        "position": {"line": position.line, "character": position.character},
                        "text": text})
            suggestion = await self.suggest(uri, position, automatic=automatic,
                                            on_lines=on_lines)
            items = [] if suggestion is None else [
                types.InlineCompletionItem(insert_text=suggestion)]
            return types.InlineCompletionList(items=items)

        @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
        async def completion(ls: LanguageServer,
                             params: types.CompletionParams) -> types.CompletionList:
            """The same suggestion as one completion item, when ``completionItems`` is on."""
            uri = params.text_document.uri
            if not self.services.store.settings_for(uri).completion_items:
                return types.CompletionList(is_incomplete=False, items=[])
            suggestion = await self.suggest(uri, params.position, automatic=True)
            if suggestion is None:
                return types.CompletionList(is_incomplete=True, items=[])
            return types.CompletionList(is_incomplete=True, items=[_item(suggestion,
                                                                         params.position)])

    def document_closed(self, uri: str) -> None:
        pending = self.pending.pop(uri, None)
        if pending is not None:
            pending.close()
        for job in [j for j in self._draining if j.spec.uri == uri]:
            job.cancel()
        self.cache.forget(uri)

    async def shutdown(self) -> None:
        for pending in list(self.pending.values()):
            pending.close()
        for job in list(self._draining):
            job.cancel()

    # -- the engine ----------------------------------------------------------------------
    async def suggest(self, uri: str, position: types.Position, *, automatic: bool,
                      on_lines: Callable[[str], None] | None = None) -> str | None:
        """The suggestion at ``position``; ``on_lines`` gets a block's complete lines as
        they arrive (partial results), before the answer."""
        store = self.services.store
        settings = store.settings_for(uri)
        if not settings.inline_completions or self.services.excluded(uri) is not None:
            return None
        context = self._context(uri, position)
        if context is None:
            return None
        turn = self._turn(uri)
        watcher = None
        if on_lines is not None and context.shape is Shape.BLOCK:
            watcher = asyncio.get_running_loop().create_task(
                self._early_lines(uri, turn, context, on_lines))
        try:
            suggestion = await self._suggest(uri, turn, context, settings, automatic)
        finally:
            if watcher is not None:
                watcher.cancel()
            if self.turns.get(uri) is turn:
                del self.turns[uri]
        if turn.superseded.done() or self._version(uri) != turn.version:
            return None  # for text that is no longer there (it stays in the cache)
        return suggestion

    async def _early_lines(self, uri: str, turn: Turn, context: CursorContext,
                           on_lines: Callable[[str], None]) -> None:
        """While this request's own upstream answer streams, hand its complete lines (as
        the answer will be cleaned) to ``on_lines`` each time there is one more."""
        shown = ""
        while not turn.superseded.done():
            pending = self.pending.get(uri)
            if pending is None or pending.context != context or pending.result.done():
                await asyncio.sleep(0.02)  # not asked yet (debounce), or not this request's
                continue
            so_far = clean(pending.partial, context) or ""
            complete = so_far[: so_far.rfind("\n")] if "\n" in so_far else ""
            if complete.strip() and len(complete) > len(shown) and complete.startswith(shown):
                shown = complete
                on_lines(complete)
            events: list[asyncio.Future[Any]] = [pending.news, pending.result,
                                                 turn.superseded]
            await asyncio.wait(events, return_when=asyncio.FIRST_COMPLETED)

    def _turn(self, uri: str) -> Turn:
        """This request's turn; the older request for the document answers empty at once."""
        older = self.turns.get(uri)
        if older is not None and not older.superseded.done():
            older.superseded.set_result(None)
        turn = Turn(version=self._version(uri),
                    superseded=asyncio.get_running_loop().create_future())
        self.turns[uri] = turn
        return turn

    def _version(self, uri: str) -> int | None:
        document = self.services.workspace.text_documents.get(uri)
        return None if document is None else document.version

    async def _suggest(self, uri: str, turn: Turn, context: CursorContext,
                       settings: Settings, automatic: bool) -> str | None:
        cached = self.cache.get(uri, context.prefix, context.suffix)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        delay = settings.completion_debounce_ms / 1000 if automatic else 0.0
        pending = self.pending.get(uri)
        if pending is not None and pending.streaming and _follows(pending, context):
            joined = loop.time()
            answered = await self._join(pending, context, turn)
            if turn.superseded.done():
                return None
            if answered:
                cached = self.cache.get(uri, context.prefix, context.suffix)
                if cached is not None:
                    return cached
            delay = max(0.0, delay - (loop.time() - joined))  # the wait was its debounce
            pending = self.pending.get(uri)
        if pending is not None:
            pending.close()  # superseded: the user moved on, or it stalled
        pending = Pending(uri=uri, context=context, result=loop.create_future())
        self.pending[uri] = pending
        pending.task = loop.create_task(self._produce(pending, delay))
        return await self._wait(pending, turn)

    async def _wait(self, pending: Pending, turn: Turn) -> str | None:
        """The request's answer, or None at once when a newer request supersedes it."""
        with self._waiting(pending):
            either: list[asyncio.Future[Any]] = [pending.result, turn.superseded]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if turn.superseded.done() or not pending.result.done():
            return None
        return pending.result.result()

    async def _join(self, pending: Pending, context: CursorContext, turn: Turn) -> bool:
        """Wait for the request in flight while it produces what the user has typed; True
        when it answered. One that has produced nothing is waited for only while it is
        expected to answer soon (``FirstTextTimes.patience``), except on the local model,
        where a fresh request would only queue behind it inside llama.cpp."""
        loop = asyncio.get_running_loop()
        local = backend_for(self.services.store.settings_for(pending.uri)).local
        patience = self.first_text.patience(self._upstream(pending.uri))
        with self._waiting(pending):
            while not pending.result.done() and not turn.superseded.done():
                if not _follows(pending, context):
                    return False
                timeout = None
                if not pending.partial and not local and pending.sent_at is not None:
                    timeout = pending.sent_at + patience - loop.time()
                    if timeout <= 0:
                        log.debug("Inline completion: nothing after %.1f s; asking afresh",
                                  loop.time() - pending.sent_at)
                        return False
                events: list[asyncio.Future[Any]] = [pending.result, pending.news,
                                                     turn.superseded]
                await asyncio.wait(events, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
        return pending.result.done()

    @contextlib.contextmanager
    def _waiting(self, pending: Pending) -> Iterator[None]:
        pending.waiters += 1
        try:
            yield
        except asyncio.CancelledError:
            # The editor cancelled this request. Editors cancel the previous request as the
            # next key is typed, just before asking again: the request in flight stays a
            # moment for that next request to join, and is closed when none does.
            if pending.waiters == 1:
                asyncio.get_running_loop().call_later(
                    JOIN_GRACE, lambda: pending.close() if pending.waiters == 0 else None)
            raise
        finally:
            pending.waiters -= 1

    def _upstream(self, uri: str) -> str:
        """Where completions for ``uri`` go: first-text times are kept per upstream."""
        settings = self.services.store.settings_for(uri)
        return f"{settings.base_url} {settings.completion_model or settings.model}"

    async def _produce(self, pending: Pending, delay: float) -> None:
        suggestion = None
        try:
            if delay:
                await asyncio.sleep(delay)  # cancelled by newer typing (Pending.close)
            suggestion = await self._ask(pending)
        except asyncio.CancelledError:
            self._stop(pending)
        finally:
            if self.pending.get(pending.uri) is pending:
                del self.pending[pending.uri]
            if not pending.result.done():
                pending.result.set_result(suggestion)

    async def _ask(self, pending: Pending) -> str | None:
        services, uri, context = self.services, pending.uri, pending.context
        settings = services.store.settings_for(uri)
        try:
            job_context = await services.job_context(uri, quiet=True)
        except LspilotError as exc:
            self._failed(exc.kind, str(exc))
            return None
        # Ghost text that comes after a back-off is ghost text for code already typed past.
        job_context = attrs.evolve(job_context,
                                   settings=attrs.evolve(job_context.settings, max_retries=0))
        # The job's settings name the model as it is reached (the local one by its name).
        ask = job_context.settings
        request = self._request(context, settings, ask.completion_model or ask.model)
        spec = JobSpec(title="lspilot: Complete", command=types.TEXT_DOCUMENT_INLINE_COMPLETION,
                       action="inlineCompletion", uri=uri, lane="completions", visible=False)

        upstream = self._upstream(uri)
        loop = asyncio.get_running_loop()

        async def body(job: Job) -> Outcome:
            def seen(text: str) -> None:
                if not pending.partial and text and pending.sent_at is not None:
                    self.first_text.add(upstream, loop.time() - pending.sent_at)
                pending.text_arrived(text)
                if pending.draining:
                    job.cancel()  # llama.cpp is done with its prompt: nothing more to wait
            streamed = await job.stream(request, on_text=seen)
            return Outcome(text=streamed.text)

        pending.sent_at = loop.time()  # with the job: joining requests measure from here
        job = services.start(spec, job_context, body)
        pending.job = job
        assert job.task is not None
        result = await asyncio.shield(job.task)  # cancelled: _produce stops the job
        if result.status != "done":
            if result.status == "failed":
                self._failed(result.error_type or "internal", result.error_message or "")
            return None
        suggestion = clean(result.text, context)
        log.debug("Inline completion: %r became %r", result.text[:200], suggestion)
        if suggestion is not None:
            self.cache.put(uri, context.prefix, context.suffix, suggestion)
        return suggestion

    def _stop(self, pending: Pending) -> None:
        """Stop the job of a request the user moved on from.

        The local model is the exception while its prompt is being evaluated: llama-cpp-python
        evaluates a prompt to its end even when its request is closed, and closing it would
        free the lane (one slot there) for the next request, which would only wait behind it
        inside llama.cpp. Kept to its first text, it holds the lane, and newer requests wait
        in lspilot, where newer typing drops them without their ever being sent.
        """
        job = pending.job
        if job is None:
            return
        local = backend_for(self.services.store.settings_for(pending.uri)).local
        if local and job.state is State.STREAMING and not pending.partial and job.task:
            pending.draining = True
            self._draining.add(job)
            job.task.add_done_callback(lambda _: self._draining.discard(job))
        else:
            job.cancel()

    def _request(self, context: CursorContext, settings: Settings,
                 model: str) -> ChatRequest | CompletionRequest:
        max_tokens = settings.completion_max_tokens
        if context.shape is Shape.LINE:
            max_tokens = min(max_tokens, prompt.LINE_MAX_TOKENS)
        snippets = best_snippets(context.prefix[-AROUND_CURSOR_CHARS:],
                                 self._neighbours(context), int(BUDGET_CHARS * NEIGHBOR_SHARE))
        backend = backend_for(settings)
        local = backend.local
        style = settings.completion_style
        if style == "auto":
            style = backend.auto_completion_style
        if style == "fim":
            tokens = backend.fim_tokens
            text, suffix = prompt.fim_prompt(context, snippets, tokens)
            if local and tokens is None:
                # llama.cpp appends a `suffix` to its output instead of infilling: for a
                # model whose format lspilot does not know, continue the code before.
                suffix = None
            return CompletionRequest(
                model=model, prompt=text, suffix=suffix, max_tokens=max_tokens,
                temperature=settings.temperature if settings.temperature is not None else 0.2,
                top_p=settings.top_p, stop=prompt.fim_stop(context))
        return ChatRequest(model=model, messages=prompt.chat_messages(context, snippets),
                           max_tokens=max_tokens, temperature=settings.temperature,
                           top_p=settings.top_p, stop=prompt.CHAT_STOP)

    def _context(self, uri: str, position: types.Position) -> CursorContext | None:
        document = self.services.workspace.text_documents.get(uri)
        if document is None:
            return None
        offset = offset_at(document.lines, position, encoding_of(self.services.workspace))
        return cursor_context(document.source, offset,
                              language=document.language_id or Path(document.path).suffix[1:],
                              path=Path(document.path).name, budget_chars=BUDGET_CHARS)

    def _neighbours(self, context: CursorContext) -> list[tuple[str, str]]:
        documents = self.services.workspace.text_documents.values()
        return [(Path(d.path).name, d.source) for d in documents
                if Path(d.path).name != context.path and d.language_id == context.language
                and self.services.excluded(d.uri) is None]

    def _failed(self, kind: str, message: str) -> None:
        if kind in SHOWN_ONCE and kind not in self._shown:
            self._shown.add(kind)
            log.warning("Inline completions: %s", message)
            self.services.editor.show_message(types.MessageType.Warning,
                                              f"Completions: {message}")
        else:
            log.info("Inline completion failed (%s): %s", kind, message)


def _wants_lines(ls: LanguageServer) -> bool:
    """Whether the client asked for a block's lines early (experimental capability)."""
    experimental = ls.client_capabilities.experimental
    return isinstance(experimental, dict) and experimental.get(LINES_CAPABILITY) is True


def _follows(pending: Pending, context: CursorContext) -> bool:
    """Whether the user is typing what the request in flight is producing."""
    if pending.context.suffix != context.suffix:
        return False
    typed = typed_since(pending.context.prefix[-KEY_CHARS:], context.prefix[-KEY_CHARS:])
    if not typed:
        return False
    # Cleaned as its answer will be: for a block, the line break and indent it supplies at
    # the end of the opening line; within a line, the line.
    so_far = clean(pending.partial, pending.context) or ""
    return so_far.startswith(typed) or typed.startswith(so_far)


def _item(suggestion: str, position: types.Position) -> types.CompletionItem:
    first = suggestion.strip().split("\n", 1)[0]
    return types.CompletionItem(
        label=first[:60] or suggestion[:60],
        kind=types.CompletionItemKind.Text,
        detail="lspilot",
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(position, position), new_text=suggestion),
    )
