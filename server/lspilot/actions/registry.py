"""The actions lspilot offers: three built-ins plus the user's own, all plain data."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from attrs import define

from lspilot.settings import ActionSetting, ApplyMode, Settings

# The generic command that runs any action by id (custom ones in particular).
RUN_COMMAND = "lspilot.run"


@define(frozen=True, kw_only=True)
class Action:
    id: str
    title: str
    command: str
    kind: str
    prompt: str
    apply: ApplyMode
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None


BUILTINS: tuple[Action, ...] = (
    Action(
        id="explain",
        title="lspilot: Explain",
        command="lspilot.explain",
        kind="refactor.lspilot.explain",
        prompt="Explain this {language} code from {fileName}.",
        apply="show",
    ),
    Action(
        id="refactor",
        title="lspilot: Refactor",
        command="lspilot.refactor",
        kind="refactor.rewrite.lspilot",
        prompt=(
            "Refactor this {language} code from {fileName}: make it clearer and simpler "
            "without changing what it does."
        ),
        apply="replace",
    ),
    Action(
        id="writeTests",
        title="lspilot: Write tests",
        command="lspilot.writeTests",
        kind="refactor.lspilot.writeTests",
        prompt="Write unit tests for this {language} code from {fileName}.",
        apply="testFile",
    ),
)

BUILTIN_COMMANDS: Mapping[str, str] = {a.command: a.id for a in BUILTINS}


def build_registry(settings: Settings) -> dict[str, Action]:
    """Built-ins with the user's overrides applied, then the user's own actions, by id."""
    registry = {action.id: action for action in BUILTINS}
    for entry in settings.actions:
        base = registry.get(entry.id)
        registry[entry.id] = _merge(base, entry) if base else _custom(entry)
    return registry


def _overrides(entry: ActionSetting) -> dict[str, object]:
    names = ("title", "prompt", "apply", "model", "temperature", "top_p", "max_tokens", "stop")
    return {n: getattr(entry, n) for n in names if getattr(entry, n) is not None}


def _merge(base: Action, entry: ActionSetting) -> Action:
    return attrs.evolve(base, **_overrides(entry))  # type: ignore[arg-type]


def _custom(entry: ActionSetting) -> Action:
    # Settings validation guarantees title, prompt and apply for a new action.
    assert entry.title and entry.prompt and entry.apply
    fields = _overrides(entry)
    return Action(
        id=entry.id,
        command=RUN_COMMAND,
        kind=f"refactor.lspilot.{entry.id}",
        **fields,  # type: ignore[arg-type]
    )
