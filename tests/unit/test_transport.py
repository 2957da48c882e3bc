"""The frame reader: frames from any split of the bytes, bounded on headers that never end."""

from __future__ import annotations

import json

from lspilot.transport import MAX_HEADER, FrameReader


def frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


PING = frame({"jsonrpc": "2.0", "id": 1, "method": "ping"})


def test_frames_come_out_of_any_split_of_the_bytes():
    stream = PING + b"junk" + frame({"jsonrpc": "2.0", "id": 2, "method": "b"}) + PING
    for size in (1, 2, 3, 5, 17, len(stream)):
        reader = FrameReader()
        bodies = []
        for i in range(0, len(stream), size):
            bodies += reader.feed(stream[i : i + size])
        assert [json.loads(b)["id"] for b in bodies] == [1, 2, 1], size


def test_a_header_without_its_blank_line_is_skipped_and_memory_stays_bounded():
    reader = FrameReader()
    assert reader.feed(b"Content-Length: 10\r\nX-Padding: ") == []
    largest = 0
    for _ in range(1000):  # 4 MB of one header line, 4 KiB at a time
        assert reader.feed(b"a" * 4096) == []
        largest = max(largest, len(reader._buffer))
    assert largest <= MAX_HEADER + 4096
    assert reader.feed(PING) == [PING.partition(b"\r\n\r\n")[2]]


def test_a_header_of_content_length_lines_never_ending_is_skipped_in_linear_steps():
    reader = FrameReader()
    line = b"Content-Length: 5\r\n"
    for _ in range(2000):  # 4 MB of header starts, none ended
        assert reader.feed(line * 100) == []
        assert len(reader._buffer) <= MAX_HEADER + len(line) * 100


def test_an_over_long_header_ended_in_the_same_read_as_a_good_frame_loses_only_itself():
    reader = FrameReader()
    junk = b"Content-Length: 10\r\nX-Padding: " + b"a" * (2 * MAX_HEADER)
    assert reader.feed(junk + PING) == [PING.partition(b"\r\n\r\n")[2]]
