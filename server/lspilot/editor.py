"""The editor as an action sees it: the few LSP calls a run makes, over pygls.

Requests to the client are shielded: cancelling a run while it waits for the editor's
reply must not cancel pygls's own future (pygls issue 621), and a reply that never comes
is given up on after a time-out instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from attrs import define, field
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

STREAM_NOTIFICATION = "lspilot/stream"
# How long we wait for the editor to answer applyEdit/showDocument/progress create.
CLIENT_REPLY_TIMEOUT = 30.0
# An edit the user is asked to confirm waits for them to read it.
REVIEW_TIMEOUT = 900.0

T = TypeVar("T")


@define(frozen=True, kw_only=True)
class StreamNotice:
    """One ``lspilot/stream`` notification: new text of a job, or its end (docs/protocol.md)."""

    token: types.ProgressToken | None
    command: str
    action: str
    uri: str | None
    delta: str
    done: bool
    extra: Mapping[str, Any] = field(factory=dict)  # chat's `conversation`

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "command": self.command, "action": self.action,
                "uri": self.uri, "delta": self.delta, "done": self.done, **self.extra}


def _capability(caps: Any, path: str) -> Any:
    for name in path.split("."):
        caps = getattr(caps, name, None)
        if caps is None:
            return None
    return caps


class Editor:
    def __init__(self, server: LanguageServer) -> None:
        self._server = server

    # -- what the client can do -------------------------------------------------------
    def _has(self, path: str) -> Any:
        return _capability(self._server.client_capabilities, path)

    @property
    def supports_progress(self) -> bool:
        return bool(self._has("window.work_done_progress"))

    @property
    def supports_show_document(self) -> bool:
        return bool(self._has("window.show_document.support"))

    @property
    def supports_document_changes(self) -> bool:
        return bool(self._has("workspace.workspace_edit.document_changes"))

    @property
    def supports_create_file(self) -> bool:
        ops = self._has("workspace.workspace_edit.resource_operations") or []
        return self.supports_document_changes and types.ResourceOperationKind.Create in ops

    @property
    def supports_change_annotations(self) -> bool:
        return bool(self._has("workspace.workspace_edit.change_annotation_support"))

    # -- progress ---------------------------------------------------------------------
    async def create_progress(self, token: str) -> bool:
        try:
            await self._reply(self._server.work_done_progress.create_async(token))
        except Exception as exc:  # the client refused or never answered: run without
            log.info("The editor did not create progress %s: %s", token, exc)
            return False
        return True

    def on_progress_cancel(
        self, token: types.ProgressToken, callback: Callable[[], object]
    ) -> None:
        future = self._server.work_done_progress.tokens.get(token)
        if future is not None:
            future.add_done_callback(lambda f: callback() if f.cancelled() else None)

    def progress_begin(self, token: types.ProgressToken, title: str, message: str) -> None:
        self._server.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(title=title, message=message, cancellable=True),
        )

    def progress_report(self, token: types.ProgressToken, message: str, *,
                        cancellable: bool = True) -> None:
        self._server.work_done_progress.report(
            token, types.WorkDoneProgressReport(message=message, cancellable=cancellable)
        )

    def progress_end(self, token: types.ProgressToken, message: str) -> None:
        self._server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
        # pygls never forgets tokens (issue 607); we do, so the map cannot grow forever.
        self._server.work_done_progress.tokens.pop(token, None)

    # -- text and documents -----------------------------------------------------------
    def stream(self, notice: StreamNotice) -> None:
        self._server.protocol.notify(STREAM_NOTIFICATION, notice.to_json())

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """One of lspilot's own notifications (``lspilot/toolCall``)."""
        self._server.protocol.notify(method, params)

    def show_message(self, kind: types.MessageType, message: str) -> None:
        self._server.window_show_message(types.ShowMessageParams(type=kind, message=message))

    async def apply_edit(
        self, edit: types.WorkspaceEdit, label: str, *, review: bool = False
    ) -> types.ApplyWorkspaceEditResult:
        """``review``: the user is asked to confirm it, so the answer may take minutes."""
        params = types.ApplyWorkspaceEditParams(edit=edit, label=label)
        wait = REVIEW_TIMEOUT if review else CLIENT_REPLY_TIMEOUT
        try:
            result: types.ApplyWorkspaceEditResult = await self._reply(
                self._server.workspace_apply_edit_async(params), wait
            )
            return result
        except TimeoutError:
            return types.ApplyWorkspaceEditResult(
                applied=False,
                failure_reason=f"the editor did not answer within {wait:g} s",
            )
        except JsonRpcException as exc:
            # An error reply is a refusal too: eglot answers one when the user says no to
            # "Server wants to edit ... Proceed?" (with a positive code: match any error).
            log.info("The editor refused the edit: %s (code %s)", exc.message, exc.code)
            return types.ApplyWorkspaceEditResult(
                applied=False, failure_reason=f"the editor refused it ({exc.message or exc.code})")

    async def ask(self, message: str, choices: list[str], *, wait: float = 300.0) -> str | None:
        """A question with buttons (``window/showMessageRequest``); None when unanswered."""
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Warning, message=message,
            actions=[types.MessageActionItem(title=c) for c in choices])
        try:
            answer = await asyncio.wait_for(
                asyncio.shield(self._server.window_show_message_request_async(params)), wait)
        except Exception as exc:  # not answered, or the editor cannot ask
            log.info("The editor did not answer %r: %r", message, exc)
            return None
        return answer.title if answer is not None else None

    async def show_document(self, uri: str, *, take_focus: bool = True) -> bool:
        if not self.supports_show_document:
            return False
        params = types.ShowDocumentParams(uri=uri, take_focus=take_focus)
        try:
            result = await self._reply(self._server.window_show_document_async(params))
        except Exception as exc:
            log.info("The editor did not show %s: %s", uri, exc)
            return False
        return bool(result and result.success)

    async def _reply(self, request: Any, wait: float = CLIENT_REPLY_TIMEOUT) -> Any:
        return await asyncio.wait_for(asyncio.shield(request), wait)
