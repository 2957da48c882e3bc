"""Open documents that stay fast when they are large.

pygls's TextDocument applies every incremental change by re-splitting and rewriting the
whole text: on a 5 MB file each keystroke costs tens of milliseconds. This one keeps the
list of lines and splices only the lines a change touches; the full text is joined
again only when something asks for it (an action, not a keystroke).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace


class LineDocument(TextDocument):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line_list: list[str] | None = None

    @property
    def lines(self) -> Sequence[str]:
        if self._line_list is None:
            self._line_list = self.source.splitlines(keepends=True)
        return self._line_list

    @property
    def source(self) -> str:
        if self._source is None and self._line_list is not None:
            self._source = "".join(self._line_list)
        return super().source

    def _apply_full_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        self._source = change.text
        self._line_list = None

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        lines = self.lines
        assert isinstance(lines, list)
        span = self._position_codec.range_from_client_units(lines, change.range)
        start_line, start_col = span.start.line, span.start.character
        end_line, end_col = span.end.line, span.end.character
        if start_line >= len(lines):  # an edit at the very end of the document
            lines.extend(change.text.splitlines(keepends=True))
            if lines and len(lines) > 1 and not lines[-2].endswith(("\n", "\r")):
                lines[-2:] = ["".join(lines[-2:])]
        else:
            last = min(end_line, len(lines) - 1)
            suffix = lines[last][end_col:] if end_line < len(lines) else ""
            joined = lines[start_line][:start_col] + change.text + suffix
            lines[start_line : last + 1] = joined.splitlines(keepends=True)
        self._source = None


class LineWorkspace(Workspace):
    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LineDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


def line_workspace(old: Workspace) -> LineWorkspace:
    """The same workspace (root, folders, encoding), with fast documents."""
    return LineWorkspace(
        old.root_uri,
        types.TextDocumentSyncKind.Incremental,
        list(old.folders.values()),
        old.position_encoding,
    )
