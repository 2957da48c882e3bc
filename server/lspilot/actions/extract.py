"""Taking code out of a model's answer and fitting it to where it goes."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w.+#-]*)[^\n]*$", re.M)


def extract_code(answer: str) -> str | None:
    """The code in an answer, or None when there is none.

    A fenced block (with or without a language tag; the longest when there are several),
    one whose closing fence is missing, or a bare answer with no fence at all.
    """
    answer = answer.replace("\r\n", "\n")
    blocks = _fenced_blocks(answer)
    if blocks:
        code = max(blocks, key=len)
        return code if code.strip() else None
    stripped = answer.strip("\n")
    return stripped + "\n" if stripped.strip() else None


def _fenced_blocks(answer: str) -> list[str]:
    blocks = []
    position = 0
    while (opening := _FENCE.search(answer, position)) is not None:
        fence = opening.group(1)
        start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        end_match = closing.search(answer, start)
        if end_match is None:
            # An answer cut short (maxTokens, a dropped stream): keep what arrived.
            blocks.append(answer[start:].rstrip("`~ \n") + "\n" if answer[start:] else "")
            break
        blocks.append(answer[start : end_match.start()])
        position = end_match.end()
    return blocks


def indentation_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def fit_to_selection(code: str, selected: str, line_prefix: str) -> str:
    """Indent ``code`` like the selection it replaces.

    ``selected`` is the selected text; ``line_prefix`` is what stands before the selection
    on its first line. The code is dedented, then given the selection's indentation, and
    ends with a line break exactly when the selection did.
    """
    lines = code.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return ""
    common = _common_indent(lines)
    lines = [line[len(common) :] if line.strip() else "" for line in lines]
    selected_lines = selected.splitlines() or [""]
    if line_prefix.strip():
        # The selection starts mid-line, after code: the first line needs no indent.
        base = _common_indent(selected_lines[1:]) or indentation_of(line_prefix)
        first_pad = ""
    else:
        # The document already holds line_prefix before the range: pad only the rest.
        base = _common_indent([line_prefix + selected_lines[0], *selected_lines[1:]])
        first_pad = base[len(line_prefix) :]
    out = [first_pad + lines[0], *(base + line if line else "" for line in lines[1:])]
    text = "\n".join(out)
    return text + "\n" if selected.endswith("\n") else text


def _common_indent(lines: list[str]) -> str:
    indents = [indentation_of(line) for line in lines if line.strip()]
    if not indents:
        return ""
    shortest = min(indents, key=len)
    common = 0
    while common < len(shortest) and all(i[common] == shortest[common] for i in indents):
        common += 1
    return shortest[:common]
