"""An incremental Server-Sent Events decoder (the WHATWG event-stream format).

Bytes go in as the network delivers them, split anywhere; whole events come out.
Handles ``\\n``, ``\\r\\n`` and ``\\r`` line ends (a ``\\r\\n`` split across two reads
included), comment lines, ``event:``/``id:``/``retry:`` fields and multi-line data.

What one event may hold is bounded (``max_pending`` bytes: its unfinished line and the
data lines before it), and an unfinished line grows by appending, never by copying it
whole each read: a line without end costs linear time and at most the bound in memory.
"""

from __future__ import annotations

from attrs import define


@define(frozen=True, slots=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None


class EventTooLarge(ValueError):
    """One event (its unfinished line included) passed the decoder's ``max_pending``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"One event passed {limit:,} bytes without ending.")
        self.limit = limit


class SSEDecoder:
    __slots__ = ("_buffer", "_data", "_data_size", "_event", "_id", "_max_pending",
                 "_pending_cr", "_started", "lines")

    def __init__(self, max_pending: int | None = None) -> None:
        self.lines = 0  # complete lines seen: keep-alive comments show the server is alive
        self._started = False
        self._max_pending = max_pending
        # The unfinished line, appended to in place: `bytes + bytes` would copy the whole
        # line on every read, quadratic for a line that never ends.
        self._buffer = bytearray()
        self._data_size = 0  # bytes in self._data: the event's lines so far
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Decode one network read; returns the events it completed."""
        if not chunk:
            return []
        if not self._started:
            if len(self._buffer) + len(chunk) < 3 and b"\xef\xbb\xbf".startswith(
                self._buffer + chunk
            ):
                self._buffer += chunk  # maybe a byte order mark split across reads
                return []
            chunk, self._buffer = bytes(self._buffer + chunk), bytearray()
            self._started = True
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n whose \r ended the previous read
        self._pending_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        if end < 0:  # no line ends here: the unfinished line only grows
            self._buffer += chunk
            self._check_pending()
            return []
        lines = chunk[:end].split(b"\n")
        if self._buffer:
            self._buffer += lines[0]
            lines[0] = bytes(self._buffer)
        self._buffer = bytearray(chunk[end + 1:])
        self.lines += len(lines)
        events: list[Event] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        self._check_pending()
        return events

    def _check_pending(self) -> None:
        if self._max_pending is not None and (
                len(self._buffer) + self._data_size > self._max_pending):
            raise EventTooLarge(self._max_pending)

    def close(self) -> list[Event]:
        """End of stream: a last event without its blank line still counts."""
        events = []
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = bytearray()
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment, e.g. ": keep-alive"
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._max_pending is not None and self._data_size > self._max_pending:
                raise EventTooLarge(self._max_pending)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the format says.
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = Event("\n".join(self._data), self._event or "message", self._id)
        self._data = []
        self._data_size = 0
        self._event = ""
        return event
