"""The request to repair failing tests: the code, the tests lspilot wrote, the failure."""

from __future__ import annotations

from lspilot.llm.wire import ChatMessage

SYSTEM = (
    "You are lspilot, a code assistant inside the user's editor. Tests you wrote were run "
    "and did not pass. Output contract: reply with exactly one fenced code block "
    "(```{language}) holding the complete fixed tests, which replace the tests shown, with "
    "the imports they need; no explanation before or after it. Fix the tests, not the code "
    "under test. Where a failure looks like a bug in the code under test rather than in the "
    "test, keep that test as it is and add a comment on it saying so."
)


def repair_messages(*, language: str, source_name: str, code: str, test_name: str,
                    tests: str, command: str, output: str) -> tuple[ChatMessage, ...]:
    fence = language if language.isidentifier() else ""
    user = "\n\n".join((
        f"The code under test, from {source_name}:\n```{fence}\n{code.rstrip()}\n```",
        f"The tests you wrote, in {test_name}:\n```{fence}\n{tests.rstrip()}\n```",
        f"`{command}` printed:\n```\n{output.rstrip()}\n```",
    ))
    system = SYSTEM.format(language=fence or "the file's language")
    return (ChatMessage("system", system), ChatMessage("user", user))
