"""The line-splicing document gives exactly the text pygls's own document gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from lspilot.documents import LineDocument, line_workspace

TEXT = st.lists(st.sampled_from(["a", "b", " ", "\n", "\r\n", "é", "😀", "世"]),
               max_size=40).map("".join)


def client_position(lines, line_index: int, fraction: float, encoding: str) -> types.Position:
    if line_index >= len(lines):
        return types.Position(len(lines), 0)
    line = lines[line_index].rstrip("\r\n")
    prefix = line[: int(len(line) * fraction)]
    units = {"utf-8": len(prefix.encode()), "utf-32": len(prefix),
             "utf-16": len(prefix.encode("utf-16-le")) // 2}[encoding]
    return types.Position(line_index, units)


@settings(max_examples=300, deadline=None)
@given(
    text=TEXT,
    edits=st.lists(st.tuples(st.integers(0, 12), st.floats(0, 1), st.integers(0, 12),
                             st.floats(0, 1), TEXT), max_size=6),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_same_text_as_pygls_after_any_edits(text, edits, encoding):
    codec = PositionCodec(encoding=types.PositionEncodingKind(encoding))
    reference = TextDocument("file:///a.py", source=text, position_codec=codec)
    ours = LineDocument("file:///a.py", source=text, position_codec=codec)
    for line_a, frac_a, line_b, frac_b, new_text in edits:
        lines = reference.lines
        a = client_position(lines, min(line_a, len(lines)), frac_a, encoding)
        b = client_position(lines, min(line_b, len(lines)), frac_b, encoding)
        start, end = sorted([a, b], key=lambda p: (p.line, p.character))
        change = types.TextDocumentContentChangePartial(range=types.Range(start, end),
                                                        text=new_text)
        reference.apply_change(change)
        ours.apply_change(change)
        assert ours.source == reference.source
        assert tuple(ours.lines) == tuple(reference.lines)


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
