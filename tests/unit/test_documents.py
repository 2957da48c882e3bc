"""The line-splicing document: the text and lines an LSP editor has, after any edits.

The reference here is written from the LSP spec, independently of lspilot.text: a line
ends at "\n", "\r\n" or "\r" only (pygls's documents also split at form feed, U+2028
and the rest of str.splitlines's breaks, which LSP editors do not).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from lspilot.documents import LineDocument, line_workspace

TEXT = st.lists(st.sampled_from(["a", "b", " ", "\n", "\r\n", "\r", "é", "😀", "世", "\f",
                                 "\u2028", "\x85", "\v", "\x1c"]),
               max_size=40).map("".join)


def lsp_lines(text: str) -> list[str]:
    """The spec's lines: cut after each "\r\n", "\n" or a "\r" not followed by "\n"."""
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\n" or (text[i] == "\r" and text[i + 1 : i + 2] != "\n"):
            lines.append(text[start : i + 1])
            start = i + 1
        i += 1
    if start < len(text):
        lines.append(text[start:])
    return lines


def lsp_offset(text: str, position: types.Position, encoding: str) -> int:
    """The spec's offset of a position: past the line's end means the line's end."""
    lines = lsp_lines(text)
    if position.line >= len(lines):
        return len(text)
    start = sum(len(line) for line in lines[: position.line])
    body = lines[position.line].rstrip("\r\n")
    encoded = {"utf-8": body.encode(), "utf-16": body.encode("utf-16-le"),
               "utf-32": body.encode("utf-32-le")}[encoding]
    width = {"utf-8": 1, "utf-16": 2, "utf-32": 4}[encoding]
    codec = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}[encoding]
    prefix = encoded[: position.character * width].decode(codec, errors="ignore")
    return start + len(prefix)


def client_position(lines, line_index: int, fraction: float, encoding: str) -> types.Position:
    if line_index >= len(lines):
        return types.Position(len(lines), 0)
    line = lines[line_index].rstrip("\r\n")
    prefix = line[: int(len(line) * fraction)]
    units = {"utf-8": len(prefix.encode()), "utf-32": len(prefix),
             "utf-16": len(prefix.encode("utf-16-le")) // 2}[encoding]
    return types.Position(line_index, units)


@settings(max_examples=400, deadline=None)
@given(
    text=TEXT,
    edits=st.lists(st.tuples(st.integers(0, 12), st.floats(0, 1), st.integers(0, 12),
                             st.floats(0, 1), TEXT), max_size=6),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_same_text_and_lines_as_the_lsp_spec_after_any_edits(text, edits, encoding):
    codec = PositionCodec(encoding=types.PositionEncodingKind(encoding))
    ours = LineDocument("file:///a.py", source=text, position_codec=codec)
    expected = text
    assert list(ours.lines) == lsp_lines(expected)
    for line_a, frac_a, line_b, frac_b, new_text in edits:
        lines = lsp_lines(expected)
        a = client_position(lines, min(line_a, len(lines)), frac_a, encoding)
        b = client_position(lines, min(line_b, len(lines)), frac_b, encoding)
        start, end = sorted([a, b], key=lambda p: (p.line, p.character))
        # In the order drawn: a reversed range is normalised (as vscode-languageserver
        # does), so it edits the same span.
        change = types.TextDocumentContentChangePartial(range=types.Range(a, b),
                                                        text=new_text)
        begin, finish = lsp_offset(expected, start, encoding), lsp_offset(expected, end, encoding)
        expected = expected[:begin] + new_text + expected[finish:]
        ours.apply_change(change)
        assert ours.source == expected
        assert list(ours.lines) == lsp_lines(expected)


def test_a_reversed_change_range_edits_the_span_between_its_ends_once():
    doc = LineDocument("file:///a.py", source="alpha\nbeta\ngamma\n")
    doc.apply_change(types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(2, 2), types.Position(0, 3)), text="X"))
    assert doc.source == "alpXmma\n" and list(doc.lines) == ["alpXmma\n"]


def test_a_form_feed_page_break_is_not_a_line_end():
    source = "import os\n\f\ndef f():\n    return 1\n"
    doc = LineDocument("file:///a.py", source=source)
    assert list(doc.lines) == ["import os\n", "\f\n", "def f():\n", "    return 1\n"]
    # Line 2 is what the editor shows as line 2 (pygls would give "\n" here).
    assert doc.lines[2] == "def f():\n"
    js = LineDocument("file:///a.js", source='const s = "a\u2028b";\nf();\n')
    assert len(doc.lines) == 4 and list(js.lines)[1] == "f();\n"


def test_full_changes_replace_everything():
    doc = LineDocument("file:///a.py", source="one\ntwo\n")
    assert list(doc.lines) == ["one\n", "two\n"]
    doc.apply_change(types.TextDocumentContentChangeWholeDocument(text="three\n"))
    assert doc.source == "three\n" and list(doc.lines) == ["three\n"]


def test_the_workspace_makes_line_documents_and_keeps_its_folders():
    from pygls.workspace import Workspace

    folder = types.WorkspaceFolder(uri="file:///work", name="work")
    old = Workspace("file:///work", workspace_folders=[folder],
                    position_encoding=types.PositionEncodingKind.Utf8)
    new = line_workspace(old)
    assert new.position_encoding == types.PositionEncodingKind.Utf8
    assert list(new.folders.values()) == [folder]
    new.put_text_document(types.TextDocumentItem(uri="file:///work/a.py", language_id="python",
                                                 version=1, text="x = 1\n"))
    assert isinstance(new.get_text_document("file:///work/a.py"), LineDocument)
