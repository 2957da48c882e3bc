"""docs/protocol.md keeps up with the server: settings, commands, error types, editor options.

Names come from the server itself wherever an import gives them: the settings from
``lspilot.settings.KEYS`` (the fields of ``Settings``) and ``ENVIRONMENT``, the commands from
``lspilot.server.ALL_COMMANDS``, the code action kinds from ``lspilot.actions.registry.BUILTINS``,
the error types from the ``kind`` of every ``LspilotError`` subclass (every lspilot module
imported first, so subclasses anywhere, such as ``LocalModelError``, count).
Only the kinds that exist nowhere but as string literals
(``ActionFailed("conflict", ...)``, ``RunResult(error_type="no_api_key", ...)``, the
``("internal", ...)`` failure of a crashed run) are read from the source, with ``ast``, and a
floor of known kinds makes sure that reading still finds them.

The Neovim plugin (``editors/neovim/lua/lspilot/config.lua``) holds ``M.defaults``: the options of
``require("lspilot").setup()``, which are the plugin's own (how to start the server, the float
window, notifications), not server settings. So each default must be an option the plugin
documents (``:help lspilot-options``) and reads (``opts.X`` / ``M.options.X`` in ``init.lua``),
and the doc lists it among the editor-side names. Two of them carry server settings:
``settings`` (the ``lspilot`` section) and ``init_options`` (``initializationOptions``, by
default ``{ explainShow = "none" }``); every key in those must be a real server key with a value
the server accepts, or the plugin would start the server with a settings warning.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import lspilot
from lspilot import settings as server_settings
from lspilot.actions.registry import BUILTINS, RUN_COMMAND
from lspilot.errors import LspilotError
from lspilot.features.status import CANCEL_COMMAND
from lspilot.llm.errors import UpstreamError
from lspilot.server import ALL_COMMANDS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
PACKAGE = Path(lspilot.__file__).resolve().parent
NEOVIM = REPO / "editors" / "neovim"
CONFIG_LUA = NEOVIM / "lua" / "lspilot" / "config.lua"
INIT_LUA = NEOVIM / "lua" / "lspilot" / "init.lua"
HELP = NEOVIM / "doc" / "lspilot.txt"

# Kinds that only exist as literals; the AST scan must find at least these.
KNOWN_LITERAL_KINDS = {"conflict", "edit_rejected", "no_code"}


# -- the doc ------------------------------------------------------------------------------


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The text of the ``## title`` section, up to its first subsection or the next section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^##+ |\Z)", _doc(), re.S | re.M)
    assert match, f"docs/protocol.md has no '## {title}' section"
    return match.group(1)


def _subsection(title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##+ |\Z)", _doc(), re.S | re.M)
    assert match, f"docs/protocol.md has no '### {title}' section"
    return match.group(1)


def _table_rows(text: str) -> dict[str, list[str]]:
    """Body rows of the markdown tables in ``text`` whose first cell starts with a `name`."""
    rows = {}
    lines = text.splitlines()
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if not line.startswith("|") or following.startswith("|--"):
            continue  # not a table row, or a header row
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.match(r"`([^`]+)`", cells[0])
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def _in_backticks(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


# -- settings -----------------------------------------------------------------------------


def _default_text(value: Any) -> str | None:
    """A default as the doc writes it; None for an unset one."""
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        value = value.factory()
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "[]" if not value else repr(list(value))
    return str(value)


def test_every_setting_key_is_in_the_doc() -> None:
    doc = _in_backticks(_doc())
    missing = [key for key in server_settings.KEYS if key not in doc]
    assert not missing, f"settings missing from docs/protocol.md: {missing}"


def test_the_settings_table_matches_the_server() -> None:
    rows = _table_rows(_section("Settings"))
    assert set(rows) == set(server_settings.KEYS), (
        f"only in the doc: {sorted(set(rows) - set(server_settings.KEYS))}; "
        f"only in the server: {sorted(set(server_settings.KEYS) - set(rows))}"
    )
    for field in attrs.fields(server_settings.Settings):
        key = server_settings.camel(field.name)
        _, _type, default, env, _meaning = rows[key]
        expected = _default_text(field.default)
        if expected is None:
            assert re.match(r"(none|unset)\b", default), f"{key}: default {default!r}, not unset"
        else:
            assert f"`{expected}`" in default, f"{key}: the doc says {default!r}, " \
                                               f"the server {expected!r}"
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", env)
        assert names == list(server_settings.ENVIRONMENT.get(key, ())), f"{key}: env {env!r}"


# -- commands and code actions ------------------------------------------------------------


def test_every_command_is_in_the_doc() -> None:
    rows = _table_rows(_section("Commands (`workspace/executeCommand`)"))
    assert {RUN_COMMAND, CANCEL_COMMAND} <= set(ALL_COMMANDS)
    missing = [c for c in ALL_COMMANDS if c not in rows]
    assert not missing, f"commands missing from the commands table: {missing}"
    assert set(rows) == set(ALL_COMMANDS), f"the doc lists {sorted(set(rows) - set(ALL_COMMANDS))}"
    capabilities = _table_rows(_section("Capabilities"))["executeCommandProvider"][0]
    assert re.findall(r'"(lspilot\.[\w.]+)"', capabilities) == list(ALL_COMMANDS)


def test_every_code_action_kind_is_in_the_doc() -> None:
    rows = _table_rows(_section("Code actions"))
    for action in BUILTINS:
        assert action.id in rows, f"code action {action.id} missing"
        command, kind = rows[action.id]
        assert (command, kind) == (f"`{action.command}`", f"`{action.kind}`")
    assert rows["<id>"] == [f"`{RUN_COMMAND}`", "`refactor.lspilot.<id>`"]


def test_nothing_built_is_listed_as_not_built() -> None:
    unbuilt = _in_backticks(_section("Not yet built"))
    built = set(server_settings.KEYS) | set(ALL_COMMANDS)
    assert not unbuilt & built, f"built but listed as not yet built: {sorted(unbuilt & built)}"


# -- error types --------------------------------------------------------------------------


def _import_everything() -> None:
    for module in pkgutil.walk_packages(lspilot.__path__, "lspilot."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _class_kinds() -> set[str]:
    """The kinds of the error classes: every failure a user sees derives from LspilotError."""
    _import_everything()
    return {LspilotError.kind} | {sub.kind for sub in _subclasses(LspilotError)
                                  if sub.__module__.startswith("lspilot.")}


def _literal_kinds() -> set[str]:
    """Kinds written as literals: ActionFailed(kind, ...), error_type=kind, ("kind", msg)."""
    kinds = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            candidates: list[ast.expr] = [k.value for k in node.keywords if k.arg == "error_type"]
            if name == "ActionFailed" and node.args:
                candidates.append(node.args[0])
            if name == "_wind_down":
                candidates += [a.elts[0] for a in node.args[1:]
                               if isinstance(a, ast.Tuple) and a.elts]
            kinds |= {c.value for c in candidates
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return kinds


def _server_kinds() -> set[str]:
    return _class_kinds() | _literal_kinds()


def test_the_error_kinds_are_found() -> None:
    assert {"no_api_key", "authentication", "timeout", "local_model", "selection_too_large",
            "outside_workspace", "internal", "cost_limit"} <= _class_kinds()
    assert _literal_kinds() >= KNOWN_LITERAL_KINDS


def test_every_error_kind_is_in_the_doc() -> None:
    rows = _table_rows(_subsection("Error types"))
    missing = sorted(_server_kinds() - set(rows))
    assert not missing, f"error types missing from docs/protocol.md: {missing}"
    # and nothing the server cannot produce (the base class's kind is documented as such)
    stale = sorted(set(rows) - _server_kinds() - {UpstreamError.kind})
    assert not stale, f"docs/protocol.md lists error types the server has not: {stale}"


# -- the Neovim plugin --------------------------------------------------------------------


def _lua_defaults() -> dict[str, str]:
    """``M.defaults``'s top-level options and the Lua text of each value."""
    text = CONFIG_LUA.read_text(encoding="utf-8")
    match = re.search(r"^M\.defaults = \{\n(.*?)^\}", text, re.S | re.M)
    assert match, "config.lua has no M.defaults table"
    options: dict[str, str] = {}
    current = None
    for line in match.group(1).splitlines():
        if line.strip().startswith("--"):
            continue
        top = re.match(r"^  (\w+) = (.*)$", line)
        if top:
            current = top.group(1)
            options[current] = top.group(2)
        elif current:
            options[current] += "\n" + line
    return options


def _lua_table(value: str) -> dict[str, Any]:
    """The ``key = scalar`` pairs of a Lua table constructor (strings, numbers, booleans)."""
    body = value.strip().rstrip(",")
    assert body.startswith("{") and body.endswith("}"), f"not a table: {value!r}"
    pairs: dict[str, Any] = {}
    for key, raw in re.findall(r'(\w+)\s*=\s*("[^"]*"|true|false|-?\d+(?:\.\d+)?)', body):
        if raw.startswith('"'):
            pairs[key] = raw[1:-1]
        elif raw in ("true", "false"):
            pairs[key] = raw == "true"
        else:
            pairs[key] = float(raw) if "." in raw else int(raw)
    leftover = re.sub(r'(\w+)\s*=\s*("[^"]*"|true|false|-?\d+(?:\.\d+)?)', "", body[1:-1])
    assert not leftover.strip(" ,\n"), f"cannot read {value!r}: {leftover!r}"
    return pairs


def _documented_options() -> set[str]:
    text = HELP.read_text(encoding="utf-8")
    match = re.search(r"\*lspilot-options\*\n(.*?)\n=+\n", text, re.S)
    assert match, "doc/lspilot.txt has no *lspilot-options* section"
    return set(re.findall(r"^  (\w+)\s{2,}", match.group(1), re.M))


def test_neovim_defaults_are_plugin_options() -> None:
    defaults = _lua_defaults()
    assert {"cmd", "settings", "init_options"} <= set(defaults)
    undocumented = sorted(set(defaults) - _documented_options())
    assert not undocumented, f"config.lua options missing from :help lspilot-options: " \
                             f"{undocumented}"
    init = INIT_LUA.read_text(encoding="utf-8")
    unread = [o for o in defaults if not re.search(rf"\b(opts|M\.options)\.{o}\b", init)]
    assert not unread, f"config.lua options init.lua never reads: {unread}"
    editor_side = _in_backticks(_section("Settings"))
    assert not sorted(set(defaults) - editor_side), "Neovim options missing from the doc"


@pytest.mark.parametrize("option", ["settings", "init_options"])
def test_neovim_server_settings_are_server_keys(option: str) -> None:
    values = _lua_table(_lua_defaults()[option])
    for key, value in values.items():
        assert key in server_settings.KEYS, f"config.lua {option}.{key} is not a server setting"
        server_settings.parse_value(key, value)  # raises when the server would refuse it
