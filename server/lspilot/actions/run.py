"""One action's life: prompt, stream, fan-out, result, and every way it can end.

A run is its own asyncio task. Every way to cancel (``$/cancelRequest``, the progress
token's cancel, ``lspilot.cancel``) ends in :meth:`ActionRun.cancel`, which cancels that
task: the upstream connection closes at once and nothing is applied. Once the answer
is complete and the edit is on its way, a cancel no longer interrupts it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field
from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument, Workspace

from lspilot.actions import results
from lspilot.actions.live import LiveRewrite
from lspilot.actions.prompts import PromptInput, build_messages
from lspilot.actions.registry import Action
from lspilot.actions.results import ActionFailed, EditTarget
from lspilot.actions.testfiles import TestTarget, choose_test_file, ensure_inside
from lspilot.editor import Editor
from lspilot.errors import LspilotError
from lspilot.llm import errors
from lspilot.llm.client import ChatClient, ChatStream, Endpoint
from lspilot.llm.wire import ChatMessage, ChatRequest, Usage
from lspilot.lost import until_lost
from lspilot.progress import Coalescer
from lspilot.settings import Settings

log = logging.getLogger(__name__)


class State(enum.Enum):
    QUEUED = "queued"
    STREAMING = "streaming"
    APPLYING = "applying"
    FINISHED = "finished"


@define(frozen=True, kw_only=True)
class RunRequest:
    action: Action
    command: str
    uri: str
    range: types.Range
    instruction: str | None = None
    diagnostics: tuple[types.Diagnostic, ...] = ()
    client_token: types.ProgressToken | None = None


@define(kw_only=True)
class RunResult:
    status: str  # done | cancelled | failed
    text: str
    usage: Usage | None = None
    error_type: str | None = None
    error_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        usage = None
        if self.usage is not None:
            usage = {
                "promptTokens": self.usage.prompt_tokens,
                "completionTokens": self.usage.completion_tokens,
                "totalTokens": self.usage.total_tokens,
            }
        error = None
        if self.error_type is not None:
            error = {"type": self.error_type, "message": self.error_message}
        return {"status": self.status, "text": self.text, "usage": usage, "error": error}


class Limiter:
    """At most ``limit`` upstream requests at once; the rest wait their turn in order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def full(self) -> bool:
        return self.active >= self.limit

    async def acquire(self) -> None:
        if not self.full and not self._waiters:
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a slot as we were cancelled: pass it on
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and not self.full:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


@define(kw_only=True)
class RunContext:
    """What a run needs from the server, handed over as one object."""

    editor: Editor
    client: ChatClient
    settings: Settings
    limiter: Limiter
    workspace: Workspace
    cache_dir: Path
    # Runs apiKeyCommand again (after a 401); None when there is no such command.
    refresh_key: Callable[[], Awaitable[str | None]] | None = None
    # Resolves with the cause when an upstream lspilot runs itself dies (lspilot.lost).
    upstream_lost: asyncio.Future[errors.UpstreamError] | None = None


@define(kw_only=True)
class _Snapshot:
    """The document as it was when the action started."""

    document: TextDocument
    version: int | None
    selected: str
    line_prefix: str
    first_line: int
    last_line: int


@define(kw_only=True)
class ActionRun:
    request: RunRequest
    context: RunContext
    token: types.ProgressToken = field(factory=lambda: f"lspilot-{uuid.uuid4()}")
    state: State = State.QUEUED
    task: asyncio.Task[RunResult] | None = None
    _stream_text: list[str] = field(factory=list)
    _has_progress: bool = False
    _started: float = field(factory=time.monotonic)

    def __attrs_post_init__(self) -> None:
        if self.request.client_token is not None:
            self.token = self.request.client_token

    # -- control -----------------------------------------------------------------------
    def start(self) -> asyncio.Task[RunResult]:
        self.task = asyncio.get_running_loop().create_task(self._execute())
        return self.task

    def cancel(self) -> bool:
        """Stop the run unless its result is already being applied."""
        if self.task is None or self.task.done() or self.state is State.APPLYING:
            return False
        self.task.cancel()
        return True

    # -- the lifecycle -------------------------------------------------------------------
    async def _execute(self) -> RunResult:
        action = self.request.action
        usage: Usage | None = None
        live: LiveRewrite | None = None
        try:
            await self._open_progress()
            snapshot = self._snapshot()
            test_target = self._test_target() if action.apply == "testFile" else None
            messages = build_messages(action, self._prompt_input(snapshot, test_target))
            if action.apply == "replace" and self.context.settings.live_refactor:
                live = LiveRewrite(
                    self.context.editor, self.request.uri, self.request.range,
                    snapshot.selected, snapshot.line_prefix,
                    is_streaming=lambda: self.state is State.STREAMING,
                    encoding=_encoding_name(self.context.workspace.position_encoding),
                )
            stream, chars = await self._stream(messages, live)
            text, usage = stream.text, stream.usage
            self.state = State.APPLYING
            if live is not None:
                await live.finish(text)
            else:
                await self._apply(snapshot, test_target, text)
            result = RunResult(status="done", text=text, usage=usage)
            self._end(self._done_message(usage, chars))
        except asyncio.CancelledError:
            result = await self._wind_down(live, None)
        except LspilotError as exc:
            result = await self._wind_down(live, (exc.kind, str(exc)), usage)
        except Exception as exc:  # a bug of ours must not take the server down
            log.exception("The action %s crashed", action.id)
            result = await self._wind_down(live, ("internal", f"internal error: {exc!r}"))
        finally:
            self.state = State.FINISHED
        return result

    async def _wind_down(
        self,
        live: LiveRewrite | None,
        failure: tuple[str, str] | None,
        usage: Usage | None = None,
    ) -> RunResult:
        """End a run that did not finish: put live text back, tell the user, end progress.

        ``failure`` is (error type, message); None means the run was cancelled.
        """
        if live is not None:
            await live.restore()
        text = "".join(self._stream_text)
        if failure is None:
            self._end("Cancelled; nothing was changed.")
            return RunResult(status="cancelled", text=text)
        kind, message = failure
        title = self.request.action.title
        self.context.editor.show_message(types.MessageType.Error, f"{title} failed: {message}")
        self._end(f"Failed: {message}")
        return RunResult(status="failed", text=text, usage=usage,
                         error_type=kind, error_message=message)

    async def _open_progress(self) -> None:
        editor = self.context.editor
        if self.request.client_token is not None:
            self._has_progress = True
        elif editor.supports_progress:
            self._has_progress = await editor.create_progress(str(self.token))
        if self._has_progress:
            editor.progress_begin(self.token, self.request.action.title, "Asking the model…")
            editor.on_progress_cancel(self.token, self.cancel)

    async def _stream(
        self, messages: tuple[ChatMessage, ...], live: LiveRewrite | None
    ) -> tuple[ChatStream, int]:
        context, action = self.context, self.request.action
        settings = context.settings
        request = ChatRequest(
            model=action.model or settings.model,
            messages=messages,
            temperature=_first(action.temperature, settings.temperature),
            top_p=_first(action.top_p, settings.top_p),
            max_tokens=_first(action.max_tokens, settings.max_tokens),
            stop=_first(action.stop, settings.stop),
        )
        if context.limiter.full:
            self._report(f"Waiting for a free slot ({context.limiter.limit} actions running)…")
        await context.limiter.acquire()
        try:
            self.state = State.STREAMING
            endpoint = endpoint_for(settings)
            try:
                return await until_lost(
                    self._relay(context.client.stream(request, endpoint, self._on_retry), live),
                    context.upstream_lost)
            except errors.AuthenticationFailed:
                # A key from a secret manager may have been rotated: fetch it once more.
                if self._stream_text or context.refresh_key is None:
                    raise
                key = await context.refresh_key()
                if key is None or key == endpoint.api_key:
                    raise
                self._report("The key was refused; trying the key apiKeyCommand gives now…")
                endpoint = attrs.evolve(endpoint, api_key=key)
                return await self._relay(context.client.stream(request, endpoint, self._on_retry),
                                         live)
        finally:
            context.limiter.release()

    async def _relay(self, stream: ChatStream, live: LiveRewrite | None) -> tuple[ChatStream, int]:
        """Hand the answer on as it arrives: coalesced progress, stream notifications."""
        chars = 0
        tail = ""
        newest = ""

        def flush(delta: str) -> None:
            nonlocal newest, tail
            tail = (tail + delta)[-1000:]  # the newest line is near the end
            lines = [
                line for line in tail.splitlines()
                if line.strip() and not line.lstrip().startswith(("```", "~~~"))
            ]
            newest = lines[-1].strip()[:80] if lines else newest
            self.context.editor.stream(self.token, self.request.command, self.request.action.id,
                                       self.request.uri, delta, False)
            self._report(f"{newest} ({chars:,} chars)")
            if live is not None:
                live.update("".join(self._stream_text))

        coalescer = Coalescer(flush)
        try:
            async for delta in stream:
                chars += len(delta)
                self._stream_text.append(delta)
                coalescer.push(delta)
                # httpx hands over data it has buffered without ever suspending; a stream
                # that fell behind would otherwise hold the loop until it caught up.
                await asyncio.sleep(0)
        finally:
            coalescer.close()
        return stream, chars

    def _on_retry(self, error: errors.UpstreamError, delay: float, attempt: int) -> None:
        self._report(f"{error.message} Retrying in {delay:.0f} s (attempt {attempt + 1})…")

    async def _apply(self, snapshot: _Snapshot, test: TestTarget | None, answer: str) -> None:
        apply = self.request.action.apply
        if apply == "show":
            await self._show_explanation(snapshot, answer)
        elif apply == "replace":
            await self._apply_replacement(snapshot, answer)
        else:
            assert test is not None
            await self._apply_tests(snapshot, test, answer)

    # -- results -----------------------------------------------------------------------
    async def _apply_replacement(self, snapshot: _Snapshot, answer: str) -> None:
        document = snapshot.document
        new_text = results.refactored_text(answer, snapshot.selected, snapshot.line_prefix)
        if document.version != snapshot.version:
            raise ActionFailed(
                "conflict",
                "The document changed while the answer was being written, so nothing was "
                "applied. Run the action again on the current text.",
            )
        editor = self.context.editor
        edit = results.replacement_edit(
            _edit_target(document),
            self.request.range,
            new_text,
            document_changes=editor.supports_document_changes,
            confirm=self._confirm,
        )
        await self._send_edit(edit)

    async def _apply_tests(self, snapshot: _Snapshot, test: TestTarget, answer: str) -> None:
        editor, workspace = self.context.editor, self.context.workspace
        test_uri = from_fs_path(str(test.path)) or f"file://{test.path}"
        existing: EditTarget | None = None
        open_doc = workspace.text_documents.get(test_uri)
        if open_doc is not None:
            existing = _edit_target(open_doc)
        else:
            if not test.path.exists() and not editor.supports_create_file:
                # The editor cannot create files through LSP (stock Neovim does not say it
                # can): make the empty file ourselves, inside the workspace, then edit it.
                test.path.parent.mkdir(parents=True, exist_ok=True)
                test.path.touch()
            if test.path.exists():
                on_disk = TextDocument(test_uri, source=test.path.read_text(encoding="utf-8"),
                                       position_codec=workspace.position_codec)
                existing = attrs.evolve(_edit_target(on_disk), version=None)
        edit = results.test_file_edit(
            test,
            answer,
            existing,
            test_uri,
            document_changes=editor.supports_document_changes,
            confirm=self._confirm,
        )
        await self._send_edit(edit)
        await editor.show_document(test_uri)

    async def _show_explanation(self, snapshot: _Snapshot, answer: str) -> None:
        editor = self.context.editor
        how = self.context.settings.explain_show
        if how == "none" or not answer.strip():
            return
        if how in ("auto", "document") and editor.supports_show_document:
            path = results.explanation_path(
                self.context.cache_dir / "explanations",
                Path(snapshot.document.path).name, snapshot.first_line, snapshot.last_line,
            )
            _write_private(path, answer if answer.endswith("\n") else answer + "\n")
            uri = from_fs_path(str(path)) or f"file://{path}"
            if await editor.show_document(uri, take_focus=False):
                return
        editor.show_message(types.MessageType.Info, answer)

    async def _send_edit(self, edit: types.WorkspaceEdit) -> None:
        reply = await self.context.editor.apply_edit(edit, self.request.action.title)
        if not reply.applied:
            reason = reply.failure_reason or "no reason given"
            raise ActionFailed("edit_rejected", f"The editor did not apply the edit: {reason}.")

    @property
    def _confirm(self) -> bool:
        editor = self.context.editor
        return self.context.settings.confirm_edits and editor.supports_change_annotations

    # -- inputs ------------------------------------------------------------------------
    def _snapshot(self) -> _Snapshot:
        document = self.context.workspace.get_text_document(self.request.uri)
        lines = document.lines
        start = document.position_from_client_units(self.request.range.start)
        end = document.position_from_client_units(self.request.range.end)
        selected = document.text_in_client_range(self.request.range)
        first_line_text = lines[start.line] if start.line < len(lines) else ""
        last_line = end.line if end.character > 0 or end.line == start.line else end.line - 1
        return _Snapshot(
            document=document,
            version=document.version,
            selected=selected,
            line_prefix=first_line_text[: start.character],
            first_line=start.line,
            last_line=max(start.line, last_line),
        )

    def _test_target(self) -> TestTarget:
        source = Path(to_fs_path(self.request.uri) or "")
        root = self._root_for(source)
        target = choose_test_file(source, self._language(), root)
        ensure_inside(target.path, root)
        return target

    def _root_for(self, source: Path) -> Path:
        folders = [Path(to_fs_path(f.uri) or "") for f in self.context.workspace.folders.values()]
        root_path = self.context.workspace.root_path
        if root_path:
            folders.append(Path(root_path))
        inside = [f for f in folders if f == source or f in source.parents]
        if inside:
            return max(inside, key=lambda f: len(f.parts))  # the innermost folder
        return source.parent

    def _language(self) -> str:
        document = self.context.workspace.get_text_document(self.request.uri)
        return document.language_id or Path(document.path).suffix.lstrip(".")

    def _prompt_input(self, snapshot: _Snapshot, test: TestTarget | None) -> PromptInput:
        source = Path(snapshot.document.path)
        root = self._root_for(source)
        try:
            file_name = str(source.relative_to(root))
        except ValueError:
            file_name = source.name
        test_name = None
        if test is not None:
            try:
                test_name = str(test.path.relative_to(root))
            except ValueError:
                test_name = test.path.name
        return PromptInput(
            language=self._language(),
            file_name=file_name,
            lines=tuple(snapshot.document.lines),
            selection=snapshot.selected,
            first_line=snapshot.first_line,
            last_line=snapshot.last_line,
            diagnostics=tuple(_describe_diagnostic(d) for d in self.request.diagnostics),
            instruction=self.request.instruction,
            test_file=test_name,
            context_lines=self.context.settings.context_lines,
            budget_chars=self.context.settings.context_budget_chars,
        )

    # -- progress ------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        if self._has_progress:
            self.context.editor.progress_report(self.token, message)

    def _end(self, message: str) -> None:
        editor = self.context.editor
        editor.stream(self.token, self.request.command, self.request.action.id,
                      self.request.uri, "", True)
        if self._has_progress:
            editor.progress_end(self.token, message)

    def _done_message(self, usage: Usage | None, chars: int) -> str:
        seconds = time.monotonic() - self._started
        if usage is not None:
            return (f"Done: {usage.prompt_tokens:,} tokens in, {usage.completion_tokens:,} out, "
                    f"{seconds:.1f} s")
        return f"Done: {chars:,} characters in {seconds:.1f} s"


def _write_private(path: Path, text: str) -> None:
    """Explanations may quote private code: only the user may read them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def _edit_target(document: TextDocument) -> EditTarget:
    lines = document.lines
    if not lines:
        end = types.Position(0, 0)
    elif lines[-1].endswith(("\n", "\r")):
        end = types.Position(len(lines), 0)
    else:
        end = document.position_codec.position_to_client_units(
            lines, types.Position(len(lines) - 1, len(lines[-1]))
        )
    return EditTarget(uri=document.uri, version=document.version, text=document.source, end=end)


def _encoding_name(encoding: object) -> str:
    return str(getattr(encoding, "value", encoding) or "utf-16")


def endpoint_for(settings: Settings) -> Endpoint:
    return Endpoint(
        base_url=settings.base_url,
        api_key=settings.api_key.reveal() if settings.api_key else None,
        max_retries=settings.max_retries,
        retry_base_seconds=settings.retry_base_seconds,
        connect_timeout=settings.connect_timeout,
        idle_timeout=settings.idle_timeout,
        max_response_chars=settings.max_response_chars,
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _describe_diagnostic(diagnostic: types.Diagnostic) -> str:
    severity = {1: "error", 2: "warning", 3: "info", 4: "hint"}.get(
        int(diagnostic.severity or 1), "error"
    )
    source = f" ({diagnostic.source})" if diagnostic.source else ""
    return f"- line {diagnostic.range.start.line + 1}: {severity}: {diagnostic.message}{source}"

