"""Write tests for a small local model: its own prompt and the start of its answer; pure.

A 0.5B model asked the way a big one is tends to copy the function or forget to import
it. Given the exact import (the module path lspilot computed), a short example of the
shape and the answer already begun (the fence, the import, ``def test_``) through the
raw completion endpoint (lspilot.llm.chat_template), it writes test functions.
Python only: other languages get the ordinary prompt.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

from attrs import define

from lspilot.llm import chat_template
from lspilot.llm.chat_template import ChatTemplate
from lspilot.llm.wire import ChatMessage, CompletionRequest

# Tests are short: a cap keeps a rambling model from filling the context (the part cut
# off is dropped by test_answers.complete_python_tests).
MAX_TOKENS = 400
FENCE_END = "\n```"

SYSTEM = ("You are lspilot, a code assistant. You write pytest unit tests. Reply with one "
          "```python code block of tests and nothing else.")
EXAMPLE = (
    "from shapes import area\n\n\n"
    "def test_area_of_a_rectangle():\n    assert area(2, 3) == 6\n\n\n"
    "def test_area_of_nothing():\n    assert area(0, 3) == 0\n"
)


def python_module(source: Path, root: Path) -> str | None:
    """The dotted module path of ``source`` as ``python -m pytest`` run in ``root`` imports
    it (a ``src/`` layout's ``src`` left out), or None when it has none."""
    try:
        parts = list(source.relative_to(root).with_suffix("").parts)
    except ValueError:
        return None
    if len(parts) > 1 and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def names_under_test(selection: str, lines_before: Sequence[str] = ()) -> list[str]:
    """The importable names the selection defines: its top-level functions and classes, or
    for an indented selection (a method) the class around it."""
    first = next((line for line in selection.splitlines() if line.strip()), "")
    indent = len(first) - len(first.lstrip())
    if indent:
        for line in reversed(lines_before):
            match = re.match(r"class\s+(\w+)", line)
            if match:
                return [match.group(1)]
        return []
    try:
        tree = ast.parse(textwrap.dedent(selection))
    except SyntaxError:
        return re.findall(r"^(?:async\s+)?(?:def|class)\s+(\w+)", selection, re.M)
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


def import_line(module: str | None, names: Sequence[str]) -> str | None:
    if module is None or not names:
        return None
    return f"from {module} import {', '.join(names)}"


def prefill(imports: str) -> str:
    """The start of the answer: the fence, the import, the first test's ``def test_``."""
    return f"```python\n{imports}\n\n\ndef test_"


def messages(*, source_name: str, selection: str, imports: str, names: Sequence[str],
             instruction: str | None) -> tuple[ChatMessage, ...]:
    called = ", ".join(f"`{n}`" for n in names)
    parts = [
        f"Write pytest tests for {called} from {source_name}:\n"
        f"```python\n{selection.rstrip()}\n```",
        f"Import it exactly like this:\n```python\n{imports}\n```",
        "The expected shape, for another function (`area(width, height)` in shapes.py):\n"
        f"```python\n{EXAMPLE}```",
        f"Write 2 or 3 short tests. Each calls {called} with small inputs whose result you "
        "can work out by hand, and checks it with assert. Do not copy the code under test "
        "into the tests.",
    ]
    if instruction:
        parts.append(f"Instruction from the user: {instruction}")
    return (ChatMessage("system", SYSTEM), ChatMessage("user", "\n\n".join(parts)))


def finish(prefilled: str, continuation: str) -> str:
    """The whole answer: what lspilot began, what the model wrote, the fence closed."""
    return prefilled + continuation.rstrip("`\n ") + "\n```\n"


@define(frozen=True)
class Prefill:
    """How to begin a local model's answer with tests: its turn format and the import."""

    template: ChatTemplate
    imports: str

    def request(self, messages: Sequence[ChatMessage], *, model: str,
                temperature: float | None, top_p: float | None,
                max_tokens: int | None) -> tuple[CompletionRequest, str]:
        """The raw completion request, and the answer's start it continues."""
        begun = prefill(self.imports)
        return CompletionRequest(
            model=model, prompt=chat_template.render(self.template, messages, begun),
            max_tokens=max_tokens or MAX_TOKENS, temperature=temperature, top_p=top_p,
            stop=(*chat_template.STOPS[self.template], FENCE_END)), begun
