"""Write tests' answers: is there a test in it, and the small local model's prompt and prefill."""

from __future__ import annotations

from pathlib import Path

import pytest

from lspilot.actions import small_model_tests as small
from lspilot.actions import test_answers
from lspilot.llm import chat_template
from lspilot.llm.wire import ChatMessage


@pytest.mark.parametrize(("language", "code"), [
    ("python", "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"),
    ("python", "import unittest\n\nclass TestAdd(unittest.TestCase):\n    pass\n"),
    ("python", "async def test_fetch():\n    pass\n"),
    ("typescript", "it('adds', () => { expect(add(1, 2)).toBe(3); });\n"),
    ("javascript", "test.each([[1, 2]])('adds %i', (a, b) => {});\n"),
    ("go", "func TestAdd(t *testing.T) {\n}\n"),
    ("rust", "#[test]\nfn adds() {}\n"),
    ("java", "@Test\nvoid adds() {}\n"),
    ("elixir", "anything at all\n"),  # no pattern for it: taken at its word
])
def test_tests_are_recognised(language, code):
    assert test_answers.has_tests(language, code)


@pytest.mark.parametrize(("language", "code"), [
    ("python", "def add(a, b):\n    return a + b\n"),  # the function again
    ("python", "from calc import add\n"),
    ("python", ""),
    ("typescript", "export function add(a: number, b: number) { return a + b; }\n"),
    ("javascript", "const split = (x) => x.split(',');\n"),  # split( is not it(
    ("go", "func Add(a, b int) int { return a + b }\n"),
    ("rust", "fn add(a: i32) -> i32 { a }\n"),
])
def test_code_without_tests_is_not_taken_for_tests(language, code):
    assert not test_answers.has_tests(language, code)
    assert not test_answers.has_tests(language, None)


def test_what_was_wrong_is_said():
    assert "code but no test" in test_answers.problem("python", "def add(): pass\n")
    assert "no code" in test_answers.problem("python", None)
    assert "def test_" in test_answers.problem("python", None)
    error = test_answers.failure("go", "func Add() {}\n")
    assert error.kind == "no_tests" and "nothing was written" in str(error)


def test_tests_cut_short_keep_the_complete_ones():
    cut = ("from m import f\n\n\ndef test_one():\n    assert f(1) == 1\n\n\n"
           "def test_two():\n    assert f(2) == ")
    assert test_answers.complete_python_tests(cut) == \
        "from m import f\n\n\ndef test_one():\n    assert f(1) == 1\n"
    whole = "def test_one():\n    assert True\n"
    assert test_answers.complete_python_tests(whole) == whole


@pytest.mark.parametrize(("relative", "module"), [
    ("stats.py", "stats"),
    ("pkg/stats.py", "pkg.stats"),
    ("src/pkg/stats.py", "pkg.stats"),
    ("pkg/__init__.py", "pkg"),
    ("my-scripts/stats.py", None),  # not importable by a dotted path
])
def test_the_module_path_is_what_pytest_imports(relative, module):
    root = Path("/work/project")
    assert small.python_module(root / relative, root) == module


def test_the_names_under_test():
    assert small.names_under_test("def summarize(values):\n    return 1\n") == ["summarize"]
    assert small.names_under_test("class Shapes:\n    pass\n\ndef area():\n    pass\n") == \
        ["Shapes", "area"]
    # a method: the class around it is what the tests import
    before = ["import math\n", "class Shapes:\n", "    unit = 1\n"]
    assert small.names_under_test("    def area(self, r):\n        return r\n", before) == \
        ["Shapes"]
    assert small.import_line("stats", ["summarize"]) == "from stats import summarize"
    assert small.import_line(None, ["summarize"]) is None
    assert small.import_line("stats", []) is None


def test_the_prefilled_prompt_is_chatml_with_the_answer_begun():
    messages = small.messages(source_name="stats.py", selection="def summarize(v):\n    pass\n",
                              imports="from stats import summarize", names=["summarize"],
                              instruction=None)
    prefill = small.Prefill("chatml", "from stats import summarize")
    request, begun = prefill.request(messages, model="m", temperature=0.2, top_p=None,
                                     max_tokens=None)
    assert begun == "```python\nfrom stats import summarize\n\n\ndef test_"
    assert request.prompt.startswith("<|im_start|>system\n")
    assert request.prompt.endswith("<|im_start|>assistant\n" + begun)
    assert "Import it exactly like this:\n```python\nfrom stats import summarize\n```" in \
        request.prompt
    assert "def test_area_of_a_rectangle" in request.prompt  # the example of the shape
    assert request.max_tokens == small.MAX_TOKENS
    assert request.stop is not None and "\n```" in request.stop and "<|im_end|>" in request.stop
    assert small.finish(begun, "one():\n    assert summarize([1]) == 1\n") == (
        "```python\nfrom stats import summarize\n\n\ndef test_one():\n"
        "    assert summarize([1]) == 1\n```\n")


def test_chatml_turns():
    text = chat_template.render("chatml", [ChatMessage("system", "S"), ChatMessage("user", "U")],
                                "A")
    assert text == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
                    "<|im_start|>assistant\nA")
