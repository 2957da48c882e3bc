"""The key's scrubber: every form a malformed key takes in a message, and a key split
across the pieces of a stream."""

from __future__ import annotations

import json
import random

import pytest

from lspilot import redact

CRLF_KEY = "sk-test-0123456789abcdef\r"  # $(cat key.txt) of a CRLF file
ACCENT_KEY = "sk-test-0123456789abcdé"
PLAIN_KEY = "sk-plain-0123456789"


@pytest.fixture(autouse=True)
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("_secrets", set()), ("_forms", ()), ("_json_forms", ()),
                        ("_wire_forms", ())):
        monkeypatch.setattr(redact, name, value)


def _shown(key: str) -> list[str]:
    """How libraries and lspilot's own messages write a key."""
    header = f"Bearer {key}"
    encode_error = ""
    try:
        header.encode("ascii")
    except UnicodeEncodeError as exc:
        encode_error = repr(exc)  # a crash's "internal error: UnicodeEncodeError(...)"
    return [
        f"Illegal header value {header.encode('utf-8')!r}",  # httpx / h11
        f"the key {key!r} was refused",
        f"the key {key!a} was refused",
        json.dumps({"error": {"message": f"bad key {key}"}}),
        json.dumps({"error": {"message": f"bad key {key!r}"}}),
        f"bad key {key.strip()}.",
        encode_error or f"key={key}",
    ]


@pytest.mark.parametrize("key", [CRLF_KEY, ACCENT_KEY, "sk-test-01234\n56789", PLAIN_KEY,
                                 ' sk-"quoted"-key\t'])
def test_every_form_of_a_malformed_key_is_masked(key: str) -> None:
    redact.register(key)
    core = key.strip()[:-3]  # any form of the key holds this part unescaped
    for text in _shown(key):
        scrubbed = redact.scrub(text)
        assert core not in scrubbed, (text, scrubbed)
        assert redact.MASK in scrubbed


@pytest.mark.parametrize("key", [CRLF_KEY, ACCENT_KEY, PLAIN_KEY])
def test_a_key_is_masked_in_json_and_on_the_wire(key: str) -> None:
    redact.register(key)
    core = key.strip()[:-3]
    for text in _shown(key):
        body = json.dumps({"jsonrpc": "2.0", "method": "window/showMessage",
                           "params": {"message": text}})
        assert core not in redact.scrub_json(body)
        assert core.encode() not in redact.scrub_wire(body.encode("ascii"))
        assert json.loads(redact.scrub_json(body))  # still JSON


def test_short_or_blank_secrets_mask_nothing() -> None:
    for secret in (None, "", "abc", " \r\n  ab "):
        redact.register(secret)
    assert not redact.has_secrets()
    assert redact.scrub("abc ab") == "abc ab"


def _stream(pieces: list[str]) -> list[str]:
    scrubber = redact.StreamScrubber()
    return [scrubber.feed(piece) for piece in pieces] + [scrubber.close()]


def test_a_key_split_anywhere_across_pieces_is_masked() -> None:
    redact.register(PLAIN_KEY)
    answer = f"Your key is {PLAIN_KEY}, keep it safe. sk- is how keys start: {PLAIN_KEY}"
    expected = answer.replace(PLAIN_KEY, redact.MASK)
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(answer)), rng.randint(1, 20)))
        pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        shown = _stream(pieces)
        assert "".join(shown) == expected
        assert not any(PLAIN_KEY[:10] in piece for piece in shown)
    for size in range(1, 6):  # one character at a time, and so on
        pieces = [answer[i:i + size] for i in range(0, len(answer), size)]
        assert "".join(_stream(pieces)) == expected


def test_text_that_cannot_start_a_key_is_not_held_back() -> None:
    redact.register(PLAIN_KEY)
    scrubber = redact.StreamScrubber()
    assert scrubber.feed("def total(items):\n") == "def total(items):\n"
    assert scrubber.feed("    return sk") == "    return "  # "sk" may begin the key
    assert scrubber.feed("y") == "sky"
    assert scrubber.close() == ""


def test_a_long_beginning_of_a_key_at_the_very_end_is_masked() -> None:
    redact.register(PLAIN_KEY)
    assert "".join(_stream(["cut off: ", PLAIN_KEY[:12]])) == "cut off: ***"
    assert "".join(_stream(["ends with sk-p"])) == "ends with sk-p"  # too short to tell


def test_without_a_key_pieces_pass_unchanged() -> None:
    scrubber = redact.StreamScrubber()
    assert scrubber.feed("sk-anything") == "sk-anything"
    assert scrubber.close() == ""


def test_a_short_secret_never_breaks_the_protocol_json():
    import json

    from lspilot import redact

    redact.register("true")  # a workspace's {"apiKey": "true"}
    message = json.dumps({"jsonrpc": "2.0", "result": {"applied": True, "x": None}}).encode()
    assert json.loads(redact.scrub_wire(message)) == json.loads(message)
