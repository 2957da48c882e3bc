"""The VS Code extension's settings schema lists every server setting, consistently.

The server's keys come from the server itself (``lspilot.settings.KEYS``, made from the fields
of its ``Settings`` class); the extension's from ``editors/vscode/package.json``
(``contributes.configuration``). The extension passes on every ``lspilot.*`` setting that is not
one of its own (``EXTENSION_KEYS`` in ``editors/vscode/src/settings.ts``), so a key missing
from package.json is a setting a VS Code user cannot set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from lspilot import settings as server_settings

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
PACKAGE_JSON = EXTENSION / "package.json"
SETTINGS_TS = EXTENSION / "src" / "settings.ts"

# Settings the extension keeps for itself (how it starts the server, its LSP trace).
EXTENSION_ONLY = {"serverCommand", "pythonPath", "trace.server"}
# Where the extension's default differs from the server's on purpose.
EXTENSION_DEFAULTS = {
    # the extension renders explanations in its own panel and asks the server for none
    "explainShow": "none",
}


def _manifest() -> dict[str, Any]:
    return json.loads(PACKAGE_JSON.read_text())


def _properties() -> dict[str, dict[str, Any]]:
    properties = _manifest()["contributes"]["configuration"]["properties"]
    return {
        name.removeprefix("lspilot."): schema
        for name, schema in properties.items()
        if name.startswith("lspilot.")
    }


def _server_defaults() -> dict[str, Any]:
    defaults = {}
    for field in attrs.fields(server_settings.Settings):
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        defaults[server_settings.camel(field.name)] = default
    return defaults


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def test_every_server_setting_is_in_the_vscode_schema() -> None:
    extension = set(_properties()) - EXTENSION_ONLY
    server = set(server_settings.KEYS)
    assert server - extension == set(), "server settings missing from package.json"
    assert extension - server == set(), "package.json settings the server does not know"


def test_the_extension_keeps_the_same_keys_to_itself() -> None:
    match = re.search(r"EXTENSION_KEYS[^=]*=\s*\[([^\]]*)\]", SETTINGS_TS.read_text())
    assert match, "EXTENSION_KEYS not found in settings.ts"
    assert set(re.findall(r"'([^']+)'", match.group(1))) == EXTENSION_ONLY


@pytest.mark.parametrize("key", server_settings.KEYS)
def test_each_setting_has_a_description_type_and_the_servers_default(key: str) -> None:
    schema = _properties()[key]
    assert (schema.get("markdownDescription") or schema.get("description") or "").strip()
    assert "type" in schema
    default = _server_defaults()[key]
    expected = EXTENSION_DEFAULTS.get(key, _json(default))
    if key == "apiKey":
        expected = ""  # the server's None; the extension treats "" as not set
    assert schema.get("default") == expected


def _types(schema: dict[str, Any]) -> set[str]:
    kinds = schema["type"]
    return set(kinds) if isinstance(kinds, list) else {kinds}


@pytest.mark.parametrize("key", server_settings.KEYS)
def test_the_schema_accepts_what_the_server_accepts(key: str) -> None:
    """The default, bounds and enum are values the server takes; just past a bound it refuses."""
    schema = _properties()[key]
    kinds = _types(schema)
    default = schema.get("default")
    if default is not None and default != "":
        server_settings.parse_value(key, default)
    if "null" in kinds:
        assert server_settings.parse_value(key, None) is None
    for value in schema.get("enum", []):
        server_settings.parse_value(key, value)
    numeric = kinds & {"number", "integer"}
    if "minimum" in schema:
        server_settings.parse_value(key, schema["minimum"])
        below = schema["minimum"] - (1 if "integer" in numeric else 0.001)
        with pytest.raises(ValueError):
            server_settings.parse_value(key, below)
    if "maximum" in schema:
        server_settings.parse_value(key, schema["maximum"])
        above = schema["maximum"] + (1 if "integer" in numeric else 0.001)
        with pytest.raises(ValueError):
            server_settings.parse_value(key, above)
    if "maxItems" in schema:
        with pytest.raises(ValueError):
            server_settings.parse_value(key, ["x"] * (schema["maxItems"] + 1))


def test_the_actions_schema_has_the_servers_action_fields() -> None:
    items = _properties()["actions"]["items"]
    fields = {server_settings.camel(f.name) for f in attrs.fields(server_settings.ActionSetting)}
    assert set(items["properties"]) == fields
    assert items["properties"]["apply"]["enum"] == list(server_settings.APPLY_MODES)
    assert _properties()["explainShow"]["enum"] == list(server_settings.EXPLAIN_SHOW)


def test_settings_that_run_programs_or_pick_the_host_are_the_users_own() -> None:
    """A workspace cannot choose the server program, the key program or (untrusted) the host
    and the cost accounting. The program settings are window-scoped, never machine-scoped: in a
    remote window (code-server) VS Code drops a machine-scoped value from the user's settings, so
    the extension reads them from the user's settings itself (settings.ts, MACHINE_KEYS)."""
    properties = _manifest()["contributes"]["configuration"]["properties"]
    for name in ("lspilot.serverCommand", "lspilot.pythonPath", "lspilot.apiKeyCommand"):
        assert properties[name]["scope"] == "window", name
    trust = _manifest()["capabilities"]["untrustedWorkspaces"]
    assert trust["supported"] == "limited"
    restricted = set(trust["restrictedConfigurations"])
    assert {
        "lspilot.serverCommand", "lspilot.pythonPath", "lspilot.apiKeyCommand", "lspilot.baseUrl",
    } <= restricted
    assert restricted <= set(properties)
    # what is spent is the user's: an untrusted workspace could zero the prices and lift the cap
    assert {"lspilot.prices", "lspilot.maxSessionCost"} <= restricted
    # nor pick the models the user's key pays for
    assert {"lspilot.model", "lspilot.completionModel"} <= restricted
    # nor the program its tests run with, or running them unasked
    assert {"lspilot.runTests", "lspilot.testCommand"} <= restricted
    # nor the MCP servers that start (the server asks too; trust skips the question)
    assert "lspilot.mcpServers" in restricted
    ts = SETTINGS_TS.read_text()
    match = re.search(r"RESTRICTED_KEYS[^=]*=\s*\[([^\]]*)\]", ts)
    assert match, "RESTRICTED_KEYS not found in settings.ts"
    assert {f"lspilot.{k}" for k in re.findall(r"'([^']+)'", match.group(1))} == restricted
