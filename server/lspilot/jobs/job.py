"""A streaming job: one piece of work that asks the model, with everything around it.

Every feature that streams runs as a job: it gets work-done progress, a lane of
concurrency, the answer relayed as it arrives (coalesced progress and ``lspilot/stream``),
retries and the fresh-key retry after a 401, usage and cost, every way to cancel, and a
wind-down that tells the user how it ended. The answer is relayed with the API key masked
(a model may echo it), so everything made of it (progress, stream, the result, an
explanation, a kept chat, an edit) is too. The feature supplies only its body: a
coroutine that builds requests, calls :meth:`Job.stream` (once or more) and does what is
its own with the answer.

A job is its own asyncio task. Every way to cancel (``$/cancelRequest``, the progress
token's cancel, ``lspilot.cancel``, a newer completion) ends in :meth:`Job.cancel`, which
cancels that task: the upstream connection closes at once. Once the body says it is
applying its result, a cancel no longer interrupts it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from attrs import define, field
from lsprotocol import types

from lspilot import redact
from lspilot import usage as pricing
from lspilot.editor import StreamNotice
from lspilot.errors import LspilotError
from lspilot.jobs.lanes import Lane, Lanes
from lspilot.llm import errors, retry
from lspilot.llm.client import ChatClient, TextStream
from lspilot.llm.endpoint import Endpoint
from lspilot.llm.wire import ChatRequest, CompletionRequest, ToolCall
from lspilot.lost import until_lost
from lspilot.progress import Coalescer
from lspilot.settings import Settings
from lspilot.usage import Meter, Priced, Usage

log = logging.getLogger(__name__)

ModelRequest = ChatRequest | CompletionRequest
T = TypeVar("T")


class State(enum.Enum):
    QUEUED = "queued"
    STREAMING = "streaming"
    APPLYING = "applying"
    FINISHED = "finished"


class CostLimitReached(LspilotError):
    kind = "cost_limit"


# The progress messages editors show as they are sent (docs/protocol.md).
ASKING_THE_MODEL = "Asking the model…"
WRITING_THE_ANSWER = "Writing the answer…"
DECLINED_MESSAGE = "Not applied: you declined it."
WAITING_FOR_REVIEW = "Waiting for your review…"
CANCELLED_UNCHANGED = "Cancelled; nothing was changed."
CANCELLED_EDITS_STAY = "Cancelled; the edits already applied stay (undo reverts them)."


def shown_title(title: str) -> str:
    """A title as a message names it: editors put their own "lspilot:" before messages,
    so the server's never start with one (the progress title keeps it)."""
    return title.removeprefix("lspilot: ")


class EditDeclined(LspilotError):
    """The user said no to an edit lspilot asked them to confirm: the job ends as
    cancelled (their choice, not a failure), with this kind and message."""

    kind = "declined"

    def __init__(self) -> None:
        super().__init__(DECLINED_MESSAGE)


@define(frozen=True, kw_only=True)
class JobSpec:
    title: str  # the progress title, and who failed in a failure message
    command: str  # the `command` of lspilot/stream notifications
    action: str  # their `action`
    uri: str | None
    lane: Lane = "actions"
    client_token: types.ProgressToken | None = None
    # Progress, lspilot/stream and failure messages; inline completions are quiet.
    visible: bool = True
    # Added to every lspilot/stream notification and to the answer (chat's conversation).
    extra: Mapping[str, Any] = field(factory=dict)


class JobEditor(Protocol):
    """What a job asks of whoever it streams to: an LSP editor (lspilot.editor.Editor) or
    an ACP client (lspilot.acp.editor), which turns the stream into ``session/update``."""

    @property
    def supports_progress(self) -> bool: ...

    async def create_progress(self, token: str) -> bool: ...

    def on_progress_cancel(self, token: types.ProgressToken,
                           callback: Callable[[], object]) -> None: ...

    def progress_begin(self, token: types.ProgressToken, title: str, message: str) -> None: ...

    def progress_report(self, token: types.ProgressToken, message: str, *,
                        cancellable: bool = True) -> None: ...

    def progress_end(self, token: types.ProgressToken, message: str) -> None: ...

    def stream(self, notice: StreamNotice) -> None: ...

    def show_message(self, kind: types.MessageType, message: str) -> None: ...


@define(kw_only=True)
class JobContext:
    """What a job needs from the rest of lspilot, handed over as one object."""

    editor: JobEditor
    client: ChatClient
    settings: Settings  # resolved for this job's document (and the local model's address)
    lanes: Lanes
    meter: Meter
    # Runs apiKeyCommand again (after a 401); None when there is no such command.
    refresh_key: Callable[[], Awaitable[str | None]] | None = None
    # Resolves with the cause when an upstream lspilot runs itself dies (lspilot.lost).
    upstream_lost: asyncio.Future[errors.UpstreamError] | None = None


@define(kw_only=True)
class Outcome:
    """What a job's body ended with."""

    text: str
    extra: Mapping[str, Any] = field(factory=dict)  # more fields for the answer
    note: str | None = None  # said after the usual "Done: …" (the tests' outcome)


@define(kw_only=True)
class JobResult:
    status: str  # done | cancelled | failed
    text: str
    usage: Priced | None = None
    error_type: str | None = None
    error_message: str | None = None
    extra: Mapping[str, Any] = field(factory=dict)

    @classmethod
    def failed(cls, error: LspilotError, **extra: Any) -> JobResult:
        return cls(status="failed", text="", error_type=error.kind, error_message=str(error),
                   extra=extra)

    def to_json(self) -> dict[str, Any]:
        error = None
        if self.error_type is not None:
            error = {"type": self.error_type, "message": self.error_message}
        return {"status": self.status, "text": self.text,
                "usage": None if self.usage is None else self.usage.to_json(),
                "error": error, **self.extra}


@define(kw_only=True)
class Streamed:
    text: str
    usage: Priced
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()  # assembled whole, each with an id


Body = Callable[["Job"], Awaitable[Outcome]]


@define(kw_only=True, eq=False)
class Job:
    spec: JobSpec
    context: JobContext
    token: types.ProgressToken = field(factory=lambda: f"lspilot-{uuid.uuid4()}")
    state: State = State.QUEUED
    task: asyncio.Task[JobResult] | None = None
    usage: Priced | None = None  # every stream of the job so far, added up
    _text: list[str] = field(factory=list)  # the current stream's text so far
    _has_progress: bool = False
    _started: float = field(factory=time.monotonic)
    _chars: int = 0
    _cleanups: list[Callable[[], Awaitable[None]]] = field(factory=list)
    _edited: bool = False  # an edit of this job's is in the user's files

    def __attrs_post_init__(self) -> None:
        if self.spec.client_token is not None:
            self.token = self.spec.client_token

    @property
    def settings(self) -> Settings:
        return self.context.settings

    # -- control -----------------------------------------------------------------------
    def start(self, body: Body) -> asyncio.Task[JobResult]:
        self.task = asyncio.get_running_loop().create_task(self._execute(body))
        return self.task

    def cancel(self) -> bool:
        """Stop the job unless its result is already being applied."""
        if self.task is None or self.task.done() or self.state is State.APPLYING:
            return False
        self.task.cancel()
        return True

    # -- for bodies ----------------------------------------------------------------------
    def applying(self) -> None:
        """The answer is complete and its result is on its way: cancels no longer stop it."""
        self.state = State.APPLYING

    def resume(self) -> None:
        """Cancellable again: the result is applied and more work follows (a test run)."""
        self.state = State.STREAMING

    def on_wind_down(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run ``cleanup`` when the job is cancelled or fails (live text put back)."""
        self._cleanups.append(cleanup)

    def report(self, message: str, *, cancellable: bool = True) -> None:
        if self._has_progress:
            self.context.editor.progress_report(self.token, message, cancellable=cancellable)

    def edited(self) -> None:
        """An edit of this job's was applied: a later cancel cannot say nothing changed."""
        self._edited = True

    async def review(self, reply: Awaitable[T]) -> T:
        """Wait for the user to review an edit lspilot asked them to confirm. The
        progress says so, without a Cancel button: the preview is theirs to answer."""
        self.report(WAITING_FOR_REVIEW, cancellable=False)
        try:
            return await reply
        finally:
            self.report("Reviewed.", cancellable=True)

    async def stream(self, request: ModelRequest,
                     on_text: Callable[[str], None] | None = None) -> Streamed:
        """Ask the model and relay its answer; ``on_text`` gets the whole text so far."""
        context = self.context
        limit = self.settings.max_session_cost
        if context.meter.over(limit):
            spent = pricing.format_cost(context.meter.total.cost or 0.0)
            allowed = pricing.format_cost(limit or 0.0)
            raise CostLimitReached(
                f"This session has cost {spent}, past maxSessionCost ({allowed}): "
                "new requests are refused.",
                hint="Raise the setting maxSessionCost, or restart lspilot for a new session.")
        limiter = context.lanes[self.spec.lane]
        if limiter.full:
            self.report(f"Waiting for a free slot ({limiter.limit} actions running)…")
        await limiter.acquire()
        self._text = []
        stream: TextStream | None = None
        try:
            self.state = State.STREAMING
            endpoint = Endpoint.from_settings(self.settings)
            try:
                stream = self._open(request, endpoint)
                await until_lost(self._relay(stream, on_text), context.upstream_lost)
            except errors.AuthenticationFailed:
                # A key from a secret manager may have been rotated: fetch it once more.
                if self._text or context.refresh_key is None:
                    raise
                key = await context.refresh_key()
                if key is None or key == endpoint.api_key:
                    raise
                self.report("The key was refused; trying the key apiKeyCommand gives now…")
                stream = self._open(request, attrs.evolve(endpoint, api_key=key))
                await self._relay(stream, on_text)
        except BaseException as exc:
            # Billed all the same: what arrived, or the prompt of a request the upstream
            # had already received when it was closed.
            if self._text or (isinstance(exc, asyncio.CancelledError) and stream is not None
                              and stream.sent):
                self._count(request, stream, "".join(self._text))
            raise
        finally:
            limiter.release()
        text = "".join(self._text)  # what was relayed: the answer with the key masked
        # A key the model echoes into a call's arguments is masked there too: calls edit
        # files and run commands.
        calls = tuple(attrs.evolve(call, arguments=redact.scrub_json(call.arguments))
                      for call in stream.tool_calls)
        return Streamed(text=text, usage=self._count(request, stream, stream.text),
                        finish_reason=stream.finish_reason, tool_calls=calls)

    # -- the lifecycle -------------------------------------------------------------------
    async def _execute(self, body: Body) -> JobResult:
        self._log("%s started (%s, token %s)", self.spec.action, self.spec.uri or "no document",
                  self.token)
        result: JobResult | None = None
        try:
            await self._open_progress()
            outcome = await body(self)
            result = JobResult(status="done", text=outcome.text, usage=self.usage,
                               extra={**self.spec.extra, **outcome.extra})
            done = self._done_message()
            self._end(f"{done}; {outcome.note}" if outcome.note else done)
        except asyncio.CancelledError:
            result = await self._wind_down(None)
        except LspilotError as exc:
            result = await self._wind_down(exc)
        except Exception as exc:  # a bug of ours must not take the server down
            log.exception("%s crashed", self.spec.title)
            result = await self._wind_down(LspilotError(f"internal error: {exc!r}"))
        finally:
            self.state = State.FINISHED
            self._log_end(result)
        return result

    def _log(self, message: str, *args: Any) -> None:
        """What the user started is logged at info; ghost text and next edits, which run
        at every pause in typing, at debug. Never the prompt, the answer or the key."""
        log.log(logging.INFO if self.spec.visible else logging.DEBUG, message, *args)

    def _log_end(self, result: JobResult | None) -> None:
        outcome = result.status if result is not None else "crashed"
        if result is not None and result.error_type is not None:
            outcome += f" ({result.error_type}: {result.error_message})"
        used = self.usage.describe() if self.usage is not None else "no usage"
        self._log("%s %s (%s): %s, %.1f s", self.spec.action, outcome,
                  self.spec.uri or "no document", used, time.monotonic() - self._started)

    async def _wind_down(self, failure: LspilotError | None) -> JobResult:
        """End a job that did not finish: clean up, tell the user, end progress.

        ``failure`` None means the job was cancelled.
        """
        for cleanup in self._cleanups:
            await cleanup()
        text = "".join(self._text)
        if failure is None:
            self._end(CANCELLED_EDITS_STAY if self._edited else CANCELLED_UNCHANGED)
            return JobResult(status="cancelled", text=text, usage=self.usage,
                             extra=self.spec.extra)
        if isinstance(failure, EditDeclined):
            # The user's own choice: said in the progress end, never as an error.
            self._end(DECLINED_MESSAGE)
            return JobResult(status="cancelled", text=text, usage=self.usage,
                             error_type=failure.kind, error_message=DECLINED_MESSAGE,
                             extra=self.spec.extra)
        message = str(failure)
        if self.spec.visible:
            self.context.editor.show_message(
                types.MessageType.Error, f"{shown_title(self.spec.title)} failed: {message}")
        self._end(f"Failed: {message}")
        return JobResult(status="failed", text=text, usage=self.usage,
                         error_type=failure.kind, error_message=message, extra=self.spec.extra)

    def _open(self, request: ModelRequest, endpoint: Endpoint) -> TextStream:
        client = self.context.client
        if isinstance(request, CompletionRequest):
            return client.stream_completion(request, endpoint, self._on_retry)
        return client.stream(request, endpoint, self._on_retry)

    async def _open_progress(self) -> None:
        if not self.spec.visible:
            return
        editor = self.context.editor
        if self.spec.client_token is not None:
            self._has_progress = True
        elif editor.supports_progress:
            self._has_progress = await editor.create_progress(str(self.token))
        if self._has_progress:
            editor.progress_begin(self.token, self.spec.title, ASKING_THE_MODEL)
            editor.on_progress_cancel(self.token, self.cancel)

    async def _relay(self, stream: TextStream, on_text: Callable[[str], None] | None) -> None:
        """Hand the answer on as it arrives: coalesced progress, stream notifications.

        The progress says the step and how far it is, never the answer's words: a fragment
        of a sentence in a progress bar reads as noise (the text itself streams to the
        editor as ``lspilot/stream``)."""
        visible = self.spec.visible

        def flush(delta: str) -> None:
            if visible:
                self._notify(delta, done=False)
                self.report(f"{WRITING_THE_ANSWER} {self._chars:,} chars")
            if on_text is not None:
                on_text("".join(self._text))

        coalescer = Coalescer(flush)
        # Holds back only what could be the start of a key split across two deltas.
        scrubber = redact.StreamScrubber()
        try:
            async for delta in stream:
                self._chars += len(delta)
                shown = scrubber.feed(delta)
                if shown:
                    self._text.append(shown)
                    coalescer.push(shown)
                # httpx hands over data it has buffered without ever suspending; a stream
                # that fell behind would otherwise hold the loop until it caught up.
                await asyncio.sleep(0)
        finally:
            rest = scrubber.close()
            if rest:
                self._text.append(rest)
                coalescer.push(rest)
            coalescer.close()

    def _count(self, request: ModelRequest, stream: TextStream | None, text: str) -> Priced:
        """The stream's usage, priced, added to the job's and the session's."""
        reported = stream.usage if stream is not None else None
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            used = Usage(reported.prompt_tokens, reported.completion_tokens)
        else:
            calls = stream.tool_calls if stream is not None else ()
            answer = text + "".join(call.name + call.arguments for call in calls)
            used = Usage(pricing.estimate_prompt(_prompt_pieces(request)),
                         pricing.estimate_tokens(answer), estimated=True)
        prices = self.settings.prices
        priced = Priced(used, pricing.cost_of(used, pricing.price_for(request.model, prices)))
        self.context.meter.record(request.model, priced, self.spec.action)
        if self.usage is None:
            self.usage = priced
        else:
            cost = None if self.usage.cost is None and priced.cost is None else (
                (self.usage.cost or 0.0) + (priced.cost or 0.0))
            self.usage = Priced(self.usage.usage + used, cost)
        return priced

    def _on_retry(self, error: errors.UpstreamError, delay: float, attempt: int) -> None:
        self.report(retry.report(error, delay, attempt))

    def _notify(self, delta: str, *, done: bool) -> None:
        self.context.editor.stream(StreamNotice(
            token=self.token, command=self.spec.command, action=self.spec.action,
            uri=self.spec.uri, delta=delta, done=done, extra=self.spec.extra))

    def _end(self, message: str) -> None:
        if not self.spec.visible:
            return
        self._notify("", done=True)
        if self._has_progress:
            self.context.editor.progress_end(self.token, message)

    def _done_message(self) -> str:
        seconds = time.monotonic() - self._started
        if self.usage is not None:
            return f"Done: {self.usage.describe()}, {seconds:.1f} s"
        return f"Done: {self._chars:,} characters in {seconds:.1f} s"


def _prompt_pieces(request: ModelRequest) -> list[str]:
    if isinstance(request, CompletionRequest):
        return [request.prompt, request.suffix or ""]
    pieces = [message.content or "" for message in request.messages]
    # The tools and earlier calls are prompt too: the model reads them all.
    pieces.extend(f"{call.name} {call.arguments}"
                  for message in request.messages for call in message.tool_calls)
    pieces.extend(f"{tool.name} {tool.description} {tool.parameters}"
                  for tool in request.tools or ())
    return pieces
