"""Building the chat messages: what the model is told, and the context budget."""

from __future__ import annotations

import attrs
import pytest

from lspilot.actions.prompts import (
    PromptInput,
    SelectionTooLarge,
    build_messages,
    surrounding_code,
)
from lspilot.actions.registry import BUILTINS, Action

EXPLAIN, REFACTOR, WRITE_TESTS = BUILTINS

SOURCE = [
    "import math\n",  # 0
    "\n",  # 1
    "def area(r):\n",  # 2
    "    return math.pi * r * r\n",  # 3
    "\n",  # 4
    "def main():\n",  # 5
    "    print(area(2))\n",  # 6
]


def make_input(**changes: object) -> PromptInput:
    base = PromptInput(
        language="python",
        file_name="pkg/geometry.py",
        lines=tuple(SOURCE),
        selection="def area(r):\n    return math.pi * r * r\n",
        first_line=2,
        last_line=3,
    )
    return attrs.evolve(base, **changes)


def user_text(action: Action, data: PromptInput) -> str:
    system, user = build_messages(action, data)
    assert system.role == "system" and user.role == "user"
    return user.content


def test_prompt_holds_language_file_selection_and_context() -> None:
    text = user_text(EXPLAIN, make_input())
    assert "Explain this python code from pkg/geometry.py." in text
    assert "Language: python" in text
    assert "File: pkg/geometry.py" in text
    assert "def area(r):\n    return math.pi * r * r\n" in text
    assert "(lines 3-4)" in text
    assert "```python\nimport math\n\n```" in text  # the code before
    assert "def main():\n    print(area(2))\n" in text  # the code after
    # Before comes before the selection, after comes after it.
    assert text.index("import math") < text.index("def area") < text.index("def main")


def test_prompt_holds_diagnostics_and_instruction() -> None:
    data = make_input(
        diagnostics=("3:5 error: undefined name 'math'", "4:1 warning: unused"),
        instruction="use a dataclass",
    )
    text = user_text(REFACTOR, data)
    assert "undefined name 'math'" in text
    assert "4:1 warning: unused" in text
    assert "Instruction from the user: use a dataclass" in text


def test_no_instruction_no_diagnostics_sections_when_absent() -> None:
    text = user_text(REFACTOR, make_input())
    assert "Instruction from the user" not in text
    assert "Diagnostics" not in text


def test_system_message_states_the_contract_per_apply_mode() -> None:
    explain_system = build_messages(EXPLAIN, make_input())[0].content
    refactor_system = build_messages(REFACTOR, make_input())[0].content
    tests_system = build_messages(WRITE_TESTS, make_input(test_file="tests/test_geometry.py"))[
        0
    ].content
    assert "Explain" in explain_system
    assert "exactly one fenced code block (```python)" in refactor_system
    assert "pytest" in tests_system
    assert "tests/test_geometry.py" in tests_system


@pytest.mark.parametrize(
    ("language", "framework"),
    [("go", "testing package"), ("rust", "#[test]"), ("java", "JUnit 5"),
     ("typescript", "describe"), ("cobol", "usual test framework")],
)
def test_test_framework_per_language(language: str, framework: str) -> None:
    system = build_messages(WRITE_TESTS, make_input(language=language))[0].content
    assert framework in system


def test_language_not_an_identifier_gives_an_untagged_fence() -> None:
    text = user_text(EXPLAIN, make_input(language="c++"))
    assert "```\ndef area" in text
    assert "Language: c++" in text


def test_whole_file_when_it_fits_the_budget() -> None:
    lines = tuple(f"line {i}\n" for i in range(200))
    data = make_input(lines=lines, selection="line 100\n", first_line=100, last_line=100,
                      context_lines=3, budget_chars=100_000)
    before, after = surrounding_code(data)
    # context_lines does not limit a file that fits in full.
    assert before == "".join(lines[:100])
    assert after == "".join(lines[101:])


def test_trimming_takes_nearest_lines_first() -> None:
    lines = tuple(f"line {i:03}\n" for i in range(100))  # 9 characters each
    selection = "line 050\n"
    # Room for 4 more lines after the selection: 2 each side, the nearest ones.
    data = make_input(lines=lines, selection=selection, first_line=50, last_line=50,
                      budget_chars=len(selection) + 4 * 9, context_lines=40)
    before, after = surrounding_code(data)
    assert before == "line 048\nline 049\n"
    assert after == "line 051\nline 052\n"
    text = user_text(EXPLAIN, data)
    assert "line 047" not in text and "line 053" not in text
    assert "line 050" in text


def test_trimming_limits_each_side_to_context_lines() -> None:
    lines = tuple(f"line {i:03}\n" for i in range(100))
    data = make_input(lines=lines, selection="line 050\n", first_line=50, last_line=50,
                      budget_chars=500, context_lines=3)
    before, after = surrounding_code(data)
    assert before == "line 047\nline 048\nline 049\n"
    assert after == "line 051\nline 052\nline 053\n"


def test_trimming_uses_budget_on_one_side_when_the_other_is_short() -> None:
    lines = tuple(f"line {i:03}\n" for i in range(100))
    data = make_input(lines=lines, selection="line 001\n", first_line=1, last_line=1,
                      budget_chars=9 + 5 * 9, context_lines=40)
    before, after = surrounding_code(data)
    assert before == "line 000\n"
    assert after == "".join(lines[2:6])


def test_trimmed_context_has_no_gaps() -> None:
    lines = ("a\n", "b" * 500 + "\n", "c\n", "SEL\n", "d\n", "e\n")
    data = make_input(lines=lines, selection="SEL\n", first_line=3, last_line=3,
                      budget_chars=100, context_lines=10)
    before, after = surrounding_code(data)
    assert before == "c\n"  # stops at the long line: "a" is not taken past it
    assert after == "d\ne\n"


def test_selection_is_never_trimmed() -> None:
    selection = "".join(f"selected {i}\n" for i in range(50))
    lines = tuple(f"ctx {i}\n" for i in range(10)) + tuple(
        selection.splitlines(keepends=True)
    ) + tuple(f"ctx {i}\n" for i in range(10, 20))
    data = make_input(lines=lines, selection=selection, first_line=10, last_line=59,
                      budget_chars=len(selection))  # no room left for context at all
    assert surrounding_code(data) == ("", "")
    text = user_text(REFACTOR, data)
    assert selection in text
    assert "ctx" not in text


def test_selection_larger_than_budget_raises() -> None:
    data = make_input(selection="x" * 101, budget_chars=100)
    with pytest.raises(SelectionTooLarge, match="contextBudgetChars"):
        build_messages(REFACTOR, data)


def test_selection_exactly_the_budget_is_fine() -> None:
    data = make_input(selection="x" * 100, budget_chars=100, lines=("x" * 100,),
                      first_line=0, last_line=0)
    assert "x" * 100 in user_text(REFACTOR, data)


def test_custom_template_places_the_placeholders() -> None:
    action = Action(
        id="review", title="Review", command="lspilot.run", kind="refactor.lspilot.review",
        prompt="Review [{language}] {fileName}:\n{selection}\nContext:\n{surroundingCode}\n"
               "Problems: {diagnostics}\nAsk: {instruction}",
        apply="show",
    )
    data = make_input(diagnostics=("E1 bad",), instruction="be brief")
    text = user_text(action, data)
    assert text.startswith("Review [python] pkg/geometry.py:\ndef area(r):\n")
    assert "Context:\nimport math\n\n\n<selection>\n\ndef main():" in text
    assert "Problems: E1 bad" in text
    assert "Ask: be brief" in text
    # The template took charge of the layout: nothing is repeated after it.
    assert text.count("def area(r)") == 1
    assert text.count("be brief") == 1
    assert "Instruction from the user" not in text
    assert "Language: python" not in text


def test_custom_template_without_selection_gets_the_standard_layout() -> None:
    action = attrs.evolve(EXPLAIN, prompt="Summarise in one line. {{literal braces}}")
    text = user_text(action, make_input(instruction="in French"))
    assert text.startswith("Summarise in one line. {literal braces}")
    assert "def area(r):" in text
    assert "Instruction from the user: in French" in text


def test_empty_diagnostics_placeholder_says_none() -> None:
    action = attrs.evolve(EXPLAIN, prompt="Diagnostics: {diagnostics} / {selection}")
    assert user_text(action, make_input()).startswith("Diagnostics: none / ")
