"""Live mode: the selection is rewritten line by line as the answer streams.

Edits are unversioned (our own edits move the version on); the region we own starts
where the selection started and ends where our last text ended. On cancel or failure
the original text is put back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lsprotocol import types

from lspilot.actions import results
from lspilot.editor import Editor
from lspilot.edits import EditTarget, fit_to_selection, replacement_edit
from lspilot.text import end_after


class LiveRewrite:
    def __init__(
        self,
        editor: Editor,
        uri: str,
        selection: types.Range,
        selected: str,
        line_prefix: str,
        is_streaming: Callable[[], bool],
        encoding: str = "utf-16",
    ) -> None:
        self._encoding = encoding
        self._editor = editor
        self._uri = uri
        self._region = selection
        self._original = selected
        self._line_prefix = line_prefix
        self._is_streaming = is_streaming
        self._written = selected
        self._pending: str | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def update(self, answer_so_far: str) -> None:
        """Called with the answer so far; writes its complete code lines, one edit at a time."""
        lines = complete_code_lines(answer_so_far)
        if lines is None:
            return
        self._pending = lines
        if self._idle.is_set():
            self._idle.clear()
            asyncio.get_running_loop().create_task(self._drain())

    async def finish(self, answer: str) -> None:
        await self._idle.wait()
        await self._write(results.refactored_text(answer, self._original, self._line_prefix))

    async def restore(self) -> None:
        await self._idle.wait()
        if self._written != self._original:
            await self._write(self._original)

    async def _drain(self) -> None:
        try:
            while self._pending is not None and self._is_streaming():
                text, self._pending = self._pending, None
                fitted = fit_to_selection(text, self._original, self._line_prefix)
                if fitted != self._written:
                    await self._write(fitted)
        finally:
            self._idle.set()

    async def _write(self, text: str) -> None:
        target = EditTarget(uri=self._uri, version=None, text="", end=self._region.end)
        edit = replacement_edit(target, self._region, text,
                                        document_changes=True, confirm=False)
        reply = await self._editor.apply_edit(edit, "lspilot (live)")
        if reply.applied:
            self._written = text
            self._region = types.Range(start=self._region.start,
                                       end=end_after(self._region.start, text, self._encoding))


def complete_code_lines(answer: str) -> str | None:
    """The code lines that are complete so far, once a code block has begun."""
    start = answer.find("```")
    if start == -1:
        return None
    body_start = answer.find("\n", start)
    if body_start == -1:
        return None
    body = answer[body_start + 1 :]
    end = body.find("```")
    if end != -1:
        body = body[:end]
    cut = body.rfind("\n")
    return body[: cut + 1] if cut != -1 else None
