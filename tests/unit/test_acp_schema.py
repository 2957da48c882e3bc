"""ACP's pure pieces: the prompt's content blocks, version negotiation, permission
answers, and the line reader's errors for what is not a message."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lspilot.acp import schema
from lspilot.acp.rpc import Connection, RpcError


def test_prompt_blocks_become_one_message():
    root = Path("/work/project")
    text = schema.prompt_text([
        {"type": "text", "text": "Explain"},
        {"type": "resource", "resource": {"uri": "file:///work/project/src/a.py",
                                          "text": "x = 1\n"}},
        {"type": "resource_link", "uri": "file:///elsewhere/b.py", "name": "b.py"},
    ], root)
    assert text == ("Explain\n\nsrc/a.py:\n```\nx = 1\n```\n\n"
                    "(the user refers to /elsewhere/b.py)")


@pytest.mark.parametrize("blocks", [[], "text", [{"type": "image", "data": ""}],
                                    [{"type": "text"}], [{"type": "resource"}], [3]])
def test_bad_prompts_are_invalid_params(blocks):
    with pytest.raises(RpcError) as raised:
        schema.prompt_text(blocks, Path("/"))
    assert raised.value.code == -32602


def test_version_negotiation():
    assert schema.negotiated_version(1) == 1
    assert schema.negotiated_version(7) == 1
    with pytest.raises(RpcError):
        schema.negotiated_version("1")
    with pytest.raises(RpcError):
        schema.negotiated_version(True)


def test_permission_answers():
    options = schema.permission_options(["Allow", "Allow for this conversation", "Deny"])
    assert [(o["optionId"], o["kind"]) for o in options] == [
        ("allow", "allow_once"), ("allow_always", "allow_always"), ("reject", "reject_once")]
    assert options[1]["name"] == "Allow for this session"
    assert schema.chosen_option({"outcome": {"outcome": "selected", "optionId": "allow"}}) \
        == "allow"
    assert schema.chosen_option({"outcome": {"outcome": "cancelled"}}) is None
    assert schema.chosen_option(None) is None


def test_client_capabilities_default_to_none():
    caps = schema.ClientCapabilities.from_json({"fs": {"readTextFile": True}, "terminal": 1})
    assert caps == schema.ClientCapabilities(read_text_file=True)
    assert schema.ClientCapabilities.from_json("odd") == schema.ClientCapabilities()


@pytest.mark.parametrize(("line", "code", "ident"), [
    (b"{nope", -32700, None), (b"[]", -32600, None), (b"7", -32600, None),
    (b'{"jsonrpc": "1.0", "id": 3, "method": "x"}', -32600, 3),
    (b'{"jsonrpc": "2.0", "id": 4, "method": 5}', -32600, 4),
    (b'{"jsonrpc": "2.0", "id": [1], "method": "x"}', -32600, None),
])
def test_what_is_not_a_message_gets_an_error(line, code, ident):
    out = io.BytesIO()
    Connection(out).handle_line(line)
    reply = json.loads(out.getvalue())
    assert reply["error"]["code"] == code and reply["id"] == ident


async def test_unknown_methods_and_notifications():
    out = io.BytesIO()
    connection = Connection(out)
    connection.handle_line(b'{"jsonrpc": "2.0", "id": "a", "method": "nope"}')
    connection.handle_line(b'{"jsonrpc": "2.0", "method": "nope/notified"}')
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert replies == [{"jsonrpc": "2.0", "id": "a",
                        "error": {"code": -32601, "message": "Method not found: nope"}}]
