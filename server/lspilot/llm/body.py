"""Reading a response body as bytes, with what decompression may cost bounded.

lspilot asks for answers uncompressed (``Accept-Encoding: identity``): a model's stream is
flushed a few tokens at a time, where compression gains little, and an uncompressed body
costs what it weighs. An upstream (or a proxy) that compresses anyway is still read, for
``gzip`` and ``deflate``, but never the way httpx would: each read is inflated at most
:data:`STEP` bytes at a time, the event loop gets a turn between steps, and a body that
inflates past :data:`MAX_RATIO` times its compressed size (plus :data:`HEADROOM`) is
stopped as a decompression bomb. Other encodings are refused, naming the encoding.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from lspilot.llm import errors

# Bytes inflated per step: what one network read of an uncompressed body holds at most.
STEP = 64 * 1024
# Real streams of JSON events compress 5-20 fold; bombs a thousand fold.
MAX_RATIO = 100
HEADROOM = 1024 * 1024

_IDENTITY = {"", "identity"}
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
          "deflate": zlib.MAX_WBITS}


async def decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes, decompressed if it came compressed; as they arrive.

    Raises ``httpx.DecodingError`` for a body that cannot be decoded, and
    ``errors.ResponseTooLarge`` for one that expands beyond reason.
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in _IDENTITY:
        async for raw in response.aiter_raw():
            yield raw
        return
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise httpx.DecodingError(
            f"it is compressed with {encoding!r}, which lspilot does not decode; "
            "lspilot asks for uncompressed answers (Accept-Encoding: identity)")
    inflater = _Inflater(wbits)
    async for raw in response.aiter_raw():
        if not raw:
            continue
        for piece in inflater.feed(raw):
            yield piece
            await asyncio.sleep(0)  # a turn for the rest of the server between steps
    if not inflater.finished():
        raise httpx.DecodingError("the compressed body ended before its end")


class _Inflater:
    """zlib, inflating :data:`STEP` bytes at a time and counting what it made."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._zlib = zlib.decompressobj(wbits)
        self._compressed = 0
        self._inflated = 0
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated pieces of ``data``, made one at a time as they are taken."""
        self._compressed += len(data)
        while True:
            try:
                piece = self._zlib.decompress(data, STEP)
            except zlib.error as exc:
                if self._started or self._wbits != zlib.MAX_WBITS:
                    raise httpx.DecodingError(f"it is not valid compressed data ({exc})") from exc
                # "deflate" that is raw deflate, without the zlib header: servers do both.
                self._wbits = -zlib.MAX_WBITS
                self._zlib = zlib.decompressobj(self._wbits)
                continue
            self._started = True
            data = self._zlib.unconsumed_tail
            self._inflated += len(piece)
            if self._inflated > self._compressed * MAX_RATIO + HEADROOM:
                raise errors.ResponseTooLarge(
                    f"The compressed answer expanded more than {MAX_RATIO} times its size "
                    f"(past {self._inflated:,} bytes from {self._compressed:,}) and was "
                    "stopped: a decompression bomb, not an answer.",
                    hint="lspilot asks for uncompressed answers; check what compresses "
                    "them between lspilot and the model.",
                )
            if piece:
                yield piece
            # A full step may leave output inside zlib even with no input left.
            if not data and len(piece) < STEP:
                break

    def finished(self) -> bool:
        return not self._compressed or self._zlib.eof
