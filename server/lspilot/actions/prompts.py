"""Building the chat messages for one action: pure functions of plain data."""

from __future__ import annotations

from attrs import define

from lspilot.actions.registry import Action
from lspilot.errors import LspilotError
from lspilot.llm.wire import ChatMessage
from lspilot.template import placeholders_in, render

_CONTRACTS = {
    "show": (
        "You are lspilot, a code assistant inside the user's editor. Explain the selected "
        "code to a developer: what it does, how it does it, and anything surprising "
        "(bugs, edge cases, performance). Answer in concise Markdown. Do not rewrite the "
        "code unless the user asks."
    ),
    "replace": (
        "You are lspilot, a code assistant inside the user's editor. You rewrite the "
        "selected code as asked. Output contract: reply with exactly one fenced code block "
        "(```{language}) holding the complete replacement for the selected code and nothing "
        "else: no explanation before or after it. Keep the code's behaviour unless told "
        "otherwise, keep its indentation style, and keep names that other code uses."
    ),
    "testFile": (
        "You are lspilot, a code assistant inside the user's editor. You write unit tests "
        "for the selected code with {framework}. Output contract: reply with exactly one "
        "fenced code block (```{language}) holding only the test code to add to "
        "{testFile}, with the imports it needs; no explanation before or after it."
    ),
}

_FRAMEWORKS = {
    "python": "pytest",
    "javascript": "the project's test runner (Jest/Vitest style: describe, it, expect)",
    "typescript": "the project's test runner (Jest/Vitest style: describe, it, expect)",
    "javascriptreact": "the project's test runner (Jest/Vitest style)",
    "typescriptreact": "the project's test runner (Jest/Vitest style)",
    "go": "Go's testing package (table-driven tests)",
    "rust": "Rust's built-in test harness (#[test] functions inside mod tests)",
    "java": "JUnit 5",
}


class SelectionTooLarge(LspilotError, ValueError):
    """The selection alone does not fit the context budget: no request is made."""

    kind = "selection_too_large"


@define(frozen=True, kw_only=True)
class PromptInput:
    language: str
    file_name: str
    lines: tuple[str, ...]  # the document's lines, line ends kept
    selection: str
    first_line: int  # 0-based lines the selection spans
    last_line: int
    diagnostics: tuple[str, ...] = ()
    instruction: str | None = None
    test_file: str | None = None
    test_import: str | None = None  # how the tests import the code under test, when known
    context_lines: int = 40
    budget_chars: int = 24_000


def build_messages(action: Action, data: PromptInput) -> tuple[ChatMessage, ...]:
    if len(data.selection) > data.budget_chars:
        raise SelectionTooLarge(
            f"The selection has {len(data.selection):,} characters, more than the context "
            f"budget of {data.budget_chars:,}. Select less code, or raise the setting "
            "contextBudgetChars."
        )
    before, after = surrounding_code(data)
    fence = data.language if data.language.isidentifier() else ""
    values = {
        "selection": data.selection,
        "language": data.language,
        "fileName": data.file_name,
        "surroundingCode": before + "\n<selection>\n" + after if before or after else "",
        "diagnostics": "\n".join(data.diagnostics) or "none",
        "instruction": data.instruction or "",
    }
    task = render(action.prompt, values)
    used = set(placeholders_in(action.prompt))
    parts = [task]
    # A template that places the selection itself has taken charge of the layout.
    if "selection" not in used:
        parts.append(f"Language: {data.language}\nFile: {data.file_name}")
        if before:
            parts.append(f"Code before the selection:\n```{fence}\n{before}```")
        parts.append(
            f"The selected code (lines {data.first_line + 1}-{data.last_line + 1}):\n"
            f"```{fence}\n{_with_newline(data.selection)}```"
        )
        if after:
            parts.append(f"Code after the selection:\n```{fence}\n{after}```")
        if data.diagnostics and "diagnostics" not in used:
            parts.append("Diagnostics in the selection:\n" + "\n".join(data.diagnostics))
    if action.apply == "testFile" and data.test_import:
        parts.append(f"The tests import the code under test exactly like this: "
                     f"`{data.test_import}`")
    if data.instruction and "instruction" not in used:
        parts.append(f"Instruction from the user: {data.instruction}")
    system = _CONTRACTS[action.apply].format(
        language=fence or "the file's language",
        framework=_FRAMEWORKS.get(data.language, "the language's usual test framework"),
        testFile=data.test_file or "the test file",
    )
    return (ChatMessage("system", system), ChatMessage("user", "\n\n".join(parts)))


def surrounding_code(data: PromptInput) -> tuple[str, str]:
    """The code before and after the selection that fits the budget.

    The whole file when it fits; otherwise up to ``context_lines`` lines on each side,
    nearest first, until the budget left after the selection is used up.
    """
    room = data.budget_chars - len(data.selection)
    before_lines = data.lines[: data.first_line]
    after_lines = data.lines[data.last_line + 1 :]
    if sum(map(len, before_lines)) + sum(map(len, after_lines)) <= room:
        return "".join(before_lines), "".join(after_lines)
    taken_before: list[str] = []
    taken_after: list[str] = []
    sides = [(before_lines[::-1], taken_before), (after_lines, taken_after)]
    for distance in range(data.context_lines):
        still_open = []
        for source, taken in sides:
            # A side stops at its first line that does not fit: no gaps in the context.
            if distance < len(source) and len(source[distance]) <= room:
                taken.append(source[distance])
                room -= len(source[distance])
                still_open.append((source, taken))
        sides = still_open
        if not sides:
            break
    return "".join(reversed(taken_before)), "".join(taken_after)


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
