"""The arguments of the action commands, checked with messages a client author can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cattrs
from attrs import define
from lsprotocol import types


class CommandError(ValueError):
    """Bad arguments: answered with a JSON-RPC invalid-params error."""


@define(frozen=True, kw_only=True)
class RunArguments:
    uri: str
    range: types.Range
    instruction: str | None = None
    action: str | None = None
    diagnostics: tuple[types.Diagnostic, ...] | None = None


_SHAPE = '{"uri": string, "range": Range, "instruction"?: string}'


def parse_run_arguments(
    command: str, arguments: Sequence[Any] | None, converter: cattrs.Converter
) -> RunArguments:
    if not arguments or not isinstance(arguments[0], dict):
        raise CommandError(f"{command} takes one argument object: {_SHAPE}.")
    raw = arguments[0]
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri:
        raise CommandError(f"{command}: 'uri' must be the document's URI string.")
    try:
        range_ = converter.structure(raw.get("range"), types.Range)
    except Exception:
        raise CommandError(
            f"{command}: 'range' must be {{start: {{line, character}}, end: {{line, character}}}} "
            "with whole numbers."
        ) from None
    if min(range_.start.line, range_.start.character, range_.end.line,
           range_.end.character) < 0:
        raise CommandError(f"{command}: 'range' positions cannot be negative.")
    instruction = raw.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise CommandError(f"{command}: 'instruction' must be a string.")
    action = raw.get("action")
    if action is not None and not isinstance(action, str):
        raise CommandError(f"{command}: 'action' must be an action id string.")
    diagnostics = None
    if raw.get("diagnostics") is not None:
        try:
            diagnostics = tuple(converter.structure(raw["diagnostics"], list[types.Diagnostic]))
        except Exception:
            raise CommandError(f"{command}: 'diagnostics' must be a list of LSP Diagnostics.") \
                from None
    return RunArguments(
        uri=uri,
        range=range_,
        instruction=instruction.strip() or None if instruction else None,
        action=action,
        diagnostics=diagnostics,
    )
