"""Imports run one way: protocol → features → core → plain data.

Read from the source with ``ast`` (imports inside functions count too): a low module that
imports a high one fails here, before it becomes a cycle or a server that cannot be
tested in parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "lspilot"

# Highest first. A module belongs to the first layer with a prefix matching its name.
# lspilot.acp is the ACP entry, beside lspilot.server (architecture.md).
PROTOCOL = ("lspilot.server", "lspilot.cli", "lspilot.transport", "lspilot.__main__",
            "lspilot.demo", "lspilot.scripted_editor", "lspilot.acp")
FEATURES = ("lspilot.features",)
DATA = ("lspilot.errors", "lspilot.settings", "lspilot.template", "lspilot.text",
        "lspilot.usage", "lspilot.llm.wire", "lspilot.__init__")
LAYERS = {"protocol": 3, "features": 2, "core": 1, "data": 0}


def layer(module: str) -> str:
    if module in ("lspilot",):
        return "data"  # lspilot/__init__.py: the version
    for name, prefixes in (("protocol", PROTOCOL), ("features", FEATURES), ("data", DATA)):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return "core"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def imports(path: Path, module: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" \
                    else module.split(".")[: len(module.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "lspilot" or n.startswith("lspilot.")}


def _real(name: str, known: set[str]) -> str:
    """`from lspilot.x import y` names module lspilot.x.y only when that module exists."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


@pytest.mark.parametrize("module, path", modules(), ids=[m for m, _ in modules()])
def test_imports_run_one_way(module: str, path: Path) -> None:
    known = {m for m, _ in modules()}
    mine = LAYERS[layer(module)]
    upward = sorted(
        target for target in {_real(n, known) for n in imports(path, module)}
        if LAYERS[layer(target)] > mine
    )
    assert not upward, f"{module} ({layer(module)}) imports from higher layers: {upward}"


def test_the_layers_are_as_described() -> None:
    assert layer("lspilot.server") == "protocol"
    assert layer("lspilot.features.inline") == "features"
    assert layer("lspilot.jobs.job") == "core" and layer("lspilot.llm.client") == "core"
    assert layer("lspilot.settings") == "data"


@pytest.mark.parametrize("module", ["lspilot.llm.events", "lspilot.llm.toolcalls",
                                    "lspilot.llm.prompt_tools"])
def test_the_tool_call_modules_are_pure(module: str) -> None:
    # Assembly and the prompt format are pure functions of data: the agent and the tests
    # use them without a stream, a network or settings.
    path = dict(modules())[module]
    known = {m for m, _ in modules()}
    found = {_real(n, known) for n in imports(path, module)}
    assert found <= {"lspilot", "lspilot.llm", "lspilot.llm.wire", "lspilot.llm.events"}, found


@pytest.mark.parametrize("module, path",
                         [(m, p) for m, p in modules() if m.startswith("lspilot.llm")],
                         ids=[m for m, _ in modules() if m.startswith("lspilot.llm")])
def test_nothing_under_llm_knows_about_features_or_the_local_model(module: str,
                                                                    path: Path) -> None:
    known = {m for m, _ in modules()}
    found = {_real(n, known) for n in imports(path, module)}
    wrong = sorted(n for n in found if n.startswith(("lspilot.features", "lspilot.local",
                                                     "lspilot.agent", "lspilot.services")))
    assert not wrong, f"{module} imports {wrong}"


# Where the bundled model may be known by name: its own package, the backend module that
# chooses it, and the programs that install or demonstrate it.
KNOWS_THE_LOCAL_MODEL = ("lspilot.local", "lspilot.backends", "lspilot.cli", "lspilot.demo",
                         "lspilot.__main__")


@pytest.mark.parametrize("module, path", modules(), ids=[m for m, _ in modules()])
def test_only_the_backend_module_knows_the_local_model_exists(module: str, path: Path) -> None:
    if any(module == k or module.startswith(k + ".") for k in KNOWS_THE_LOCAL_MODEL):
        return
    known = {m for m, _ in modules()}
    found = {_real(n, known) for n in imports(path, module)}
    local = sorted(n for n in found if n == "lspilot.local" or n.startswith("lspilot.local."))
    assert not local, f"{module} imports {local}: ask lspilot.backends instead"
    assert "LOCAL_BASE_URL" not in path.read_text(encoding="utf-8") or module in (
        "lspilot.settings",), f"{module} compares baseUrl with \"local\": use lspilot.backends"
