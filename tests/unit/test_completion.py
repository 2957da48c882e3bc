"""The pure side of inline completions: the cursor's context, cleaning, the cache, neighbours."""

from __future__ import annotations

import pytest

from lspilot.completion.cache import KEY_CHARS, SuggestionCache, typed_since
from lspilot.completion.clean import clean
from lspilot.completion.context import CursorContext, Shape, cursor_context
from lspilot.completion.neighbors import best_snippets


def at(marked: str) -> CursorContext:
    offset = marked.index("|")
    text = marked.replace("|", "", 1)
    context = cursor_context(text, offset, language="python", path="a.py", budget_chars=6000)
    assert context is not None
    return context


@pytest.mark.parametrize("marked, shape", [
    ("x = foo(|)\n", Shape.LINE),
    ("x = |\n", Shape.LINE),
    ("def f(a):|\n", Shape.BLOCK),
    ("def f(a):\n    |\n", Shape.BLOCK),
    ("if (x) {|\n", Shape.BLOCK),
    ("x = 1\n|\n", Shape.LINE),
])
def test_the_shape_follows_the_place(marked: str, shape: Shape) -> None:
    assert at(marked).shape is shape


@pytest.mark.parametrize("marked", ["x = |foo\n", "print(|a, b)\n"])
def test_no_suggestion_before_code_on_the_line(marked: str) -> None:
    offset = marked.index("|")
    text = marked.replace("|", "")
    assert cursor_context(text, offset, language="python", path="a.py",
                          budget_chars=6000) is None


def test_typing_leaves_the_start_of_the_prompt_as_it_was() -> None:
    """A server's prompt cache reuses what did not change: the prefix must not slide."""
    head = "".join(f"value_{i} = {i}\n" for i in range(2000))
    starts = set()
    for typed in range(0, 300, 7):
        context = at(head + "total = " + "x" * typed + "|\n")
        text = head + "total = " + "x" * typed
        start = len(text) - len(context.prefix)
        assert start == 0 or text[start - 1] == "\n"  # at a line start
        assert 4500 - 1024 - 20 <= len(context.prefix) <= 4500  # the budget's 75%, less a step
        starts.add(start)
    assert len(starts) == 1


def test_typing_leaves_the_suffix_as_it_was() -> None:
    before = at("x = 1\ny = |\nz = 3\n" + "w = 4\n" * 2000)
    after = at("x = 1\ny = 2|\nz = 3\n" + "w = 4\n" * 2000)
    assert before.suffix == after.suffix


@pytest.mark.parametrize("answer, marked, expected", [
    ("```python\n1, 2)\n```", "x = add(|)\n", "1, 2"),  # fence, and the `)` already there
    ("x = add(1, 2)", "x = add(|)\n", "1, 2"),  # repeats the line before the cursor
    ("    return a", "def f(a):\n    |\n", "return a"),  # repeats the indentation
    ("return a\nprint(1)", "def f(a):\n    |\n", "return a"),  # the block ends
    ("return a", "def f(a):|\n", "\n    return a"),  # the line break the model left out
    ("first\nsecond", "x = |\n", "first"),  # one line mid-code
    ("   \n\n", "x = |\n", None),  # whitespace only
    ("y = 2", "x = 1\n|\ny = 2\n", None),  # equals the next line
])
def test_cleaning(answer: str, marked: str, expected: str | None) -> None:
    assert clean(answer, at(marked)) == expected


def test_a_block_drops_the_lines_the_suffix_already_has() -> None:
    context = at("def f(a):|\n    return a\n")
    assert clean("\n    a += 1\n    return a", context) == "\n    a += 1"


def test_the_cache_answers_the_same_place_and_typing_through() -> None:
    cache = SuggestionCache()
    cache.put("u", "x = add(", ")\n", "1, 2")
    assert cache.get("u", "x = add(", ")\n") == "1, 2"
    assert cache.get("u", "x = add(1", ")\n") == ", 2"
    assert cache.get("u", "x = add(1, 2", ")\n") is None  # typed it all: nothing left
    assert cache.get("u", "x = add(9", ")\n") is None  # typed something else
    assert cache.get("other", "x = add(", ")\n") is None
    cache.forget("u")
    assert cache.get("u", "x = add(", ")\n") is None


def test_typing_through_works_with_prefixes_longer_than_the_key() -> None:
    long = "a" * (KEY_CHARS + 50)
    old, new = long[-KEY_CHARS:], (long + "xy")[-KEY_CHARS:]
    assert typed_since(old, new) == "xy"
    cache = SuggestionCache()
    cache.put("u", long, "", "xyz")
    assert cache.get("u", long + "xy", "") == "z"


def test_the_cache_is_bounded() -> None:
    cache = SuggestionCache(max_entries=2)
    for index in range(3):
        cache.put("u", f"p{index}", "", "s")
    assert cache.get("u", "p0", "") is None and cache.get("u", "p2", "") == "s"


def test_neighbours_are_the_most_similar_window_within_the_budget() -> None:
    around = "order_total = compute_invoice_total(order_lines)"
    related = ("import os\n" * 30 + "def compute_invoice_total(order_lines):\n"
               "    return sum(order_lines)\n")
    unrelated = "def render_page(template):\n    return template.format()\n"
    chosen = best_snippets(around, [("b.py", related), ("c.py", unrelated)], budget_chars=2000)
    assert [s.path for s in chosen] == ["b.py"]
    assert "compute_invoice_total" in chosen[0].text
    assert best_snippets(around, [("b.py", related)], budget_chars=10) == []


def test_a_fence_after_a_line_of_prose_is_the_answer() -> None:
    assert clean("Here it is:\n```python\n1, 2\n```", at("x = add(|)\n")) == "1, 2"


def test_a_fence_further_down_is_part_of_the_code() -> None:
    answer = "\n    return 1\n\ndef g():\n    doc = '''\n    ```py\n    x\n    ```'''"
    assert clean(answer, at("def f():|\n")) == "\n    return 1"
