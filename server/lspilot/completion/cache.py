"""Suggestions remembered by the text around the cursor, so that asking twice costs nothing.

Backspacing and typing the same again finds the suggestion made there before; typing the
characters a suggestion predicted finds the rest of it (Copilot's "typing as suggested").
Keys are the end of the text before the cursor and the start of the text after it: enough
to tell places apart, cheap to compare.
"""

from __future__ import annotations

from collections import OrderedDict

from attrs import define

KEY_CHARS = 2000
MAX_ENTRIES = 256
# Typing through more than this is a new place, not the same suggestion.
MAX_TYPED = 200
# Enough of the old key's end to find it in the new one.
ANCHOR_CHARS = 64


@define(frozen=True)
class Entry:
    prefix: str
    suffix: str
    suggestion: str


class SuggestionCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str, str], Entry] = OrderedDict()
        # (uri, suffix) -> the keys made there, oldest first
        self._by_place: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        self._max = max_entries

    def put(self, uri: str, prefix: str, suffix: str, suggestion: str) -> None:
        entry = Entry(prefix[-KEY_CHARS:], suffix[:KEY_CHARS], suggestion)
        key = (uri, entry.prefix, entry.suffix)
        if key not in self._entries:
            self._by_place.setdefault((uri, entry.suffix), []).append(key)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            oldest, _ = self._entries.popitem(last=False)
            self._unindex(oldest)

    def _unindex(self, key: tuple[str, str, str]) -> None:
        place = (key[0], key[2])
        keys = self._by_place.get(place, [])
        if key in keys:
            keys.remove(key)
        if not keys:
            self._by_place.pop(place, None)

    def get(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The suggestion for this place: made here, or the rest of one typed into."""
        prefix, suffix = prefix[-KEY_CHARS:], suffix[:KEY_CHARS]
        exact = self._entries.get((uri, prefix, suffix))
        if exact is not None:
            return exact.suggestion
        # Typing at the cursor leaves the text after it alone: only the entries made at
        # the same suffix can be typed into. Newest first: the one being typed through.
        for key in reversed(self._by_place.get((uri, suffix), [])):
            entry = self._entries[key]
            typed = typed_since(entry.prefix, prefix)
            if typed and entry.suggestion.startswith(typed) and len(entry.suggestion) > len(typed):
                return entry.suggestion[len(typed):]
        return None

    def forget(self, uri: str) -> None:
        for key in [k for k in self._entries if k[0] == uri]:
            del self._entries[key]
            self._unindex(key)


def typed_since(old_prefix: str, new_prefix: str) -> str | None:
    """What was typed at the cursor to turn one key into the other, or None.

    Keys are the last ``KEY_CHARS`` characters, so a long prefix that grew by ``t`` lost
    as many characters on the left: ``new == (old + t)[-KEY_CHARS:]``.
    """
    if len(new_prefix) < KEY_CHARS:  # not cut, so neither was the old one
        if len(new_prefix) > len(old_prefix) and new_prefix.startswith(old_prefix):
            return new_prefix[len(old_prefix):]
        return None
    # new == old[shift:] + typed: find where the old key's end stands in the new one.
    # The shortest typing that explains it: the last place the anchor stands, going left.
    anchor = old_prefix[-ANCHOR_CHARS:]
    lowest = max(0, len(new_prefix) - MAX_TYPED - len(anchor))
    end = len(new_prefix) - 1
    while (at := new_prefix.rfind(anchor, lowest, end)) >= 0:
        typed = new_prefix[at + len(anchor):]
        if typed and (old_prefix + typed)[-KEY_CHARS:] == new_prefix:
            return typed
        end = at + len(anchor) - 1
    return None
