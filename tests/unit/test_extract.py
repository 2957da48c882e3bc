"""Taking the code out of a model's answer, and fitting it to the selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lspilot.actions.extract import extract_code
from lspilot.edits import declined, fit_to_selection


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```\n", "x = 1\n"),
        ("```py title=\"a.py\"\nx = 1\n```", "x = 1\n"),
        ("Here is the code:\n\n```python\nx = 1\ny = 2\n```\n\nIt adds things.", "x = 1\ny = 2\n"),
        ("Sure.\n```go\nfunc f() {}\n```", "func f() {}\n"),
        ("~~~rust\nfn f() {}\n~~~\n", "fn f() {}\n"),
        ("````md\n```python\ninner\n```\n````", "```python\ninner\n```\n"),
        ("  ```python\n  x = 1\n  ```", "  x = 1\n"),
    ],
)
def test_fenced_block(answer: str, code: str) -> None:
    assert extract_code(answer) == code


def test_missing_closing_fence_keeps_what_arrived() -> None:
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n") == (
        "def f():\n    return 1\n"
    )
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1\n"


def test_no_fence_is_the_bare_answer() -> None:
    assert extract_code("x = 1\ny = 2") == "x = 1\ny = 2\n"
    assert extract_code("\n\nx = 1\n\n\n") == "x = 1\n"


def test_several_blocks_the_longest_wins() -> None:
    answer = (
        "First the import:\n```python\nimport os\n```\n"
        "Then the function:\n```python\ndef f():\n    return os.getcwd()\n```\n"
        "Usage:\n```\nf()\n```\n"
    )
    assert extract_code(answer) == "def f():\n    return os.getcwd()\n"


@pytest.mark.parametrize("answer", ["", "\n\n", "   \n\t\n", "```python\n```", "```\n\n  \n```"])
def test_empty_answer_is_none(answer: str) -> None:
    assert extract_code(answer) is None


def test_backticks_inside_a_line_do_not_close_the_block() -> None:
    answer = "```python\ns = '```'\nt = 1\n```"
    assert extract_code(answer) == "s = '```'\nt = 1\n"


@given(st.text())
def test_any_text_never_raises(answer: str) -> None:
    code = extract_code(answer)
    assert code is None or (isinstance(code, str) and code.strip())


_plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="`~"),
    max_size=80,
)


@given(
    code=_plain.filter(lambda s: s.strip()).map(lambda s: s if s.endswith("\n") else s + "\n"),
    before=_plain,
    after=_plain,
    tag=st.sampled_from(["", "python", "ts", "c++", "objective-c"]),
)
def test_fenced_code_round_trips(code: str, before: str, after: str, tag: str) -> None:
    answer = f"{before}\n```{tag}\n{code}```\n{after}"
    # extract_code normalises an answer's CRLF to LF before it looks for fences.
    assert extract_code(answer) == code.replace("\r\n", "\n")


# -- fit_to_selection ----------------------------------------------------------------------


def test_whole_lines_selection_gets_its_indentation() -> None:
    selected = "    a = 1\n    b = 2\n"
    assert fit_to_selection("a = 1\nb = 3\n", selected, "") == "    a = 1\n    b = 3\n"


def test_code_indented_differently_by_the_model_is_reindented() -> None:
    selected = "    if x:\n        y()\n"
    code = "        if x:\n            z()\n"
    assert fit_to_selection(code, selected, "") == "    if x:\n        z()\n"


def test_relative_indentation_is_kept() -> None:
    selected = "        return 1\n"
    code = "if a:\n    return 1\nelse:\n    return 2\n"
    assert fit_to_selection(code, selected, "") == (
        "        if a:\n            return 1\n        else:\n            return 2\n"
    )


def test_selection_starting_after_the_indentation() -> None:
    # The document already has "    " before the range: the first line gets no pad.
    selected = "a = 1\n    b = 2"
    assert fit_to_selection("a = 1\nb = 3\n", selected, "    ") == "a = 1\n    b = 3"


def test_selection_starting_inside_the_indentation() -> None:
    selected = "  a = 1\n    b = 2\n"
    assert fit_to_selection("a = 1\nb = 3", selected, "  ") == "  a = 1\n    b = 3\n"


def test_mid_line_selection() -> None:
    assert fit_to_selection("compute(x)\n", "foo(x)", "    y = ") == "compute(x)"


def test_mid_line_selection_spanning_lines_uses_later_lines_indent() -> None:
    selected = "call(\n        a,\n    )"
    code = "call(\n    a,\n    b,\n)\n"
    assert fit_to_selection(code, selected, "    x = ") == (
        "call(\n        a,\n        b,\n    )"
    )


def test_trailing_newline_follows_the_selection() -> None:
    assert fit_to_selection("x\n", "y", "") == "x"
    assert fit_to_selection("x", "y\n", "") == "x\n"


def test_blank_lines_stay_blank_and_outer_blank_lines_go() -> None:
    code = "\n\na = 1\n\n    \nb = 2\n\n\n"
    assert fit_to_selection(code, "    a\n", "") == "    a = 1\n\n\n    b = 2\n"


def test_tabs() -> None:
    assert fit_to_selection("a\nb\n", "\tx\n\ty\n", "") == "\ta\n\tb\n"


def test_empty_code_is_empty() -> None:
    assert fit_to_selection("\n  \n", "    x\n", "") == ""


def test_crlf_answer_closing_fence_is_recognised() -> None:
    answer = "Here:\r\n```python\r\nx = 1\r\n```\r\nDone.\r\n"
    code = extract_code(answer)
    assert code is not None
    assert "```" not in code
    assert "Done." not in code
    assert code.replace("\r\n", "\n") == "x = 1\n"


# -- declined --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason, said_no", [
    (None, True), ("", True), ("  ", True), ("declined", True), ("Rejected by the user", True),
    ("User cancelled server edit", True), ("the document changed", False),
    ("the editor did not answer within 900 s", False)])
def test_a_confirmed_edit_not_applied_is_declined_by_its_reason(reason: str | None,
                                                                said_no: bool) -> None:
    assert declined(reason) is said_no


def test_blank_lines_after_the_selected_function_stay() -> None:
    selected = "def f():\n    return 1\n\n\n"
    assert fit_to_selection("def f():\n    return 2\n", selected, "") == \
        "def f():\n    return 2\n\n\n"


def test_blank_lines_before_the_selected_code_stay() -> None:
    selected = "\n  \n    a = 1\n"
    assert fit_to_selection("a = 2\n", selected, "") == "\n  \n    a = 2\n"


def test_a_selection_ending_inside_a_blank_line_keeps_it() -> None:
    assert fit_to_selection("b = 2", "    a = 1\n\n    ", "") == "    b = 2\n\n    "
