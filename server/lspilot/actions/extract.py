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


