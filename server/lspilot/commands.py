"""The arguments of the action commands, checked with messages a client author can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

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
_RANGE_SHAPE = "{start: {line, character}, end: {line, character}} with whole numbers"
# LSP's uinteger: positions above it cannot come from a real document.
_MAX_POSITION = 2**31 - 1


def whole_number(value: object) -> TypeGuard[int]:
    """A JSON integer: not a bool (JSON true), not 1.5 (cattrs would make it 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_range(command: str, raw: Any, name: str = "range") -> types.Range:
    """An LSP Range from JSON, strictly: whole non-negative numbers, not reversed.

    cattrs structures ``1.5`` as line 1 and ``true`` as 1; a client sending them has a
    bug that lspilot should name rather than act on a guessed position.
    """
    positions = []
    for end in ("start", "end"):
        position = raw.get(end) if isinstance(raw, dict) else None
        if not isinstance(position, dict):
            raise CommandError(f"{command}: '{name}' must be {_RANGE_SHAPE}; "
                               f"'{name}.{end}' is missing or not an object.")
        numbers = []
        for field in ("line", "character"):
            value = position.get(field)
            if not whole_number(value) or not 0 <= value <= _MAX_POSITION:
                raise CommandError(f"{command}: '{name}.{end}.{field}' must be a whole "
                                   f"number from 0 to {_MAX_POSITION}, not {value!r}.")
            numbers.append(value)
        positions.append(types.Position(line=numbers[0], character=numbers[1]))
    start, end_ = positions
    if (end_.line, end_.character) < (start.line, start.character):
        raise CommandError(f"{command}: '{name}' ends before it starts (its end, line "
                           f"{end_.line} character {end_.character}, is before its start, "
                           f"line {start.line} character {start.character}).")
    return types.Range(start=start, end=end_)


def check_inside(command: str, range_: types.Range, lines: Sequence[str],
                 name: str = "range") -> None:
    """Refuse a range that reaches past the document's end (lines: the document's lines).

    A character past the end of its line means the line's end (the LSP spec), and the
    position just after the last line end is the document's end; a line beyond that
    means the client and lspilot disagree about the text, so nothing is guessed.
    """
    for end in ("start", "end"):
        pos: types.Position = getattr(range_, end)
        if pos.line > len(lines) or (pos.line == len(lines) and pos.character > 0):
            raise CommandError(
                f"{command}: '{name}.{end}' (line {pos.line}, character {pos.character}) is "
                f"outside the document, which has {len(lines)} lines.")


def parse_token(command: str, value: Any, name: str = "token") -> types.ProgressToken:
    """A progress token: an integer or a string (LSP's ProgressToken)."""
    if isinstance(value, str) or whole_number(value):
        return value
    raise CommandError(f"{command}: '{name}' must be a progress token, a string or an "
                       f"integer, not {type(value).__name__} {value!r}.")


def parse_run_arguments(
    command: str, arguments: Sequence[Any] | None, converter: cattrs.Converter
) -> RunArguments:
    if not arguments or not isinstance(arguments[0], dict):
        raise CommandError(f"{command} takes one argument object: {_SHAPE}.")
    raw = arguments[0]
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri:
        raise CommandError(f"{command}: 'uri' must be the document's URI string.")
    range_ = parse_range(command, raw.get("range"))
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
