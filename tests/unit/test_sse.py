"""The SSE decoder against the event-stream format, split at every possible byte."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lspilot.llm.sse import Event, EventTooLarge, SSEDecoder


def decode(*pieces: bytes, close: bool = True) -> list[Event]:
    decoder = SSEDecoder()
    events: list[Event] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    if close:
        events.extend(decoder.close())
    return events


def every_split(body: bytes) -> list[list[bytes]]:
    return [[body[:i], body[i:]] for i in range(len(body) + 1)]


def test_lf_line_ends() -> None:
    assert decode(b"data: one\n\ndata: two\n\n") == [Event("one"), Event("two")]


def test_crlf_line_ends() -> None:
    assert decode(b"data: one\r\n\r\ndata: two\r\n\r\n") == [Event("one"), Event("two")]


def test_cr_line_ends() -> None:
    assert decode(b"data: one\r\rdata: two\r\r") == [Event("one"), Event("two")]


def test_mixed_line_ends() -> None:
    assert decode(b"data: a\r\n\ndata: b\r\rdata: c\n\r\n") == [
        Event("a"), Event("b"), Event("c")
    ]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    # Were the \n taken as a second line end, "a" and "b" would dispatch separately.
    body = b"data: a\r\ndata: b\r\n\r\n"
    for cut in range(len(body) + 1):
        assert decode(body[:cut], body[cut:]) == [Event("a\nb")], cut


def test_crlf_split_with_empty_read_between() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [Event("a\nb")]


def test_each_byte_in_its_own_read() -> None:
    body = b"event: x\r\nid: 7\r\ndata: {\"k\": 1}\r\n\r\ndata: [DONE]\r\n\r\n"
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == [
        Event('{"k": 1}', "x", "7"), Event("[DONE]", "message", "7")
    ]


def test_events_are_returned_by_the_feed_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: hel") == []
    assert decoder.feed(b"lo\n") == []
    assert decoder.feed(b"\n") == [Event("hello")]
    assert decoder.close() == []


def test_comments_are_ignored() -> None:
    body = b": keep-alive\n\ndata: x\n: in the middle\ndata: y\n\n:\n\n"
    assert decode(body) == [Event("x\ny")]


def test_comment_only_stream_gives_nothing() -> None:
    assert decode(b": keep-alive\n\n: OPENROUTER PROCESSING\n\n") == []


def test_event_and_id_fields() -> None:
    events = decode(b"event: error\nid: 42\ndata: {}\n\n")
    assert events == [Event("{}", "error", "42")]


def test_event_name_resets_after_dispatch_but_id_persists() -> None:
    events = decode(b"event: delta\nid: 1\ndata: a\n\ndata: b\n\n")
    assert events == [Event("a", "delta", "1"), Event("b", "message", "1")]


def test_id_with_nul_is_ignored() -> None:
    assert decode(b"id: 1\ndata: a\n\nid: x\0y\ndata: b\n\n") == [
        Event("a", id="1"), Event("b", id="1")
    ]


def test_retry_and_unknown_fields_are_ignored() -> None:
    assert decode(b"retry: 1000\nfoo: bar\ndata: x\n\n") == [Event("x")]


def test_multi_line_data_joins_with_newlines() -> None:
    assert decode(b"data: line 1\ndata: line 2\ndata:\ndata: line 4\n\n") == [
        Event("line 1\nline 2\n\nline 4")
    ]


def test_data_without_space_after_colon() -> None:
    assert decode(b"data:{\"a\":1}\n\n") == [Event('{"a":1}')]


def test_only_one_leading_space_is_removed() -> None:
    assert decode(b"data:  two spaces\n\n") == [Event(" two spaces")]


def test_colon_inside_value_is_kept() -> None:
    assert decode(b"data: a: b: c\n\n") == [Event("a: b: c")]


def test_field_name_without_colon_is_data_with_empty_value() -> None:
    assert decode(b"data\n\n") == [Event("")]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\r\n\revent: ping\n\n") == []


def test_event_name_without_data_does_not_leak_into_next_event() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [Event("x", "message")]


def test_last_event_without_blank_line_is_dispatched_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: last") == [Event("a")]
    assert decoder.close() == [Event("last")]


def test_last_event_with_line_end_but_without_blank_line_on_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\ndata: y\n") == []
    assert decoder.close() == [Event("x\ny")]


def test_close_after_complete_stream_gives_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [Event("a")]
    assert decoder.close() == []


def test_empty_feeds() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\n") == [Event("a")]
    assert decoder.close() == []
    assert SSEDecoder().close() == []


def test_utf8_multibyte_split_across_reads() -> None:
    text = "naïve — 日本語 🎉"
    body = f"data: {text}\n\n".encode()
    for cut in range(len(body) + 1):
        assert decode(body[:cut], body[cut:]) == [Event(text)], cut
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == [Event(text)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\xfe ok\n\n") == [Event("\ufffd\ufffd ok")]


# -- properties ----------------------------------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
    max_size=20,
)
_events = st.lists(
    st.tuples(
        st.lists(_line_text, min_size=1, max_size=3),  # data lines
        st.one_of(st.none(), _line_text),  # event name
        st.one_of(st.none(), _line_text),  # id
        st.booleans(),  # a comment before the event
    ),
    max_size=6,
)


def _serialise(events: list[tuple[list[str], str | None, str | None, bool]], nl: str) -> bytes:
    out = []
    for data_lines, name, ident, comment in events:
        if comment:
            out.append(f": keep-alive{nl}")
        if name is not None:
            out.append(f"event: {name}{nl}")
        if ident is not None:
            out.append(f"id: {ident}{nl}")
        out.extend(f"data: {line}{nl}" for line in data_lines)
        out.append(nl)
    return "".join(out).encode()


def _expected(events: list[tuple[list[str], str | None, str | None, bool]]) -> list[Event]:
    expected = []
    last_id = None
    for data_lines, name, ident, _comment in events:
        if ident is not None:
            last_id = ident
        expected.append(Event("\n".join(data_lines), name or "message", last_id))
    return expected


@given(
    events=_events,
    nl=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_decodes_like_one_piece(
    events: list[tuple[list[str], str | None, str | None, bool]], nl: str, cuts: list[int]
) -> None:
    body = _serialise(events, nl)
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    whole = decode(body)
    assert decode(*pieces) == whole
    assert whole == _expected(events)


@given(st.lists(st.binary(max_size=64), max_size=10))
def test_arbitrary_bytes_never_raise(pieces: list[bytes]) -> None:
    events = decode(*pieces)
    assert all(isinstance(e, Event) and isinstance(e.data, str) for e in events)
    # Splitting differently never changes the result either.
    assert decode(b"".join(pieces)) == events


def test_byte_order_mark_mid_stream_is_not_stripped() -> None:
    # Only a BOM at the very start of the stream is special.
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [Event("a")]


def test_byte_order_mark_at_stream_start_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbf", b"data: a\n\n") == [Event("a")]


def test_an_unfinished_line_past_the_limit_fails_at_once() -> None:
    decoder = SSEDecoder(max_pending=1000)
    assert decoder.feed(b"data: " + b"x" * 900) == []
    with pytest.raises(EventTooLarge) as caught:
        decoder.feed(b"x" * 200)  # no line end yet: the bound covers the unfinished line
    assert caught.value.limit == 1000


def test_many_data_lines_of_one_event_count_together() -> None:
    decoder = SSEDecoder(max_pending=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            decoder.feed(b"data: " + b"y" * 99 + b"\n")


def test_events_under_the_limit_pass_and_reset_the_count() -> None:
    decoder = SSEDecoder(max_pending=1000)
    event = b"data: " + b"z" * 600 + b"\n\n"
    for _ in range(50):
        assert decoder.feed(event) == [Event("z" * 600)]


def test_an_endless_line_costs_linear_time() -> None:
    # Growing the line by `bytes + bytes` copied it whole on every read: 30 MB in 16 KB
    # reads took a minute. Appending in place takes milliseconds.
    decoder = SSEDecoder()
    piece = b"x" * 16384
    started = time.perf_counter()
    for _ in range(2000):
        decoder.feed(piece)
    assert time.perf_counter() - started < 2.0
    assert decoder.feed(b"\n\n") == []  # "xxxx…" is a field name without a value
    assert decoder.lines == 2
