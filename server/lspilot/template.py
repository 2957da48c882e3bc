"""Prompt templates: ``{name}`` placeholders, ``{{``/``}}`` for literal braces."""

from __future__ import annotations

import string
from collections.abc import Mapping

# The names a template may use, and what each stands for (shown in settings errors).
PLACEHOLDERS: Mapping[str, str] = {
    "selection": "the selected code",
    "language": "the document's language id",
    "fileName": "the file's workspace-relative path",
    "surroundingCode": "the code around the selection",
    "diagnostics": "diagnostics that overlap the selection",
    "instruction": "the user's instruction, if any",
}

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be rendered: a bad brace or an unknown placeholder."""


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses, in order; raises TemplateError on bad syntax."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"{exc} (write {{{{ and }}}} for literal braces)") from exc
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} must be a plain name, without ! or :")
        names.append(name)
    return names


def check_template(template: str) -> None:
    """Raise TemplateError naming any placeholder we do not know."""
    unknown = [n for n in placeholders_in(template) if n not in PLACEHOLDERS]
    if unknown:
        known = ", ".join("{" + n + "}" for n in PLACEHOLDERS)
        raise TemplateError(
            f"unknown placeholder {', '.join('{' + n + '}' for n in unknown)}; "
            f"the known ones are {known}"
        )


def render(template: str, values: Mapping[str, str]) -> str:
    check_template(template)
    return template.format_map(values)
