"""Open documents that stay fast when they are large.

pygls's TextDocument applies every incremental change by re-splitting and rewriting the
whole text: on a 5 MB file each keystroke costs tens of milliseconds. This one keeps the
list of lines and splices only the lines a change touches; the full text is joined
again only when something asks for it (an action, not a keystroke). Lines end where LSP
ends them (lspilot.text), not where ``str.splitlines`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from lspilot.text import split_lines


class LineDocument(TextDocument):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line_list: list[str] | None = None

    @property
    def lines(self) -> Sequence[str]:
        if self._line_list is None:
            self._line_list = split_lines(self.source)
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
        range_ = change.range
        if (range_.end.line, range_.end.character) < (range_.start.line,
                                                      range_.start.character):
            # Reversed: normalised as vscode-languageserver does. Taken as given, the
            # text between the two ends was kept on both sides of the new text.
            range_ = types.Range(start=range_.end, end=range_.start)
        span = self._position_codec.range_from_client_units(lines, range_)
        start_line, start_col = span.start.line, span.start.character
        end_line, end_col = span.end.line, span.end.character
        count = len(lines)
        if start_line >= count:  # an insertion after the last line
            first, last, prefix, suffix = count, count - 1, "", ""
        else:
            first, last = start_line, min(end_line, count - 1)
            prefix = lines[first][:start_col]
            suffix = lines[last][end_col:] if end_line < count else ""
        # Split again one line more on each side: a "\r" on one side of the edit's edge and
        # a "\n" on the other are one line end.
        low, high = max(first - 1, 0), min(last + 2, count)
        segment = ("".join(lines[low:first]) + prefix + change.text + suffix
                   + "".join(lines[last + 1 : high]))
        lines[low:high] = split_lines(segment)
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
