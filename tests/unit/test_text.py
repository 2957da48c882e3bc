"""LSP positions: lines end at \\n, \\r\\n and \\r only; offsets and positions round-trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lspilot.text import apply_edits, end_after, offset_at, position_of, split_lines, units
from tests.unit.test_documents import TEXT, lsp_lines

ENCODING = st.sampled_from(["utf-8", "utf-16", "utf-32"])


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_split_lines_is_the_spec(text):
    assert split_lines(text) == lsp_lines(text)
    assert "".join(split_lines(text)) == text


@settings(max_examples=300, deadline=None)
@given(text=TEXT, where=st.floats(0, 1), encoding=ENCODING)
def test_offsets_and_positions_round_trip(text, where, encoding):
    offset = int(len(text) * where)
    if text[offset - 1 : offset + 1] == "\r\n":  # inside a line end: not a position
        offset -= 1
    position = position_of(text, offset, encoding)
    assert offset_at(text, position, encoding) == offset


@settings(max_examples=200, deadline=None)
@given(before=TEXT, inserted=TEXT, encoding=ENCODING)
def test_end_after_is_where_an_insertion_ends(before, inserted, encoding):
    if before.endswith("\r") and inserted.startswith("\n"):
        return  # the two would merge into one line end: not a plain insertion
    start = position_of(before, len(before), encoding)
    assert end_after(start, inserted, encoding) == position_of(
        before + inserted, len(before + inserted), encoding)


def test_units_per_encoding():
    assert [units("a😀é", e) for e in ("utf-8", "utf-16", "utf-32")] == [7, 4, 3]


def test_apply_edits_applies_against_the_original():
    text = "one\ftwo\nthree\n"
    edits = [types.TextEdit(types.Range(types.Position(1, 0), types.Position(1, 5)), "3"),
             types.TextEdit(types.Range(types.Position(0, 0), types.Position(0, 3)), "1")]
    assert apply_edits(text, edits) == "1\ftwo\n3\n"


def test_inserts_at_one_position_keep_their_order() -> None:
    at = types.Position(0, 1)
    edits = [types.TextEdit(types.Range(at, at), "A"), types.TextEdit(types.Range(at, at), "B")]
    assert apply_edits("xy", edits) == "xABy"
