"""Reading LSP frames from a byte stream without ever losing the way.

pygls's own loop trusts every frame: a wrong ``Content-Length`` desynchronises it for
good, and a request whose params do not fit gets no answer at all, so the client waits
forever. This loop answers what it can with proper JSON-RPC errors (parse error,
invalid request, invalid params, server not initialized), finds the next frame after
garbage, and ends cleanly when the input ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from pygls.protocol import JsonRPCProtocol

from lspilot import redact

log = logging.getLogger(__name__)

_HEADER_START = re.compile(rb"content-length:", re.I)
_CONTENT_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)", re.I)
MAX_FRAME = 64 * 1024 * 1024
# A header block ("Content-Length: n\r\n" and any others) is a few dozen bytes; one this
# long has no blank line coming.
MAX_HEADER = 64 * 1024

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002


class FrameReader:
    """Turns bytes into frame bodies; skips what cannot be a frame.

    Linear in what it is fed and bounded in what it keeps: the search for a header's end
    resumes where the last one stopped, and a header block longer than MAX_HEADER (a
    client that never sends the blank line) is skipped, not kept growing.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # How far the buffer is known to hold no header end ("\r\n\r\n").
        self._scanned = 0
        self._skipping = False  # a long header is being skipped: log it once

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        bodies: list[bytes] = []
        while True:
            start = _HEADER_START.search(self._buffer)
            if start is None:
                # Keep a tail that may be the start of a header split across reads.
                self._drop(max(0, len(self._buffer) - 16))
                return bodies
            if start.start():
                if not self._skipping:
                    log.warning("Skipped %d bytes that were not an LSP frame", start.start())
                self._drop(start.start())
            end = self._buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end == -1 and len(self._buffer) <= MAX_HEADER:
                self._scanned = len(self._buffer)
                return bodies
            if end == -1 or end > MAX_HEADER:
                if not self._skipping:
                    log.error("Skipped an LSP header block of over %d KiB with no blank line "
                              "ending it: the client is not speaking LSP framing "
                              "(Content-Length, blank line, body)", MAX_HEADER // 1024)
                self._skipping = True
                self._scanned = len(self._buffer) if end == -1 else end
                self._drop(start.end() - start.start())  # look for the next header
                continue
            self._skipping = False
            match = _CONTENT_LENGTH.match(self._buffer)
            if match is None or int(match.group(1)) > MAX_FRAME:
                log.warning("Skipped a frame with a bad Content-Length header")
                self._drop(end + 4)
                continue
            length = int(match.group(1))
            if len(self._buffer) < end + 4 + length:
                self._scanned = end  # the header's end is known; no need to find it again
                return bodies
            bodies.append(bytes(self._buffer[end + 4 : end + 4 + length]))
            self._drop(end + 4 + length)

    def _drop(self, count: int) -> None:
        """Forget the first ``count`` bytes (cheap: bytearray deletes at the front in place)."""
        del self._buffer[:count]
        self._scanned = max(0, self._scanned - count)


class MessagePump:
    """Checks each body and hands well-formed messages to pygls's protocol."""

    def __init__(self, protocol: JsonRPCProtocol, is_initialized: Callable[[], bool]) -> None:
        self._protocol = protocol
        self._is_initialized = is_initialized

    def handle(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError as exc:
            self._error(None, PARSE_ERROR, f"Parse error: the frame is not JSON ({exc}).")
            return
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
            ident = data.get("id") if isinstance(data, dict) else None
            self._error(ident, INVALID_REQUEST,
                        'Invalid request: expected a JSON-RPC 2.0 object ("jsonrpc": "2.0").')
            return
        method = data.get("method")
        is_request = "id" in data and isinstance(method, str)
        if method is not None and not isinstance(method, str):
            self._error(data.get("id"), INVALID_REQUEST,
                        "Invalid request: 'method' must be a string.")
            return
        if is_request and self._protocol._shutdown:
            self._error(data["id"], INVALID_REQUEST,
                        f"The server is shutting down; {method!r} was not run.")
            return
        if (
            is_request
            and method not in ("initialize", "shutdown")
            and not self._is_initialized()
        ):
            self._error(
                data["id"], SERVER_NOT_INITIALIZED,
                f"The server is not initialized yet: send 'initialize' before {method!r}.",
            )
            return
        try:
            message = self._protocol.structure_message(data)
        except Exception as exc:
            if is_request:
                self._error(data["id"], INVALID_PARAMS, f"Invalid params for {method!r}: {exc}")
            else:
                log.warning("Dropped a malformed %r notification: %s", method, exc)
            return
        try:
            self._protocol.handle_message(message)
        except Exception:
            log.exception("Could not handle %r", method)
            if is_request:
                self._error(data["id"], -32603, f"Internal error handling {method!r}.")

    def _error(self, ident: Any, code: int, message: str) -> None:
        log.warning("%s", message)
        self._protocol._send_data(
            {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
        )


class ScrubbingWriter:
    """The last gate before the editor: masks the key in every message lspilot sends.

    Results, messages, progress, ``lspilot/stream`` and log messages all pass here, in
    whatever form the key took in them (see ``lspilot.redact``). pygls writes one whole
    message per call (header and body, or the body alone); a masked body gets its
    ``Content-Length`` again.
    """

    def __init__(self, writer: Any, include_headers: bool) -> None:
        self._writer = writer
        self._include_headers = include_headers

    def write(self, data: bytes) -> Any:
        if redact.has_secrets():
            data = self._scrubbed(data)
        return self._writer.write(data)

    def close(self) -> Any:
        return self._writer.close()

    def _scrubbed(self, data: bytes) -> bytes:
        if not self._include_headers:
            return redact.scrub_wire(data)
        header, separator, body = data.partition(b"\r\n\r\n")
        scrubbed = redact.scrub_wire(body)
        if scrubbed is body:
            return data
        header = _CONTENT_LENGTH.sub(b"Content-Length: %d" % len(scrubbed), header, count=1)
        return header + separator + scrubbed


def read_in_thread(fd: int, name: str, read_size: int = 65536) -> asyncio.Queue[bytes]:
    """What ``fd`` brings, chunk by chunk, ``b""`` at its end, read by a daemon thread (a
    read blocked on a silent client never holds up the exit). LSP over stdio and ACP use it."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def read_forever() -> None:
        while True:
            try:
                data = os.read(fd, read_size)
            except OSError:
                data = b""
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, data)
            except RuntimeError:  # the loop is gone: we are exiting
                return
            if not data:
                return

    threading.Thread(target=read_forever, name=name, daemon=True).start()
    return chunks


async def serve(fd: int, pump: MessagePump, read_size: int = 65536) -> None:
    """Read frames from ``fd`` until it ends: the client is gone."""
    chunks = read_in_thread(fd, "lspilot-stdin", read_size)
    frames = FrameReader()
    while data := await chunks.get():
        for body in frames.feed(data):
            pump.handle(body)
    log.info("The client closed the connection.")
