"""Keeping the API key out of everything lspilot shows, writes or sends to the editor.

A key is found in more forms than its own: a malformed one (a trailing ``\\r`` from
``$(cat key.txt)`` of a CRLF file, a non-ASCII character) reaches a message escaped, by
``repr`` (httpx's "Illegal header value b'Bearer …\\r'"), by ``ascii``, as JSON
(``\\r``, ``\\u00e9``), as bytes, or stripped. :func:`register` learns every such form of a
secret once; :func:`scrub` masks them in text, :func:`scrub_json` in JSON text (what goes
over the LSP channel and into kept files, where each form appears JSON-escaped once more),
and :class:`StreamScrubber` in a text that arrives in pieces (a key split across two
deltas of a model's answer).
"""

from __future__ import annotations

import contextlib
import json

MASK = "***"
# Shorter secrets (and forms) would mask ordinary words.
MIN_LENGTH = 4
# A key's prefix left at the very end of a stream is masked from this length on: a cut
# answer must not show most of a key either.
MASK_PREFIX_FROM = 8
# Forms masked in the LSP messages themselves: long enough never to be a JSON token or a
# common word of the protocol (every real API key is much longer).
WIRE_MIN_LENGTH = 8

_secrets: set[str] = set()
_forms: tuple[str, ...] = ()  # every form of every secret, longest first
_json_forms: tuple[str, ...] = ()  # the same, JSON-escaped (inside a JSON string)
_wire_forms: tuple[bytes, ...] = ()  # _json_forms as ASCII bytes (json.dumps's output)


def forms_of(secret: str) -> set[str]:
    """The ways ``secret`` can be written in a message, a log line or a reply."""
    base = {secret, secret.strip(), repr(secret)[1:-1], ascii(secret)[1:-1],
            json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            repr(secret.encode("utf-8", "surrogatepass"))[2:-1]}
    with contextlib.suppress(UnicodeEncodeError):
        base.add(repr(secret.encode("latin-1"))[2:-1])
    # A message that quotes an escaped form (a repr inside a JSON error body) escapes it again.
    forms = base | {json.dumps(form)[1:-1] for form in base}
    return {form for form in forms if len(form) >= MIN_LENGTH}


def register(secret: str | None) -> None:
    global _forms, _json_forms, _wire_forms
    if not secret or len(secret.strip()) < MIN_LENGTH or secret in _secrets:
        return
    _secrets.add(secret)
    forms = {form for known in _secrets for form in forms_of(known)}
    _forms = tuple(sorted(forms, key=len, reverse=True))
    json_forms = {json.dumps(form)[1:-1] for form in forms}
    _json_forms = tuple(sorted(forms | json_forms, key=len, reverse=True))
    # On the wire only forms that cannot be JSON of their own: a short "key" such as
    # `true` or `null` (a workspace's apiKey: true) masked there would break every message.
    _wire_forms = tuple(form.encode("ascii") for form in _json_forms
                        if form.isascii() and len(form) >= WIRE_MIN_LENGTH)


def secrets() -> list[str]:
    """The secrets as registered (not their other forms)."""
    return sorted(_secrets)


def forms() -> tuple[str, ...]:
    """Every registered form, longest first (a longer form is masked before its parts)."""
    return _forms


def scrub(text: str) -> str:
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def scrub_json(text: str) -> str:
    """``text`` is JSON: the forms are masked as they appear inside its strings too."""
    for form in _json_forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def scrub_wire(data: bytes) -> bytes:
    """``data`` is JSON as ``json.dumps`` writes it (ASCII only)."""
    for form in _wire_forms:
        if form in data:
            data = data.replace(form, MASK.encode())
    return data


def has_secrets() -> bool:
    return bool(_forms)


class StreamScrubber:
    """Masks the key in a text that arrives in pieces, wherever the pieces split it.

    What could still become a form with the next piece (a suffix that is a form's
    beginning) is held back; everything else is handed on at once, so text that holds no
    such suffix is not delayed at all. Concatenated, what :meth:`feed` and :meth:`close`
    return is the whole text with every form masked.
    """

    __slots__ = ("_forms", "_held", "_starts")

    def __init__(self) -> None:
        self._forms = _forms  # the forms known when the stream began
        self._held = ""
        # The forms by first character: one search of the tail per character.
        starts: dict[str, list[str]] = {}
        for form in self._forms:
            starts.setdefault(form[0], []).append(form)
        self._starts = tuple((char, max(map(len, group)), tuple(group))
                             for char, group in starts.items())

    def feed(self, piece: str) -> str:
        if not self._forms:
            return piece
        text = self._held + piece if self._held else piece
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        keep = self._unfinished(text)
        if keep:
            self._held = text[-keep:]
            return text[:-keep]
        self._held = ""
        return text

    def close(self) -> str:
        """The rest; a long beginning of a key at the very end is masked too."""
        held, self._held = self._held, ""
        return MASK if len(held) >= MASK_PREFIX_FROM else held

    def _unfinished(self, text: str) -> int:
        """The length of the longest suffix of ``text`` that begins some form."""
        size = len(text)
        longest = 0
        for char, length, group in self._starts:
            position = text.find(char, max(0, size - length + 1))
            while position != -1 and size - position > longest:
                rest = text[position:]
                if any(len(form) > len(rest) and form.startswith(rest) for form in group):
                    longest = size - position
                    break
                position = text.find(char, position + 1)
        return longest
